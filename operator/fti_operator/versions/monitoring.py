"""Drift reports -> status, the Drifted condition and the retraining decision (pure; docs/monitoring.md).

A monitoring run reports, per served revision, whether the predictions of its window drifted
from the model's training profile. Retraining is asked at most once per report, not within
`cooldown` of the previous request nor beyond `maxPerDay` in 24 hours, and not when the
TrainingPipeline's data window ends before the drifted window starts: a run on the same data
would produce the same model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

TOP_FEATURES = 10
DAY = timedelta(days=1)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def report_revisions(result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The termination result's revisions as status.monitoring.revisions[] (camelCase)."""
    out = []
    for r in (result or {}).get("revisions") or []:
        if not isinstance(r, Mapping) or r.get("status") not in ("Drifted", "NoDrift", "NotEnoughData"):
            continue
        features = sorted(
            (f for f in r.get("features") or [] if isinstance(f, Mapping) and f.get("name") and f.get("score") is not None),
            key=lambda f: -float(f["score"]),
        )[:TOP_FEATURES]
        entry: dict[str, Any] = {
            "role": "canary" if r.get("role") == "canary" else "stable",
            "model": r.get("modelVersion"),
            "featureView": r.get("featureViewVersion"),
            "status": r["status"],
            "rows": r.get("rows"),
            "driftedFeatures": r.get("driftedFeatures"),
            "features": [
                {k: f.get(k) for k in ("name", "method", "score", "threshold", "drifted") if f.get(k) is not None}
                for f in features
            ],
            "reportUri": r.get("reportUri"),
            "windowStart": r.get("windowStart"),
            "windowEnd": r.get("windowEnd"),
        }
        out.append({k: v for k, v in entry.items() if v is not None})
    return out


def _describe(r: Mapping[str, Any]) -> str:
    return f"{r.get('role', 'stable')} model v{r.get('model')} (feature view v{r.get('featureView')})"


def drifted_names(r: Mapping[str, Any]) -> list[str]:
    return [f["name"] for f in r.get("features") or [] if f.get("drifted")]


def drift_condition(monitoring: Mapping[str, Any] | None, min_rows: int) -> tuple[bool | None, str, str]:
    """(status, reason, message) of the Drifted condition from the recorded report."""
    if not monitoring or not monitoring.get("job"):
        return None, "NoReportYet", "no monitoring run has finished yet"
    if monitoring.get("succeeded") is False:
        return None, "MonitoringFailed", str(monitoring.get("message") or "the monitoring run failed")[:1024]
    revisions = monitoring.get("revisions") or []
    drifted = [r for r in revisions if r.get("status") == "Drifted"]
    if drifted:
        parts = []
        for r in drifted:
            scores = ", ".join(
                f"{f['name']} {f.get('method', '')} {float(f['score']):.3f}".replace("  ", " ")
                for f in r.get("features") or []
                if f.get("drifted")
            )
            parts.append(f"{_describe(r)}: {scores or str(r.get('driftedFeatures', '?')) + ' features'}")
        return True, "Drifted", "; ".join(parts)[:1024]
    short = [r for r in revisions if r.get("status") == "NotEnoughData"]
    if short or not revisions:
        detail = ", ".join(f"{_describe(r)} {r.get('rows', 0)} rows" for r in short)
        return (
            None,
            "NotEnoughData",
            f"fewer than {min_rows} logged predictions in the window" + (f": {detail}" if detail else ""),
        )
    return False, "NoDrift", "; ".join(f"{_describe(r)}: no drift in {r.get('rows', 0)} rows" for r in revisions)[:1024]


def retrain_token(namespace: str, name: str, report: str) -> str:
    """The fti.dev/run token for one report: the same report always asks with the same token,
    so asking again after a crash is not a second run."""
    return "drift-" + hashlib.sha256(f"{namespace}/{name}/{report}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RetrainDecision:
    request: bool
    reason: str
    message: str


def decide_retrain(
    *,
    report: str,
    drifted: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    now: datetime,
    cooldown_seconds: float,
    max_per_day: int,
    pipeline: str | None,
    training_end: datetime | None,
) -> RetrainDecision:
    """Whether a drift report asks its stable model's TrainingPipeline for a run now.

    drifted: the report's drifted stable revisions (a drifted canary is a rollout matter: the
    automatic rollback and the canary gates decide on it); requests: the ones asked before."""
    if not drifted:
        return RetrainDecision(False, "NoDrift", "the stable revision has not drifted")
    if pipeline is None:
        return RetrainDecision(False, "NoTrainingPipeline", "no TrainingPipeline of this namespace trained the stable model")
    window_start = min((t for r in drifted if (t := _time(r.get("windowStart"))) is not None), default=None)
    if training_end is not None and window_start is not None and training_end <= window_start:
        return RetrainDecision(
            False,
            "TrainingWindowStale",
            f"TrainingPipeline {pipeline} trains on data before {training_end.isoformat()}, before the drifted window "
            f"(from {window_start.isoformat()}): retraining would see none of the drifted data; move spec.trainingData.end",
        )
    times = sorted((t for r in requests if (t := _time(r.get("at"))) is not None), reverse=True)
    if times and now - times[0] < timedelta(seconds=cooldown_seconds):
        until = (times[0] + timedelta(seconds=cooldown_seconds)).isoformat()
        message = f"retraining was last asked at {times[0].isoformat()}; cooldown until {until}"
        return RetrainDecision(False, "CooldownActive", message)
    if sum(1 for t in times if now - t < DAY) >= max_per_day:
        return RetrainDecision(False, "DailyLimitReached", f"{max_per_day} retraining request(s) in the last 24 hours already")
    return RetrainDecision(True, "Requested", f"asked TrainingPipeline {pipeline} for a run (drift report {report})")


def keep_requests(requests: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Requests worth remembering: the newest (the cooldown) and those of the last 24 hours."""
    ordered = sorted((dict(r) for r in requests), key=lambda r: str(r.get("at") or ""), reverse=True)
    return [r for i, r in enumerate(ordered) if i == 0 or ((t := _time(r.get("at"))) is not None and now - t < DAY)]
