"""InferenceService: serves one model, online (KServe) or in batch (CronJob) (DESIGN §3, §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from .common import (
    DURATION_PATTERN,
    ApiModel,
    Condition,
    CronSchedule,
    Identifier,
    ObjectMeta,
    PodTemplate,
    ResourceRequirements,
    Version,
    cel,
    cel_rules,
)

KIND = "InferenceService"
PLURAL = "inferenceservices"


class ModelRef(ApiModel):
    name: Identifier = Field(description="Registered model name (TrainingPipeline spec.model.name).")
    version: Union[Version, Literal["latest"]] = Field(
        default="latest",
        description="A model version number, or 'latest' = the newest Validated version.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )


class CanarySpec(ApiModel):
    traffic_percent: int = Field(ge=1, le=99, description="Share of requests the new revision gets until promoted.")


class OnlineSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", "minReplicas"),
            cel("self.missingEntity != 'defaults' || has(self.defaults)",
                "missingEntity 'defaults' needs defaults for the looked-up features", "defaults"),
        )
    }

    topology: Literal["combined", "transformer"] = Field(
        default="combined", description="combined: lookup and predict in one server (one hop); transformer: KServe transformer + predictor.")
    request_features: list[Identifier] = Field(default_factory=list, description="Features the caller sends instead of looking them up.",
                                               json_schema_extra={"x-kubernetes-list-type": "set"})
    missing_entity: Literal["reject", "defaults"] = Field(
        default="reject", description="An unknown entity key: reject the request (404) or serve with the declared defaults.")
    defaults: dict[str, Any] | None = Field(default=None, description="Default feature values for missingEntity: defaults.",
                                            json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    min_replicas: int = Field(default=1, ge=0, le=100)
    max_replicas: int = Field(default=1, ge=1, le=100)
    canary: CanarySpec | None = Field(default=None, description="Omit for an immediate rollout.")
    resources: ResourceRequirements | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "OnlineSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        if self.missing_entity == "defaults" and not self.defaults:
            raise ValueError("missingEntity 'defaults' needs defaults for the looked-up features")
        return self


class DataLocation(ApiModel):
    uri: str = Field(pattern=r"^(file|s3|gs|az|memory)://.+")
    format: Literal["csv", "parquet", "jsonl"] = "parquet"


class BatchSpec(ApiModel):
    schedule: CronSchedule | None = None
    input: DataLocation = Field(description="The entities to score (must carry the feature view's entity keys).")
    output: DataLocation = Field(description="Where predictions are written; every row carries model and feature-view versions.")
    as_of: Literal["runTime", "latest"] = Field(
        default="runTime", description="runTime: point-in-time features as of the run; latest: the newest values.")
    chunk_rows: int = Field(default=100_000, ge=1000, le=10_000_000, description="Rows scored per chunk (bounds memory).")


class RolloutSpec(ApiModel):
    auto_rollback: bool = Field(default=True, description="Go back to the previous revision when the new one is not ready in time.")
    readiness_timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] = Field(default="10m", description="e.g. 10m, 90s.")
    revision_history_limit: int = Field(default=5, ge=0, le=50)


class InferenceServiceSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("self.mode != 'online' || has(self.online)", "mode online needs spec.online", "online"),
            cel("self.mode != 'batch' || has(self.batch)", "mode batch needs spec.batch", "batch"),
            cel("self.mode != 'online' || !has(self.batch)", "spec.batch is only for mode batch", "batch"),
            cel("self.mode != 'batch' || !has(self.online)", "spec.online is only for mode online", "online"),
        )
    }

    model: ModelRef
    mode: Literal["online", "batch"] = "online"
    online: OnlineSpec | None = None
    batch: BatchSpec | None = None
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    template: PodTemplate | None = None

    @model_validator(mode="after")
    def _mode_settings(self) -> "InferenceServiceSpec":
        if self.mode == "online" and self.online is None:
            raise ValueError("mode online needs spec.online")
        if self.mode == "batch" and self.batch is None:
            raise ValueError("mode batch needs spec.batch")
        if self.mode == "online" and self.batch is not None:
            raise ValueError("spec.batch is only for mode batch")
        if self.mode == "batch" and self.online is not None:
            raise ValueError("spec.online is only for mode online")
        return self


class Revision(ApiModel):
    """A served pair: the unit of rollout and rollback (DESIGN §4.1)."""

    revision: int = Field(ge=1)
    model: int = Field(ge=1, description="Model version.")
    feature_view: int = Field(ge=1, description="Feature-view version the model was trained on.")
    traffic: int | None = Field(default=None, ge=0, le=100)
    since: datetime | None = None


class InferenceServiceStatus(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    url: str | None = None
    serving: Revision | None = None
    canary: Revision | None = None
    history: list[Revision] = Field(default_factory=list)
    last_run: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class InferenceService(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["fti.dev/v1alpha1"] = "fti.dev/v1alpha1"
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None
