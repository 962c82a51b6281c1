"""TrainingPipeline: a feature view -> validated, registered model versions (docs/concepts.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .common import (
    CALLABLE_PATTERN,
    DOTTED_PATH_PATTERN,
    ApiModel,
    Condition,
    CronSchedule,
    DateTime,
    FeatureGroupRef,
    FieldError,
    Identifier,
    ObjectMeta,
    StatusModel,
    Version,
    cel,
    cel_rules,
    no_repeats,
)
from .identity import API_VERSION, KIND_TRAINING_PIPELINE, TRAINING_PIPELINE
from .scheduling import PodTemplate

KIND = TRAINING_PIPELINE.kind
PLURAL = TRAINING_PIPELINE.plural

METRICS = ("roc_auc", "average_precision", "f1", "precision", "recall", "accuracy", "log_loss", "brier_score")
Metric = Literal["roc_auc", "average_precision", "f1", "precision", "recall", "accuracy", "log_loss", "brier_score"]
DEFAULT_METRICS: tuple[Metric, ...] = ("roc_auc", "average_precision", "f1")
# Metrics that make sense per group of a sensitive column.
BiasMetric = Literal["recall", "precision", "f1", "accuracy", "false_positive_rate", "selection_rate"]


class ModelSpec(ApiModel):
    """The model to train: a scikit-learn estimator by dotted path, or an entrypoint."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.estimator) != has(self.entrypoint)", "exactly one of estimator and entrypoint must be set"),
        )
    }

    name: Identifier = Field(description="Registered model name; versions are numbered by the operator.")
    estimator: str | None = Field(
        default=None,
        pattern=DOTTED_PATH_PATTERN,
        max_length=256,
        description="Dotted path of a scikit-learn estimator, e.g. sklearn.ensemble.HistGradientBoostingClassifier.",
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Estimator hyper-parameters.", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    entrypoint: str | None = Field(
        default=None,
        pattern=CALLABLE_PATTERN,
        max_length=256,
        description="module:function returning an unfitted estimator, instead of estimator.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> ModelSpec:
        if (self.estimator is None) == (self.entrypoint is None):
            raise ValueError("exactly one of estimator and entrypoint must be set")
        return self


class LabelSpec(ApiModel):
    """The label column and the feature group holding it (one training row per labelled event)."""

    feature_group: FeatureGroupRef = Field(description="The feature group holding the label: the spine of the training data.")
    column: Identifier = Field(description="The label column (binary classification: 0/1 or false/true).")


class FeatureSelection(ApiModel):
    """Columns read from one feature group at a pinned version (joined point-in-time on its primary key)."""

    feature_group: FeatureGroupRef = Field(description="The feature group and its pinned version.")
    columns: list[Identifier] = Field(
        min_length=1,
        max_length=64,
        description="Feature columns, in model input order.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    _columns = field_validator("columns")(no_repeats)


class Transformation(ApiModel):
    """A model-dependent transformation: fitted on the training split, saved inside the model."""

    column: Identifier = Field(description="A selected feature column.")
    type: Literal["standardScaler", "minMaxScaler", "robustScaler", "oneHot", "ordinal", "log1p"] = Field(
        description="standardScaler | minMaxScaler | robustScaler | oneHot | ordinal | log1p."
    )


LABEL_IS_FEATURE_MESSAGE = "the label column must not also be a feature (from any feature group)"
DUPLICATE_COLUMN_MESSAGE = (
    "a column name may be selected from one feature group only (the training data is joined by column name)"
)


class FeatureViewSpec(ApiModel):
    """The model's inputs: a label and feature columns from feature groups at pinned versions."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel(
                "self.features.all(f, self.features.exists_one(g, g.featureGroup.name == f.featureGroup.name))",
                "a feature view may not select the same feature group twice",
                "features",
            ),
            cel(
                "self.features.all(f, f.featureGroup.name != self.label.featureGroup.name"
                " || f.featureGroup.version == self.label.featureGroup.version)",
                "the label's feature group must be pinned at the same version as in features",
                "label",
            ),
            # Columns are joined by name: a label-named column from any group would leak the label.
            cel("self.features.all(f, !(self.label.column in f.columns))", LABEL_IS_FEATURE_MESSAGE, "label"),
            cel(
                "self.features.all(f, self.features.all(g, f.featureGroup.name == g.featureGroup.name"
                " || f.columns.all(c, !(c in g.columns))))",
                DUPLICATE_COLUMN_MESSAGE,
                "features",
            ),
            cel(
                "!has(self.transformations) || self.transformations.all(t, self.features.exists(f, t.column in f.columns))",
                "every transformation must name a selected feature column",
                "transformations",
            ),
            cel(
                "!has(self.transformations) "
                "|| self.transformations.all(t, self.transformations.exists_one(u, u.column == t.column))",
                "a column may have only one transformation",
                "transformations",
            ),
        )
    }

    name: Identifier = Field(description="Feature view name.")
    version: Version = Field(description="Feature view version; a model records the one it was trained on.")
    label: LabelSpec = Field(description="The label: the spine of the training data.")
    features: list[FeatureSelection] = Field(
        min_length=1, max_length=16, description="Feature columns per feature group; each group at most once."
    )
    transformations: list[Transformation] | None = Field(
        default=None, max_length=64, description="Model-dependent transformations fitted in training."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FeatureViewSpec:
        names = [f.feature_group.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FieldError("features", f"a feature view may not select the same feature group twice: {', '.join(dupes)}")
        label = self.label
        for f in self.features:
            if f.feature_group.name == label.feature_group.name and f.feature_group.version != label.feature_group.version:
                raise FieldError("label", "the label's feature group must be pinned at the same version as in features")
            if label.column in f.columns:
                raise FieldError("label", f"{LABEL_IS_FEATURE_MESSAGE}: {label.column!r} is selected from {f.feature_group.name}")
        owner: dict[str, str] = {}
        for f in self.features:
            for c in f.columns:
                if owner.setdefault(c, f.feature_group.name) != f.feature_group.name:
                    raise FieldError("features", f"{DUPLICATE_COLUMN_MESSAGE}: {c!r} from {owner[c]} and {f.feature_group.name}")
        columns = {c for f in self.features for c in f.columns}
        seen: set[str] = set()
        for t in self.transformations or []:
            if t.column not in columns:
                raise FieldError(
                    "transformations", f"every transformation must name a selected feature column: {t.column!r} is not one"
                )
            if t.column in seen:
                raise FieldError("transformations", f"a column may have only one transformation: {t.column!r}")
            seen.add(t.column)
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
    """How labelled rows are split into train and test sets."""

    type: Literal["time", "random"] = Field(
        default="time", description="time: the newest events are the test set; random: a seeded shuffle."
    )
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of rows in the test set, between 0 and 1 (exclusive)."
    )
    seed: int = Field(default=42, ge=0, description="Random seed (random split and estimators that take one).")


class TrainingDataSpec(ApiModel):
    """Which labelled events make the training data, and how they are split."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("!has(self.start) || !has(self.end) || self.start < self.end", "start must be before end", "start"),
        )
    }

    start: DateTime | None = Field(default=None, description="Only labels with event time at or after this (RFC 3339).")
    end: DateTime | None = Field(default=None, description="Only labels with event time before this (RFC 3339).")
    split: SplitSpec = Field(default_factory=SplitSpec, description="Train/test split.", json_schema_extra={"default": {}})

    @model_validator(mode="after")
    def _window(self) -> TrainingDataSpec:
        if self.start and self.end and self.start >= self.end:
            raise FieldError("start", "start must be before end")
        return self


# Every metric but log_loss lies in [0, 1]: a bound outside can never pass (or always does).
UNBOUNDED_METRICS = ("log_loss",)
BOUNDED_GATE_MESSAGE = "a gate on a metric between 0 and 1 needs bounds within [0, 1] (only log_loss is unbounded)"


class Gate(ApiModel):
    """A promotion gate: the model version is Validated only if the metric is within bounds."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.min) || has(self.max)", "a gate needs min or max"),
            cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max", "min"),
            cel(
                f"self.metric in {list(UNBOUNDED_METRICS)} || !has(self.min) || (self.min >= 0.0 && self.min <= 1.0)",
                BOUNDED_GATE_MESSAGE,
                "min",
            ),
            cel(
                f"self.metric in {list(UNBOUNDED_METRICS)} || !has(self.max) || (self.max >= 0.0 && self.max <= 1.0)",
                BOUNDED_GATE_MESSAGE,
                "max",
            ),
        ),
    }

    metric: Metric = Field(description="The test-set metric the gate reads.")
    min: float | None = Field(default=None, description="Smallest acceptable value.")
    max: float | None = Field(default=None, description="Largest acceptable value (for losses like log_loss).")

    @model_validator(mode="after")
    def _bound(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldError("min", "min must not exceed max")
        if self.metric not in UNBOUNDED_METRICS:
            for name, bound in (("min", self.min), ("max", self.max)):
                if bound is not None and not 0 <= bound <= 1:
                    raise FieldError(name, f"{BOUNDED_GATE_MESSAGE}: {self.metric} {name} {bound}")
        return self


class BiasGate(ApiModel):
    """A fairness gate: the metric may differ at most maxGap between the groups of a column."""

    sensitive_column: Identifier = Field(description="Column whose groups are compared (need not be a model feature).")
    metric: BiasMetric = "recall"
    max_gap: float = Field(gt=0, le=1, description="Largest allowed difference of the metric between groups.")
    min_group_size: int = Field(default=20, ge=1, description="Smaller groups are reported but not gated.")


class EvaluationSpec(ApiModel):
    """Test-set metrics, promotion gates and a bias gate."""

    metrics: list[Metric] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        max_length=16,
        description="Metrics computed on the test set and recorded per model version.",
        json_schema_extra={"x-kubernetes-list-type": "set", "default": ["roc_auc", "average_precision", "f1"]},
    )
    gates: list[Gate] = Field(default_factory=list, max_length=16, description="All must pass for the version to be Validated.")
    bias: BiasGate | None = Field(default=None, description="Optional fairness gate across a sensitive column.")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Decision threshold for label metrics.")

    @model_validator(mode="after")
    def _unique(self) -> EvaluationSpec:
        if len(set(self.metrics)) != len(self.metrics):
            raise FieldError("metrics", "Duplicate value: metrics must not repeat")
        return self


class TrainingPipelineSpec(ApiModel):
    """Desired state of a TrainingPipeline: a feature view -> validated, registered model versions."""

    model: ModelSpec = Field(description="The model name and what to train.")
    feature_view: FeatureViewSpec = Field(description="The inputs: label and features at pinned feature-group versions.")
    training_data: TrainingDataSpec = Field(
        default_factory=TrainingDataSpec, description="Time window and split.", json_schema_extra={"default": {}}
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec, description="Metrics and gates.", json_schema_extra={"default": {}}
    )
    schedule: CronSchedule | None = None
    suspend: bool = Field(default=False, description="Stop scheduled retraining (a run-now annotation still runs).")
    template: PodTemplate | None = Field(
        default=None, description="Pod overrides: image, resources (GPUs), env, serviceAccountName."
    )


class DatasetRef(StatusModel):
    version: int
    hash: str


class ModelVersionStatus(StatusModel):
    version: Version
    phase: Literal["Training", "Validated", "Rejected", "Failed"]
    feature_view: FeatureGroupRef | None = Field(
        default=None, description="Feature view name and version the model was trained on."
    )
    feature_groups: list[FeatureGroupRef] | None = Field(
        default=None, description="Every feature-group version the model's feature view reads (what serving needs materialized)."
    )
    training_dataset: DatasetRef | None = None
    metrics: dict[str, float] | None = None
    storage_uri: str | None = None
    job: str | None = None
    message: str | None = None
    created_at: datetime | None = None
    trigger: str | None = Field(
        default=None, description="Why the run started: Created, RunNow, SpecChanged, Scheduled or Drift."
    )
    triggered_by: str | None = Field(
        default=None, description="What asked for the run (a drift report: its InferenceService and run)."
    )
    profile_uri: str | None = Field(default=None, description="The training profile drift is measured against.")


class TrainingRun(StatusModel):
    """The last run the operator started and why: what the next reconcile compares a trigger with."""

    model_version: Version = Field(description="Model version assigned to the run (its Job is named after it).")
    trigger: str = Field(description="Why the run started: Created, RunNow, SpecChanged, Scheduled or Drift.")
    token: str | None = Field(default=None, description="The fti.dev/run token the run answered, if any.")
    training_hash: str | None = Field(default=None, description="Hash of the training-relevant spec the run was started for.")
    started_at: datetime | None = Field(default=None, description="When the run started (the schedule counts from here).")
    job: str | None = Field(default=None, description="Name of the run's Job.")


class TrainingPipelineStatus(StatusModel):
    """Observed state: every model version with its phase, metrics and lineage."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    latest_validated_version: int | None = None
    model_versions: list[ModelVersionStatus] = Field(default_factory=list)
    last_run: TrainingRun | None = None


class TrainingPipeline(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal[API_VERSION] = API_VERSION  # type: ignore[valid-type]
    kind: Literal[KIND_TRAINING_PIPELINE] = KIND_TRAINING_PIPELINE  # type: ignore[valid-type]
    metadata: ObjectMeta
    spec: TrainingPipelineSpec
    status: TrainingPipelineStatus | None = None
