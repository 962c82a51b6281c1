"""FeaturePipeline: raw data -> one feature group at one current version (docs/concepts.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .common import (
    CALLABLE_PATTERN,
    DURATION_PATTERN,
    ApiModel,
    Condition,
    CronSchedule,
    FieldError,
    Identifier,
    ObjectMeta,
    StatusModel,
    Uri,
    Version,
    cel,
    cel_rules,
)
from .identity import API_VERSION, FEATURE_PIPELINE, KIND_FEATURE_PIPELINE
from .regex import regex_problem
from .scheduling import PodTemplate

KIND = FEATURE_PIPELINE.kind
PLURAL = FEATURE_PIPELINE.plural


class FeatureGroupSpec(ApiModel):
    """The feature group this pipeline writes."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel(
                "!has(self.primaryKey) || !self.primaryKey.exists(k, k == self.eventTime)",
                "eventTime must not be part of primaryKey",
                "eventTime",
            ),
        )
    }

    name: Identifier = Field(description="Feature group name: lower case, digits and underscores.")
    version: Version = Field(description="Feature group version; a breaking schema change needs a new version.")
    primary_key: list[Identifier] = Field(
        min_length=1,
        max_length=8,
        description="Entity key columns (no repeats).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    event_time: Identifier = Field(description="Event-time column: watermark for incremental ingestion and point-in-time joins.")
    online: bool = Field(default=False, description="Also materialize the latest row per key into the online store.")
    description: str | None = Field(default=None, max_length=1024, description="What the features mean (shown in the store).")

    @model_validator(mode="after")
    def _event_time_not_in_key(self) -> FeatureGroupSpec:
        if len(set(self.primary_key)) != len(self.primary_key):
            raise FieldError("primaryKey", "Duplicate value: primaryKey columns must not repeat")
        if self.event_time in self.primary_key:
            raise FieldError("eventTime", "eventTime must not be part of primaryKey")
        return self


class GeneratorSpec(ApiModel):
    """A Python callable that produces the raw data (for examples and tests)."""

    function: str = Field(pattern=CALLABLE_PATTERN, max_length=256, description="module:function returning a pandas DataFrame.")
    params: dict[str, Any] | None = Field(
        default=None,
        description="Keyword arguments for the function.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class SourceSpec(ApiModel):
    """Where raw data comes from: files under a URI, or a generator."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.uri) != has(self.generator)", "exactly one of uri and generator must be set"),
        )
    }

    uri: Uri | None = Field(default=None, description="file:///path/ or s3://bucket/prefix/ (a file or a directory of files).")
    format: Literal["csv", "parquet", "jsonl"] = Field(default="parquet", description="File format of the source.")
    generator: GeneratorSpec | None = Field(default=None, description="A Python callable producing the raw data, instead of uri.")

    @model_validator(mode="after")
    def _one_source(self) -> SourceSpec:
        if (self.uri is None) == (self.generator is None):
            raise ValueError("exactly one of uri and generator must be set")
        return self


class Range(ApiModel):
    """An inclusive numeric range; either end may be open."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.min) || has(self.max)", "between needs min or max"),
            cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max", "min"),
        )
    }

    min: float | None = Field(default=None, description="Smallest allowed value.")
    max: float | None = Field(default=None, description="Largest allowed value.")

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("between needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldError("min", "min must not exceed max")
        return self


class Expectation(ApiModel):
    """One data expectation on a column, checked before anything is written."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel(
                "has(self.notNull) || has(self.unique) || has(self.between) || has(self.__in__) "
                "|| has(self.regex) || has(self.dtype)",
                "an expectation needs at least one check: notNull, unique, between, in, regex or dtype",
            ),
            cel(
                "!has(self.regex) || !has(self.dtype) || self.dtype == 'string'", "regex applies to string columns only", "regex"
            ),
        )
    }

    column: Identifier = Field(description="The column the checks apply to.")
    not_null: bool | None = Field(default=None, description="No missing values.")
    unique: bool | None = Field(default=None, description="No duplicate values.")
    between: Range | None = Field(default=None, description="Inclusive numeric range.")
    # Strings or integers (int-or-string on the wire): an untyped list would be invisible to CEL.
    in_: list[Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]] | None = Field(
        default=None, alias="in", min_length=1, max_length=1000, description="Allowed values (strings or integers)."
    )
    regex: str | None = Field(
        default=None, min_length=1, max_length=1024, description="Values must fully match this regular expression."
    )
    dtype: Literal["int", "float", "string", "bool", "datetime"] | None = Field(default=None, description="Expected column type.")
    mostly: float = Field(default=1.0, gt=0, le=1, description="Fraction of rows that must pass (1.0 = all).")

    @model_validator(mode="after")
    def _has_check(self) -> Expectation:
        if all(v is None for v in (self.not_null, self.unique, self.between, self.in_, self.regex, self.dtype)):
            raise ValueError("an expectation needs at least one check: notNull, unique, between, in, regex or dtype")
        if self.regex is not None and self.dtype not in (None, "string"):
            raise FieldError("regex", "regex applies to string columns only")
        problem = regex_problem(self.regex) if self.regex is not None else None
        if problem:
            raise FieldError("regex", f"{problem}; got {self.regex!r}")
        return self


class ValidationSpec(ApiModel):
    """Data expectations checked on every batch before anything is written."""

    on_failure: Literal["quarantine", "fail"] = Field(
        default="quarantine",
        description="quarantine: a failing batch goes whole to the store's quarantine and nothing of it is written; "
        "fail: also fail the run.",
    )
    # Optional rather than 0.0: a default would enter every rendered spec and rename the
    # run-once Jobs of existing pipelines (their name hashes the spec), re-running them.
    max_rejected_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The share of a run's rows read that may be quarantined (failed validation, or beyond "
        "allowedLateness) with the pipeline still Ready. Absent or 0: any quarantined row makes Ready False (reason "
        "DataQuarantined). The DataQuarantined condition reports quarantined rows either way (docs/data-quality.md).",
    )
    expectations: list[Expectation] = Field(
        default_factory=list,
        max_length=200,
        description="Checks per column: notNull, unique, between, in, regex, dtype, each with a mostly fraction.",
    )


class FeaturePipelineSpec(ApiModel):
    """Desired state of a FeaturePipeline: raw data -> one feature group at one current version."""

    feature_group: FeatureGroupSpec = Field(description="The feature group (name, version, keys) this pipeline writes.")
    source: SourceSpec = Field(description="Where the raw data comes from.")
    transform: str | None = Field(
        default=None,
        pattern=CALLABLE_PATTERN,
        max_length=256,
        description="module:function applied to the raw DataFrame, importable in the image.",
    )
    validation: ValidationSpec | None = Field(
        default=None, description="Data expectations; failing rows are quarantined, never dropped."
    )
    ingestion: Literal["incremental", "full"] = Field(
        default="incremental",
        description=(
            "incremental: add the batch's rows to the version (late rows included, deduplicated on primary key + "
            "event time); full: replace the version's data."
        ),
    )
    allowed_lateness: str | None = Field(
        default=None,
        max_length=32,
        pattern=DURATION_PATTERN,
        description=(
            "Incremental ingestion: how far before the version's watermark a row's event time may be and still be "
            "ingested, e.g. 6h or 90m. Rows later than that are quarantined with reason LateRow, never dropped. "
            "Absent: every late row is ingested."
        ),
    )
    schedule: CronSchedule | None = None
    suspend: bool = Field(default=False, description="Stop scheduling new runs.")
    template: PodTemplate | None = Field(
        default=None, description="Pod overrides: image, resources, env, serviceAccountName, nodeSelector."
    )


class RunResult(StatusModel):
    """The last run of one feature-group version, from the pod's termination message."""

    job: str
    succeeded: bool
    rows_read: int | None = Field(default=None, description="Rows the run read from its source.")
    rows_written: int | None = None
    rows_rejected: int | None = Field(default=None, description="Rows quarantined because the batch failed validation.")
    rows_too_late: int | None = Field(
        default=None, description="Rows quarantined with reason LateRow: event time beyond allowedLateness."
    )
    online_rows_written: int | None = Field(
        default=None, description="Rows the run published to the online store; absent when the group was offline for it."
    )
    watermark: str | None = None
    quarantine_uri: str | None = None
    late_quarantine_uri: str | None = None
    rejected_examples: list[str] | None = Field(
        default=None, max_length=3, description="The first rejected rows with the check each failed."
    )
    message: str | None = None
    finished_at: datetime | None = None


class OnlineDrop(StatusModel):
    """The Job that dropped a retired version's online data, from its termination message."""

    job: str
    succeeded: bool
    keys_dropped: int | None = Field(default=None, description="Entities deleted from the online store.")
    message: str | None = None
    finished_at: datetime | None = None


NEEDED_BY_LISTED = 20  # readers a kept version's status names; `neededByCount` counts them all


class FeatureGroupVersionStatus(StatusModel):
    version: Version
    state: Literal["Active", "Retained", "Retired", "Rematerializing"]
    last_run: RunResult | None = None
    needed_by: list[str] | None = Field(
        default=None,
        max_length=NEEDED_BY_LISTED,
        description="An older version kept (Retained, Rematerializing): 'namespace/name' of the InferenceServices "
        f"whose revisions read it, sorted, the first {NEEDED_BY_LISTED}. Not listed for the Active version, which is "
        "kept anyway.",
    )
    needed_by_count: int | None = Field(
        default=None,
        ge=1,
        description=f"How many InferenceServices read this kept version (neededBy lists the first {NEEDED_BY_LISTED}).",
    )
    online: bool | None = Field(
        default=None,
        description="Whether a run has published this version to the online store (false: materialized offline only).",
    )
    rematerialize_job: str | None = Field(
        default=None, description="The Job bringing a retired version back for a revision that needs it again."
    )
    online_drop: OnlineDrop | None = Field(
        default=None,
        description="A Retired version's online data is dropped by a Job once nothing needs it: the last such Job "
        "and what it reported (online turns false). A rollback that needs the version re-materializes it.",
    )


class FeaturePipelineStatus(StatusModel):
    """Observed state: per feature-group version its state and last run."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    versions: list[FeatureGroupVersionStatus] = Field(default_factory=list)


class FeaturePipeline(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal[API_VERSION] = API_VERSION  # type: ignore[valid-type]
    kind: Literal[KIND_FEATURE_PIPELINE] = KIND_FEATURE_PIPELINE  # type: ignore[valid-type]
    metadata: ObjectMeta
    spec: FeaturePipelineSpec
    status: FeaturePipelineStatus | None = None
