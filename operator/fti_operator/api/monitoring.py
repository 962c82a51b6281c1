"""InferenceService spec.monitoring and status.monitoring (docs/monitoring.md).

The operator schedules a monitoring job that compares what the served revisions were asked
in a recent window (the prediction log the model server writes) with the training profile of
each model version, and reads the job's one JSON result back into status, the `Drifted`
condition and a Prometheus gauge. With `onDrift: retrain` it asks the TrainingPipeline that
trained the stable model for one run per drift report, within a cooldown and a daily limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from .common import DURATION_PATTERN, ApiModel, CronSchedule, Identifier, StatusModel, cel, cel_rules, no_repeats, parse_duration


def _duration(field: str, low: int, high: int, bounds: str) -> tuple[Callable[[str], str], dict[str, Any]]:
    """A duration validator and its CEL rule, both with one message naming the field."""
    message = f"{field} must be a duration like 30m, 24h or 1h30m, between {bounds}"

    def check(value: str) -> str:
        if not (re.fullmatch(DURATION_PATTERN, value) and low <= parse_duration(value) <= high):
            raise ValueError(f"{message}; got {value!r}")
        return value

    rule = cel(
        f"self.matches({DURATION_PATTERN!r}) && duration(self) >= duration('{low}s') && duration(self) <= duration('{high}s')",
        message,
    )
    return check, cel_rules(rule)


_window_check, _window_cel = _duration("window", 60, 30 * 86400, "1m and 720h")
_cooldown_check, _cooldown_cel = _duration("cooldown", 0, 30 * 86400, "0s and 720h")


class LoggingSpec(ApiModel):
    """Prediction logging by the model server (env FTI_PREDICTION_LOG)."""

    sample_rate: float = Field(default=1.0, ge=0, le=1, description="Share of requests logged (0-1).")
    flush_seconds: int = Field(default=5, ge=1, le=3600, description="Longest time a logged prediction waits in memory.")


class DriftSpec(ApiModel):
    """How drift is measured per feature, and when a revision counts as drifted."""

    method: Literal["psi", "js", "wasserstein", "ks"] = Field(
        default="psi", description="psi (population stability index), js (Jensen-Shannon), wasserstein or ks."
    )
    threshold: float = Field(default=0.2, gt=0, le=1000, description="A feature whose score exceeds this has drifted.")
    features: list[Identifier] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Features compared; absent = every model input feature.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    _features = field_validator("features")(no_repeats)
    min_drifted_features: int = Field(
        default=1, ge=1, le=256, description="A revision has drifted when at least this many features have."
    )


class RetrainSpec(ApiModel):
    """Limits on retraining asked for by drift (onDrift: retrain)."""

    cooldown: Annotated[str, AfterValidator(_cooldown_check)] = Field(
        default="24h",
        max_length=32,
        description="Least time between two retraining requests, e.g. 24h, 30m.",
        json_schema_extra=_cooldown_cel,
    )
    max_per_day: int = Field(default=1, ge=1, le=24, description="Most retraining requests in any 24 hours.")


class MonitoringSpec(ApiModel):
    """Prediction logging and a scheduled drift check of the served revisions."""

    logging: LoggingSpec | None = Field(default=None, description="Log predictions (absent: the server logs nothing).")
    schedule: CronSchedule = Field(default="@hourly", description="When the drift check runs (cron, UTC).")
    window: Annotated[str, AfterValidator(_window_check)] = Field(
        default="24h",
        max_length=32,
        description="How far back each check reads predictions, e.g. 24h.",
        json_schema_extra=_window_cel,
    )
    min_rows: int = Field(
        default=1000, ge=1, le=100_000_000, description="Fewer logged predictions in the window: NotEnoughData, no verdict."
    )
    drift: DriftSpec = Field(
        default_factory=DriftSpec, description="Drift method and thresholds.", json_schema_extra={"default": {}}
    )
    on_drift: Literal["alert", "retrain"] = Field(
        default="alert",
        description="alert: condition, Event and metric only; retrain: also ask the stable model's TrainingPipeline for a run.",
    )
    retrain: RetrainSpec = Field(
        default_factory=RetrainSpec, description="Retraining limits (onDrift: retrain).", json_schema_extra={"default": {}}
    )


# --- status -----------------------------------------------------------------------------------


class FeatureDrift(StatusModel):
    name: str
    method: str | None = None
    score: float
    threshold: float | None = None
    drifted: bool = False


class MonitoredRevision(StatusModel):
    """The last drift report of one served revision (stable or canary)."""

    role: Literal["stable", "canary"]
    model: int | None = Field(default=None, description="Model version.")
    feature_view: int | None = Field(default=None, description="Feature-view version.")
    status: Literal["Drifted", "NoDrift", "NotEnoughData"]
    rows: int | None = Field(default=None, description="Logged predictions in the window.")
    drifted_features: int | None = None
    features: list[FeatureDrift] = Field(default_factory=list, description="The top features by drift score.")
    report_uri: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None


class RetrainRequest(StatusModel):
    """One run asked of a TrainingPipeline because of a drift report."""

    report: str = Field(description="The monitoring run (Job) whose report asked for it.")
    pipeline: str = Field(description="The TrainingPipeline asked.")
    token: str = Field(description="The fti.dev/run token set on it.")
    at: datetime


class MonitoringStatus(StatusModel):
    """What the last monitoring run reported, and the retraining it asked for."""

    job: str | None = Field(default=None, description="The monitoring run (Job) last recorded.")
    succeeded: bool | None = None
    message: str | None = None
    finished_at: datetime | None = None
    revisions: list[MonitoredRevision] = Field(default_factory=list)
    retrain_requests: list[RetrainRequest] = Field(
        default_factory=list, description="Retraining asked for in the last 24 hours (and the newest one), newest first."
    )
    handled_report: str | None = Field(default=None, description="The last drift report retraining was decided on.")
