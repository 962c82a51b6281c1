"""InferenceService monitoring: the monitoring CronJob, its reports in status, retraining on drift.

Called by the InferenceService reconcile (reconcile/inference.py): `observe` reads the newest
finished monitoring run when status does not record it yet (one LIST of the runs, one of the
pods of a new one), decides retraining (versions/monitoring.py) and returns status.monitoring,
the Drifted/Retraining conditions and the transition Events, which the reconcile writes in its
one status write; `apply_cronjob` then writes the CronJob from the revisions that status says
serve. Retraining is a run-now token on the TrainingPipeline that trained the stable model,
derived from the report, so asking again after a crash asks for the same run (docs/monitoring.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api import InferenceService
from ..api.common import parse_duration
from ..api.identity import ANNOTATION_RUN, ANNOTATION_RUN_CAUSE, API_VERSION, TRAINING_PIPELINE
from ..api.monitoring import MonitoringStatus
from ..render import monitoring as render_monitoring
from ..render.pods import LABEL_COMPONENT, LABEL_KIND, LABEL_RESOURCE
from ..versions import ModelInfo
from ..versions.monitoring import decide_retrain, drift_condition, keep_requests, report_revisions, retrain_token
from .children import apply_child
from .conditions import condition, now_iso
from .context import Context, Result
from .runs import newest_finished, read_run
from .writes import typed


@dataclass
class Monitoring:
    """What the monitoring part adds to the InferenceService's status write."""

    status: dict[str, Any] | None = None  # status.monitoring (None: spec.monitoring is off)
    conditions: tuple[dict[str, Any], ...] = ()
    events: list[tuple[str, str, str]] = field(default_factory=list)
    new_report: bool = False


def _old_condition(body: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    return next((dict(c) for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def _read_report(ctx: Context, isvc: InferenceService, old: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest finished monitoring run as status.monitoring, or None when it is recorded already."""
    name = isvc.metadata.name
    selector = (
        f"{LABEL_KIND}={render_monitoring.KIND.lower()},{LABEL_RESOURCE}={name},{LABEL_COMPONENT}={render_monitoring.COMPONENT}"
    )
    jobs = ctx.kube.list("batch/v1", "jobs", isvc.metadata.namespace, selector)
    newest = newest_finished(jobs, lambda _job: "monitoring").get("monitoring")
    if newest is None or newest["metadata"]["name"] == old.get("job"):
        return None
    run = read_run(ctx.kube, newest)
    result = run.result or {}
    ok = bool(run.succeeded and result.get("ok", True) is not False)
    report: dict[str, Any] = {**old, "job": run.job, "succeeded": ok, "finishedAt": result.get("finishedAt") or run.finished_at}
    report.pop("message", None)
    if ok:
        report["revisions"] = report_revisions(result)
    else:
        reason = result.get("reason") or "MonitoringFailed"
        report["message"] = f"{reason}: {result.get('error') or 'the monitoring run failed'}"[:1024]
    return report


def _training_pipeline(ctx: Context, isvc: InferenceService, model_version: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The TrainingPipeline that trained `model_version` of the served model, and its body."""
    ns = isvc.metadata.namespace or "default"
    models: list[ModelInfo] = ctx.lookups.models(ns, isvc.spec.model.name)
    info = next((m for m in models if m.version == model_version and m.pipeline), None)
    if info is None or info.pipeline is None:
        return None, None
    return info.pipeline, ctx.kube.get(API_VERSION, TRAINING_PIPELINE.plural, ns, info.pipeline)


def _training_end(tp: Mapping[str, Any] | None) -> datetime | None:
    end = (((tp or {}).get("spec") or {}).get("trainingData") or {}).get("end")
    return datetime.fromisoformat(str(end)) if end else None


def _retrain(
    ctx: Context, isvc: InferenceService, report: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], tuple[str, str, str] | None]:
    """Decide retraining on a new report (once per report); ask for the run when due.

    The run-now token is written before status records the request: a crash between the two
    makes the next reconcile write the same token again, which starts no second run."""
    mon = isvc.spec.monitoring
    assert mon is not None
    ns, name, job = isvc.metadata.namespace or "default", isvc.metadata.name, str(report["job"])
    drifted = [r for r in report.get("revisions") or [] if r.get("role") == "stable" and r.get("status") == "Drifted"]
    pipeline, tp = _training_pipeline(ctx, isvc, drifted[0].get("model")) if drifted else (None, None)
    decision = decide_retrain(
        report=job,
        drifted=drifted,
        requests=report.get("retrainRequests") or [],
        now=now,
        cooldown_seconds=parse_duration(mon.retrain.cooldown),
        max_per_day=mon.retrain.max_per_day,
        pipeline=pipeline if tp is not None else None,
        training_end=_training_end(tp),
    )
    report["handledReport"] = job
    cond = condition("Retraining", decision.request, decision.reason, decision.message[:1024])
    if not decision.request or pipeline is None:
        return cond, None
    token = retrain_token(ns, name, job)
    cause = {"token": token, "trigger": "Drift", "by": f"InferenceService {name}, drift report {job}"}
    ctx.kube.patch(
        API_VERSION,
        TRAINING_PIPELINE.plural,
        ns,
        pipeline,
        {"metadata": {"annotations": {ANNOTATION_RUN: token, ANNOTATION_RUN_CAUSE: json.dumps(cause, sort_keys=True)}}},
    )
    request = {"report": job, "pipeline": pipeline, "token": token, "at": now_iso(now)}
    report["retrainRequests"] = keep_requests([request, *(report.get("retrainRequests") or [])], now)
    return cond, ("Normal", "RetrainingRequested", f"drift report {job}: asked TrainingPipeline {pipeline} for a run ({token})")


def observe(ctx: Context, isvc: InferenceService, body: Mapping[str, Any], now: datetime) -> Monitoring:
    """status.monitoring, the Drifted (and Retraining) conditions and Events for this reconcile."""
    mon = isvc.spec.monitoring
    if mon is None:
        return Monitoring()
    old = dict((body.get("status") or {}).get("monitoring") or {})
    report = _read_report(ctx, isvc, old)
    current = report if report is not None else old
    events: list[tuple[str, str, str]] = []
    ok, reason, message = drift_condition(current, mon.min_rows)
    drifted = condition("Drifted", ok, reason, message)
    before = _old_condition(body, "Drifted")
    if ok is True and (before or {}).get("status") != "True":
        events.append(("Warning", "DriftDetected", message))
    elif ok is False and (before or {}).get("status") == "True":
        events.append(("Normal", "DriftEnded", message))
    conds = [drifted]
    if mon.on_drift == "retrain":
        retraining = _old_condition(body, "Retraining")
        handled = current.get("handledReport") == current.get("job")
        if current.get("job") and current.get("succeeded") and not handled:
            current = dict(current)
            retraining, event = _retrain(ctx, isvc, current, now)
            if event:
                events.append(event)
        if retraining is None:
            retraining = condition("Retraining", False, "NoDrift", "no drift report has asked for retraining")
        conds.append({k: retraining[k] for k in ("type", "status", "reason", "message")})
    return Monitoring(typed(MonitoringStatus, current), tuple(conds), events, report is not None)


def monitored_revisions(status: Mapping[str, Any], models: list[ModelInfo]) -> list[render_monitoring.MonitoredRevision]:
    """The revisions serving now (stable, and the target while KServe routes a share of the
    requests to it: the canary), with their profiles."""
    profiles = {m.version: m.profile_uri for m in models}
    target = status.get("target") or {}
    out = []
    for role, rev in (("stable", status.get("stable")), ("canary", target if target.get("traffic") else None)):
        if rev and rev.get("model") is not None:
            uri = rev.get("storageUri")
            out.append(
                render_monitoring.MonitoredRevision(
                    role=role,
                    model_version=int(rev["model"]),
                    feature_view_version=int(rev.get("featureView") or 0),
                    model_uri=uri,
                    profile_uri=render_monitoring.profile_uri(uri, profiles.get(int(rev["model"]))),
                )
            )
    return out


def apply_cronjob(ctx: Context, isvc: InferenceService, body: Mapping[str, Any], result: Result, had: bool) -> None:
    """Write the monitoring CronJob for the revisions status says serve; delete ours when
    spec.monitoring is gone (looked for only when status had a monitoring part: `had`)."""
    ns = isvc.metadata.namespace or "default"
    status = body.get("status") or {}
    if isvc.spec.monitoring is None:
        if not had:
            return
        name = render_monitoring.monitoring_name(isvc)
        live = ctx.kube.get("batch/v1", "cronjobs", ns, name)
        owned = live and any(r.get("uid") == isvc.metadata.uid for r in live["metadata"].get("ownerReferences") or [])
        if owned:
            ctx.kube.delete("batch/v1", "cronjobs", ns, name)
            result.count("deleted")
        return
    models = ctx.lookups.models(ns, isvc.spec.model.name)
    desired = render_monitoring.render_monitoring(isvc, monitored_revisions(status, models), ctx.config, owner=body)
    action, _ = apply_child(ctx.kube, desired)
    result.count(action)
