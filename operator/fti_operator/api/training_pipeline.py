"""TrainingPipeline: a feature view -> validated, registered model versions (DESIGN §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from .common import (
    CALLABLE_PATTERN,
    DOTTED_PATH_PATTERN,
    ApiModel,
    Condition,
    CronSchedule,
    FeatureGroupRef,
    Identifier,
    ObjectMeta,
    PodTemplate,
    Version,
    cel,
    cel_rules,
)

KIND = "TrainingPipeline"
PLURAL = "trainingpipelines"

METRICS = ("roc_auc", "average_precision", "f1", "precision", "recall", "accuracy", "log_loss", "brier_score")
Metric = Literal["roc_auc", "average_precision", "f1", "precision", "recall", "accuracy", "log_loss", "brier_score"]
# Metrics that make sense per group of a sensitive column.
BiasMetric = Literal["recall", "precision", "f1", "accuracy", "false_positive_rate", "selection_rate"]


class ModelSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.estimator) != has(self.entrypoint)", "exactly one of estimator and entrypoint must be set"),
        )
    }

    name: Identifier = Field(description="Registered model name; versions are numbered by the operator.")
    estimator: str | None = Field(default=None, pattern=DOTTED_PATH_PATTERN,
                                  description="Dotted path of a scikit-learn estimator, e.g. sklearn.ensemble.HistGradientBoostingClassifier.")
    params: dict[str, Any] | None = Field(default=None, description="Estimator hyper-parameters.",
                                          json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    entrypoint: str | None = Field(default=None, pattern=CALLABLE_PATTERN,
                                   description="module:function returning an unfitted estimator, instead of estimator.")

    @model_validator(mode="after")
    def _one_of(self) -> "ModelSpec":
        if (self.estimator is None) == (self.entrypoint is None):
            raise ValueError("exactly one of estimator and entrypoint must be set")
        return self


class LabelSpec(ApiModel):
    feature_group: FeatureGroupRef = Field(description="The feature group holding the label: the spine of the training data.")
    column: Identifier


class FeatureSelection(ApiModel):
    feature_group: FeatureGroupRef
    columns: list[Identifier] = Field(min_length=1, json_schema_extra={"x-kubernetes-list-type": "set"})


class Transformation(ApiModel):
    """A model-dependent transformation: fitted on the training split, saved inside the model."""

    column: Identifier
    type: Literal["standardScaler", "minMaxScaler", "robustScaler", "oneHot", "ordinal", "log1p"]


class FeatureViewSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("self.features.all(f, self.features.exists_one(g, g.featureGroup.name == f.featureGroup.name))",
                "a feature view may not select the same feature group twice", "features"),
            cel("!has(self.transformations) || self.transformations.all(t, self.features.exists(f, t.column in f.columns))",
                "every transformation must name a selected feature column", "transformations"),
        )
    }

    name: Identifier
    version: Version
    label: LabelSpec
    features: list[FeatureSelection] = Field(min_length=1, max_length=32)
    transformations: list[Transformation] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "FeatureViewSpec":
        names = [f.feature_group.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"a feature view may not select the same feature group twice: {', '.join(dupes)}")
        columns = {c for f in self.features for c in f.columns}
        for t in self.transformations or []:
            if t.column not in columns:
                raise ValueError(f"transformation on {t.column!r}: not a selected feature column")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """The model's input columns in feature-view order (the served row order)."""
        return [c for f in self.features for c in f.columns]

    @property
    def feature_groups(self) -> list[FeatureGroupRef]:
        """Every feature-group version this view reads, label's included, without repeats."""
        refs = {self.label.feature_group.key: self.label.feature_group}
        refs.update({f.feature_group.key: f.feature_group for f in self.features})
        return list(refs.values())


class SplitSpec(ApiModel):
    type: Literal["time", "random"] = Field(default="time", description="time: the newest events are the test set.")
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=42, ge=0)


class TrainingDataSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("!has(self.start) || !has(self.end) || timestamp(self.start) < timestamp(self.end)",
                "start must be before end", "start"),
        )
    }

    start: datetime | None = Field(default=None, description="Only labels with event time at or after this.")
    end: datetime | None = Field(default=None, description="Only labels with event time before this.")
    split: SplitSpec = Field(default_factory=SplitSpec)

    @model_validator(mode="after")
    def _window(self) -> "TrainingDataSpec":
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Gate(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(cel("has(self.min) || has(self.max)", "a gate needs min or max")),
    }

    metric: Metric
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> "Gate":
        if self.min is None and self.max is None:
            raise ValueError("a gate needs min or max")
        return self


class BiasGate(ApiModel):
    sensitive_column: Identifier = Field(description="Column whose groups are compared (need not be a model feature).")
    metric: BiasMetric = "recall"
    max_gap: float = Field(gt=0, le=1, description="Largest allowed difference of the metric between groups.")
    min_group_size: int = Field(default=20, ge=1, description="Smaller groups are reported but not gated.")


class EvaluationSpec(ApiModel):
    metrics: list[Metric] = Field(default_factory=lambda: ["roc_auc", "average_precision", "f1"],
                                  json_schema_extra={"x-kubernetes-list-type": "set"})
    gates: list[Gate] = Field(default_factory=list)
    bias: BiasGate | None = None
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Decision threshold for label metrics.")


class TrainingPipelineSpec(ApiModel):
    model: ModelSpec
    feature_view: FeatureViewSpec
    training_data: TrainingDataSpec = Field(default_factory=TrainingDataSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    schedule: CronSchedule | None = None
    suspend: bool = False
    template: PodTemplate | None = None


class DatasetRef(ApiModel):
    version: int
    hash: str


class ModelVersionStatus(ApiModel):
    version: Version
    phase: Literal["Training", "Validated", "Rejected", "Failed"]
    feature_view: FeatureGroupRef | None = Field(default=None, description="Feature view name and version the model was trained on.")
    feature_groups: list[FeatureGroupRef] | None = Field(
        default=None, description="Every feature-group version the model's feature view reads (what serving needs materialized).")
    training_dataset: DatasetRef | None = None
    metrics: dict[str, float] | None = None
    storage_uri: str | None = None
    job: str | None = None
    message: str | None = None
    created_at: datetime | None = None


class TrainingPipelineStatus(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    latest_validated_version: int | None = None
    model_versions: list[ModelVersionStatus] = Field(default_factory=list)


class TrainingPipeline(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["fti.dev/v1alpha1"] = "fti.dev/v1alpha1"
    kind: Literal["TrainingPipeline"] = "TrainingPipeline"
    metadata: ObjectMeta
    spec: TrainingPipelineSpec
    status: TrainingPipelineStatus | None = None
