"""InferenceService: serves one model, online (KServe) or in batch (CronJob) (docs/concepts.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from .common import (
    DURATION_PATTERN,
    ApiModel,
    Condition,
    CronSchedule,
    FeatureGroupRef,
    FieldError,
    Identifier,
    ObjectMeta,
    ResourceRequirements,
    StatusModel,
    Uri,
    Version,
    cel,
    cel_rules,
    no_repeats,
    parse_duration,
    uri_parts,
)
from .identity import API_VERSION, INFERENCE_SERVICE, KIND_INFERENCE_SERVICE
from .monitoring import MonitoringSpec, MonitoringStatus
from .scheduling import PodTemplate

KIND = INFERENCE_SERVICE.kind
PLURAL = INFERENCE_SERVICE.plural


MODEL_VERSION_MESSAGE = "version must be a positive integer (at most 1000000) or 'latest'"


class ModelRef(ApiModel):
    """The model to serve: a registered name and a version (a number, or latest)."""

    name: Identifier = Field(description="Registered model name (TrainingPipeline spec.model.name).")
    version: Version | Literal["latest"] = Field(
        default="latest",
        description="A model version number, or 'latest' = the newest Validated version. "
        "Naming an earlier number rolls back to it (with its feature-view version).",
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            **cel_rules(cel("type(self) == int ? (self >= 1 && self <= 1000000) : self == 'latest'", MODEL_VERSION_MESSAGE)),
        },
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        # One message for both branches of the union (pydantic would list two), the CEL rule's.
        if (v == "latest" and isinstance(v, str)) or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000):
            return v
        raise ValueError(f"{MODEL_VERSION_MESSAGE}; got {v!r}")


class CanarySpec(ApiModel):
    """Canary rollout: the new revision gets a share of traffic until it is ready, then is promoted."""

    traffic_percent: int = Field(ge=1, le=99, description="Share of requests (1-99) the new revision gets until promoted.")
    when_unsupported: Literal["hold", "rollOut"] = Field(
        default="hold",
        description="Where KServe cannot split traffic (RawDeployment mode): hold the new revision "
        "back and say so (hold), or roll it out to all traffic at once (rollOut).",
    )


class OnlineSpec(ApiModel):
    """Online serving: a KServe InferenceService looking up features of the model's feature-view version."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", "minReplicas"),
            cel(
                "self.missingEntity != 'defaults' || has(self.defaults)",
                "missingEntity 'defaults' needs defaults for the looked-up features",
                "defaults",
            ),
            cel(
                "!has(self.defaults) || self.missingEntity == 'defaults'",
                "defaults are used only with missingEntity 'defaults'",
                "defaults",
            ),
        )
    }

    topology: Literal["combined", "transformer"] = Field(
        default="combined",
        description="combined: lookup and predict in one server (one hop); transformer: KServe transformer + predictor.",
    )
    request_features: list[Identifier] = Field(
        default_factory=list,
        description="Features the caller sends instead of looking them up.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    _request_features = field_validator("request_features")(no_repeats)
    missing_entity: Literal["reject", "defaults"] = Field(
        default="reject", description="An unknown entity key: reject the request (404) or serve with the declared defaults."
    )
    defaults: dict[str, Any] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Default feature values (column: value) for missingEntity: defaults.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    min_replicas: int = Field(default=1, ge=0, le=100, description="Fewest replicas (0 = scale to zero, Serverless mode only).")
    max_replicas: int = Field(default=1, ge=1, le=100, description="Most replicas.")
    canary: CanarySpec | None = Field(default=None, description="Omit for an immediate rollout.")
    resources: ResourceRequirements | None = Field(default=None, description="Resources of the serving container.")

    @model_validator(mode="after")
    def _consistent(self) -> OnlineSpec:
        if self.min_replicas > self.max_replicas:
            raise FieldError("minReplicas", "minReplicas must not exceed maxReplicas")
        if self.missing_entity == "defaults" and self.defaults is None:
            raise FieldError("defaults", "missingEntity 'defaults' needs defaults for the looked-up features")
        if self.defaults is not None and self.missing_entity != "defaults":
            raise FieldError("defaults", "defaults are used only with missingEntity 'defaults'")
        return self


class DataLocation(ApiModel):
    """Files under a URI."""

    uri: Uri = Field(description="file:///path/ or s3://bucket/prefix/.")
    format: Literal["csv", "parquet", "jsonl"] = Field(default="parquet", description="csv | parquet | jsonl.")


OUTPUT_IS_INPUT_MESSAGE = "output must not be the input location (compared without repeated or trailing slashes)"


class BatchSpec(ApiModel):
    """Batch scoring: a CronJob (or Job) reading entities and writing predictions."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            # Compared by their non-empty '/'-separated parts, as uri_parts does.
            cel(
                "self.input.uri.split('/').filter(p, p != '') != self.output.uri.split('/').filter(p, p != '')",
                OUTPUT_IS_INPUT_MESSAGE,
                "output",
            ),
        )
    }

    schedule: CronSchedule | None = None
    input: DataLocation = Field(description="The entities to score (must carry the feature view's entity keys).")
    output: DataLocation = Field(description="Where predictions are written; every row carries model and feature-view versions.")
    as_of: Literal["runTime", "latest"] = Field(
        default="runTime", description="runTime: point-in-time features as of the run; latest: the newest values."
    )
    chunk_rows: int = Field(default=100_000, ge=1000, le=10_000_000, description="Rows scored per chunk (bounds memory).")

    @model_validator(mode="after")
    def _distinct(self) -> BatchSpec:
        if uri_parts(self.input.uri) == uri_parts(self.output.uri):
            raise FieldError("output", OUTPUT_IS_INPUT_MESSAGE)
        return self


DURATION_MESSAGE = "readinessTimeout must be a duration like 10m, 90s or 1h30m, between 1s and 24h"


def _check_timeout(value: str) -> str:
    if not (re.fullmatch(DURATION_PATTERN, value) and 1 <= parse_duration(value) <= 86400):
        raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
    return value


class RolloutSpec(ApiModel):
    """How a new (model, feature-view) revision replaces the serving one, and how it rolls back."""

    auto_rollback: bool = Field(
        default=True, description="Go back to the previous revision when the new one is not ready in time."
    )
    readiness_timeout: Annotated[str, AfterValidator(_check_timeout)] = Field(
        default="10m",
        max_length=32,
        description="How long a new revision may take to become ready, e.g. 10m, 90s.",
        json_schema_extra=cel_rules(
            cel(
                f"self.matches({DURATION_PATTERN!r}) && duration(self) >= duration('1s') && duration(self) <= duration('24h')",
                DURATION_MESSAGE,
            )
        ),
    )
    revision_history_limit: int = Field(
        default=5, ge=0, le=50, description="Earlier revisions kept for rollback (their feature versions stay materialized)."
    )


class InferenceServiceSpec(ApiModel):
    """Desired state of an InferenceService: one model served online (KServe) or in batch."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("self.mode != 'online' || has(self.online)", "mode online needs spec.online", "online"),
            cel("self.mode != 'batch' || has(self.batch)", "mode batch needs spec.batch", "batch"),
            cel("self.mode != 'online' || !has(self.batch)", "spec.batch is only for mode batch", "batch"),
            cel("self.mode != 'batch' || !has(self.online)", "spec.online is only for mode online", "online"),
        )
    }

    model: ModelRef = Field(description="The model name and version to serve.")
    mode: Literal["online", "batch"] = Field(
        default="online", description="online: a KServe InferenceService; batch: a scheduled scoring job."
    )
    online: OnlineSpec | None = Field(default=None, description="Online settings (mode online).")
    batch: BatchSpec | None = Field(default=None, description="Batch settings (mode batch).")
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec, description="Rollout and rollback.", json_schema_extra={"default": {}}
    )
    template: PodTemplate | None = Field(default=None, description="Pod overrides: image, resources, env, serviceAccountName.")
    monitoring: MonitoringSpec | None = Field(
        default=None, description="Prediction logging and drift monitoring of the served revisions (docs/monitoring.md)."
    )

    @model_validator(mode="after")
    def _mode_settings(self) -> InferenceServiceSpec:
        if self.mode == "online" and self.online is None:
            raise FieldError("online", "mode online needs spec.online")
        if self.mode == "batch" and self.batch is None:
            raise FieldError("batch", "mode batch needs spec.batch")
        if self.mode == "online" and self.batch is not None:
            raise FieldError("batch", "spec.batch is only for mode batch")
        if self.mode == "batch" and self.online is not None:
            raise FieldError("online", "spec.online is only for mode online")
        return self


class Revision(StatusModel):
    """A served pair: the unit of rollout and rollback (docs/versions.md)."""

    revision: int = Field(ge=1)
    model: int = Field(ge=1, description="Model version.")
    feature_view: int = Field(ge=1, description="Feature-view version the model was trained on.")
    traffic: int | None = Field(default=None, ge=0, le=100)
    since: datetime | None = None
    kserve_revision: str | None = Field(default=None, description="KServe's name for this revision once it was ready.")
    # The snapshot that makes a revision self-contained: retention and rollback read these,
    # never another resource's status (docs/versions.md).
    feature_view_name: str | None = Field(default=None, description="Name of the feature view the model reads.")
    storage_uri: str | None = Field(default=None, description="The model version's artifact (immutable).")
    feature_groups: list[FeatureGroupRef] | None = Field(
        default=None, description="Every feature-group version this revision reads (kept materialized while it may serve)."
    )


class FailedRevision(Revision):
    """A target that was rolled back or aborted, and why; not retried while the spec stays the same."""

    reason: str = Field(description="ProgressDeadlineExceeded or Aborted.")
    message: str | None = Field(default=None, description="What KServe (or the skew guard) said about it.")
    generation: int | None = Field(default=None, description="The spec generation it failed under.")


class PinnedRevision(Revision):
    """A revision an fti.dev/rollback annotation brought back (no Git drift)."""

    pinned_for: list[int] | None = Field(
        default=None,
        description="The (model, feature view) pair the spec resolved to when pinned: "
        "the pin holds until the spec resolves to a different one.",
    )


class PendingRevision(Revision):
    """An asked pair not rolled out yet: it has no revision number until it is."""

    revision: int | None = Field(default=None, ge=1)  # type: ignore[assignment]


class InferenceServiceStatus(StatusModel):
    """Observed state: what serves (stable), what is being rolled out (target), what failed, history, URL."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    url: str | None = None
    stable: Revision | None = Field(default=None, description="The pair KServe last reported ready at full traffic.")
    target: Revision | None = Field(default=None, description="The pair being rolled out (a canary when traffic < 100).")
    failed: FailedRevision | None = Field(default=None, description="The last pair rolled back or aborted.")
    pinned: PinnedRevision | None = Field(default=None, description="The pair an fti.dev/rollback annotation pinned.")
    pending: PendingRevision | None = Field(
        default=None, description="The asked pair waiting for its feature-group versions (kept or brought back for it)."
    )
    history: list[Revision] = Field(default_factory=list, description="Earlier stable pairs, newest first.")
    routed: list[Revision] = Field(
        default_factory=list,
        description="Every pair KServe's traffic still routes requests to, with its share, newest first.",
    )
    handled: dict[str, str] | None = Field(
        default=None, description="The last token of each rollout annotation (rollback, promote, abort, retry) acted on."
    )
    last_run: dict[str, Any] | None = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    monitoring: MonitoringStatus | None = Field(default=None, description="The last drift report per served revision.")


class InferenceService(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal[API_VERSION] = API_VERSION  # type: ignore[valid-type]
    kind: Literal[KIND_INFERENCE_SERVICE] = KIND_INFERENCE_SERVICE  # type: ignore[valid-type]
    metadata: ObjectMeta
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None
