"""FeaturePipeline: raw data -> one feature group at one current version (DESIGN §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from .common import (
    CALLABLE_PATTERN,
    ApiModel,
    Condition,
    CronSchedule,
    Identifier,
    ObjectMeta,
    PodTemplate,
    Version,
    cel,
    cel_rules,
)

KIND = "FeaturePipeline"
PLURAL = "featurepipelines"


class FeatureGroupSpec(ApiModel):
    """The feature group this pipeline writes."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("!has(self.primaryKey) || !self.primaryKey.exists(k, k == self.eventTime)",
                "eventTime must not be part of primaryKey", "eventTime"),
        )
    }

    name: Identifier = Field(description="Feature group name: lower case, digits and underscores.")
    version: Version = Field(description="Feature group version; a breaking schema change needs a new version.")
    primary_key: list[Identifier] = Field(min_length=1, max_length=8, description="Entity key columns.",
                                          json_schema_extra={"x-kubernetes-list-type": "set"})
    event_time: Identifier = Field(description="Event-time column: watermark for incremental ingestion and point-in-time joins.")
    online: bool = Field(default=False, description="Also materialize the latest row per key into the online store.")
    description: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _event_time_not_in_key(self) -> "FeatureGroupSpec":
        if self.event_time in self.primary_key:
            raise ValueError("eventTime must not be part of primaryKey")
        return self


class GeneratorSpec(ApiModel):
    """A Python callable that produces the raw data (for examples and tests)."""

    function: str = Field(pattern=CALLABLE_PATTERN, description="module:function returning a pandas DataFrame.")
    params: dict[str, Any] | None = Field(default=None, description="Keyword arguments for the function.",
                                          json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class SourceSpec(ApiModel):
    """Where raw data comes from: files under a URI, or a generator."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.uri) != has(self.generator)", "exactly one of uri and generator must be set"),
        )
    }

    uri: str | None = Field(default=None, pattern=r"^(file|s3|gs|az|memory)://.+",
                            description="file:///path/ or s3://bucket/prefix/ (a file or a directory of files).")
    format: Literal["csv", "parquet", "jsonl"] = Field(default="parquet", description="File format of the source.")
    generator: GeneratorSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "SourceSpec":
        if (self.uri is None) == (self.generator is None):
            raise ValueError("exactly one of uri and generator must be set")
        return self


class Range(ApiModel):
    min: float | None = None
    max: float | None = None


class Expectation(ApiModel):
    """One data expectation on a column, checked before anything is written."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.notNull) || has(self.unique) || has(self.between) || has(self.__in__) || has(self.regex) || has(self.dtype)",
                "an expectation needs at least one check: notNull, unique, between, in, regex or dtype"),
            cel("!has(self.between) || !has(self.between.min) || !has(self.between.max) || self.between.min <= self.between.max",
                "between.min must not exceed between.max", "between"),
        )
    }

    column: Identifier = Field(description="The column the checks apply to.")
    not_null: bool | None = Field(default=None, description="No missing values.")
    unique: bool | None = Field(default=None, description="No duplicate values.")
    between: Range | None = Field(default=None, description="Inclusive numeric range.")
    in_: list[str | int | float | bool] | None = Field(default=None, alias="in", min_length=1, description="Allowed values.")
    regex: str | None = Field(default=None, min_length=1, description="Values must fully match this regular expression.")
    dtype: Literal["int", "float", "string", "bool", "datetime"] | None = Field(default=None, description="Expected column type.")
    mostly: float = Field(default=1.0, gt=0, le=1, description="Fraction of rows that must pass (1.0 = all).")

    @model_validator(mode="after")
    def _has_check(self) -> "Expectation":
        if all(v is None for v in (self.not_null, self.unique, self.between, self.in_, self.regex, self.dtype)):
            raise ValueError("an expectation needs at least one check: notNull, unique, between, in, regex or dtype")
        if self.between and self.between.min is not None and self.between.max is not None and self.between.min > self.between.max:
            raise ValueError("between.min must not exceed between.max")
        return self


class ValidationSpec(ApiModel):
    on_failure: Literal["quarantine", "fail"] = Field(
        default="quarantine", description="quarantine: keep the failing batch aside and succeed; fail: also fail the run.")
    expectations: list[Expectation] = Field(default_factory=list, max_length=200)


class FeaturePipelineSpec(ApiModel):
    feature_group: FeatureGroupSpec
    source: SourceSpec
    transform: str | None = Field(default=None, pattern=CALLABLE_PATTERN,
                                  description="module:function applied to the raw DataFrame, importable in the image.")
    validation: ValidationSpec | None = None
    ingestion: Literal["incremental", "full"] = Field(
        default="incremental", description="incremental: only rows newer than the watermark; full: replace the version's data.")
    schedule: CronSchedule | None = None
    suspend: bool = Field(default=False, description="Stop scheduling new runs.")
    template: PodTemplate | None = None


class RunResult(ApiModel):
    """The last run of one feature-group version, from the pod's termination message."""

    job: str
    succeeded: bool
    rows_written: int | None = None
    rows_rejected: int | None = None
    watermark: str | None = None
    quarantine_uri: str | None = None
    message: str | None = None
    finished_at: datetime | None = None


class FeatureGroupVersionStatus(ApiModel):
    version: Version
    state: Literal["Active", "Retained", "Retired"]
    last_run: RunResult | None = None
    needed_by: list[str] | None = None


class FeaturePipelineStatus(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    versions: list[FeatureGroupVersionStatus] = Field(default_factory=list)


class FeaturePipeline(ApiModel):
    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["fti.dev/v1alpha1"] = "fti.dev/v1alpha1"
    kind: Literal["FeaturePipeline"] = "FeaturePipeline"
    metadata: ObjectMeta
    spec: FeaturePipelineSpec
    status: FeaturePipelineStatus | None = None
