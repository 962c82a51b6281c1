"""TrainingPipeline reconcile: assign model versions, start training Jobs, keep status in line.

Why the operator (not a CronJob) starts scheduled runs: a run's model version must be
assigned before the run exists, and one number must never go to two runs. The Job is named
after its version (create is idempotent by name) and carries why it ran (trigger, run-now
token, training hash); the same reconcile then records the run in `status.lastRun`, in the
status patch it writes anyway. A crash between the two steps is healed by the next
reconcile, which finds the newest Job ahead of `status.lastRun` and takes the run from it —
so the version is never handed out twice and no extra write is spent on bookkeeping.
Objects written by an older operator keep their run in the annotation `fti.dev/last-run`,
which is still read.

A run starts on: create (no run yet), a change of the training-relevant spec (hash), a new
run-now token (`fti.dev/run=<token>`), or the schedule coming due.

The number the operator gives a run (its Job's name and `fti.dev/model-version` label) is
the version it expects; the model registry owns the numbers and allocates the version the
run registers (docs/store-layout.md, "Models"). A run reports that version in its result and
status records the model under it: usually the same number, a higher one when the registry
already holds the expected one for another run (a re-created TrainingPipeline, a second one
with the same model name). A version's entry names its Job, which is how a Job's result is
matched to its entry whatever number it ended up with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from croniter import croniter

from ..api import TrainingPipeline
from ..api.identity import (
    ANNOTATION_LAST_RUN,
    ANNOTATION_RUN,
    ANNOTATION_RUN_CAUSE,
    ANNOTATION_TRIGGERED_BY,
    API_VERSION,
    LABEL_FEATURE_VIEW_KEY,
    TRAINING_PIPELINE,
    feature_view_key,
)
from ..api.training_pipeline import TrainingPipelineStatus
from ..render import training as render_training
from ..render.pods import LABEL_KIND, LABEL_MANAGED_BY, LABEL_MODEL_VERSION, LABEL_RESOURCE, MANAGED_BY
from ..render.training import TOKEN_ANNOTATION, TRAINING_HASH_ANNOTATION, TRIGGER_ANNOTATION
from ..versions import next_model_version
from .children import apply_child
from .conditions import condition, merge_conditions, now_iso, ready_rollup
from .context import Context, Result
from .results import model_version_entry
from .runs import newest_finished, read_run
from .store_access import gate, with_access
from .validity import parse_or_report
from .view_definitions import in_use, redefinition
from .writes import emit_event, typed, update_status

PLURAL = TRAINING_PIPELINE.plural
RUN_ANNOTATION = ANNOTATION_RUN
# Where operators before status.lastRun kept the run; read only.
INTENT_ANNOTATION = ANNOTATION_LAST_RUN


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)


def intent_to_status(intent: Mapping[str, Any], job: str | None) -> dict[str, Any]:
    """The run as status.lastRun (TrainingRun, camelCase); absent fields are left out so an
    unchanged run compares equal to what the server returns."""
    out = {
        "modelVersion": int(intent["version"]),
        "trigger": intent.get("trigger") or "Created",
        "token": intent.get("token"),
        "trainingHash": intent.get("hash"),
        "startedAt": intent.get("at"),
        "job": job or intent.get("job"),
    }
    return {k: v for k, v in out.items() if v is not None}


def intent_from_status(run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not run or run.get("modelVersion") is None:
        return None
    return {
        "version": int(run["modelVersion"]),
        "hash": run.get("trainingHash"),
        "token": run.get("token"),
        "at": run.get("startedAt"),
        "trigger": run.get("trigger"),
        "job": run.get("job"),
    }


def intent_from_job(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run a Job was started for (its labels and annotations), for a crash before status.lastRun."""
    meta = job.get("metadata") or {}
    version = (meta.get("labels") or {}).get(LABEL_MODEL_VERSION, "")
    annotations = meta.get("annotations") or {}
    if not version.isdigit():
        return None
    return {
        "version": int(version),
        "hash": annotations.get(TRAINING_HASH_ANNOTATION),
        "token": annotations.get(TOKEN_ANNOTATION),
        "at": meta.get("creationTimestamp"),
        "trigger": annotations.get(TRIGGER_ANNOTATION),
        "job": meta.get("name"),
        "by": annotations.get(ANNOTATION_TRIGGERED_BY),
    }


def last_intent(
    status: Mapping[str, Any] | None, annotations: Mapping[str, str], jobs: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The newest run known from status.lastRun, the legacy annotation or the Jobs (pure).

    The highest model version wins; on a tie status is preferred (it is what the operator recorded).
    """
    candidates = [intent_from_status((status or {}).get("lastRun"))]
    if annotations.get(INTENT_ANNOTATION):
        candidates.append(json.loads(annotations[INTENT_ANNOTATION]))
    candidates += [intent_from_job(j) for j in jobs]
    best = None
    for c in candidates:
        if c is not None and (best is None or int(c["version"]) > int(best["version"])):
            best = c
    return best


def run_trigger(tp: TrainingPipeline, intent: Mapping[str, Any] | None, token: str | None, now: datetime) -> str | None:
    """Why a new run should start now, or None (pure)."""
    if intent is None:
        return "Created"
    if token and token != intent.get("token"):
        return "RunNow"
    if render_training.training_hash(tp) != intent.get("hash"):
        return "SpecChanged"
    if tp.spec.schedule and not tp.spec.suspend:
        last = parse_time(intent.get("at"))
        if last is not None:
            due = croniter(tp.spec.schedule, last).get_next(datetime)
            if due <= now:
                return "Scheduled"
    return None


def run_cause(annotations: Mapping[str, str], token: str | None) -> dict[str, Any] | None:
    """What asked for the run answering `token`, when the operator set it with the token (drift
    asking for retraining, docs/monitoring.md): {"trigger", "by"}; None for a user's token."""
    try:
        cause = json.loads(annotations.get(ANNOTATION_RUN_CAUSE) or "null")
    except json.JSONDecodeError:
        return None
    if isinstance(cause, dict) and token and cause.get("token") == token and cause.get("trigger"):
        return {"trigger": str(cause["trigger"]), "by": str(cause.get("by") or "")}
    return None


def next_due(tp: TrainingPipeline, intent: Mapping[str, Any] | None) -> datetime | None:
    """When the schedule next asks for a run (pure); None without a schedule or a first run."""
    if not tp.spec.schedule or tp.spec.suspend or intent is None:
        return None
    last = parse_time(intent.get("at"))
    return croniter(tp.spec.schedule, last).get_next(datetime) if last else None


def _trained_condition(latest: Mapping[str, Any] | None) -> dict[str, Any]:
    if latest is None:
        return condition("Trained", None, "NoRunYet", "no training run yet")
    version, phase = latest["version"], latest["phase"]
    if phase == "Training":
        return condition("Trained", None, "Training", f"v{version} is training in Job {latest.get('job')}")
    if phase == "Validated":
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted((latest.get("metrics") or {}).items()))
        return condition("Trained", True, "ModelValidated", f"v{version} passed its gates ({metrics})"[:1024])
    if phase == "Rejected":
        return condition("Trained", False, "ModelRejected", f"v{version}: {latest.get('message', 'gates not met')}"[:1024])
    return condition("Trained", False, "TrainingFailed", f"v{version}: {latest.get('message', '')}"[:1024])


def compute_status(
    body: Mapping[str, Any],
    tp: TrainingPipeline,
    jobs: dict[int, str],
    intent: Mapping[str, Any] | None,
    finished: Mapping[int, dict[str, Any]],
    refused: str | None = None,
) -> dict[str, Any]:
    """Status from the recorded versions, the runs started and the runs just read (pure);
    `refused` is why the feature view was refused (no run was started for it)."""
    meta, old = body["metadata"], body.get("status") or {}
    entries = {int(mv["version"]): dict(mv) for mv in old.get("modelVersions") or []}
    fv = {"name": tp.spec.feature_view.name, "version": tp.spec.feature_view.version}
    groups = [g.wire() for g in tp.spec.feature_view.feature_groups]
    pending = dict(jobs)
    if intent and intent.get("version"):
        pending.setdefault(int(intent["version"]), intent.get("job") or render_training.job_name(tp, int(intent["version"])))
    # A finished run's entry replaces the placeholder of its Job under the number it was
    # started with, when the registry allocated another (module docstring).
    done = {e.get("job"): v for v, e in finished.items()}
    entries = {v: e for v, e in entries.items() if done.get(e.get("job"), v) == v}
    entries.update(finished)
    by_job = {e.get("job") for e in entries.values()}
    for version, job in pending.items():
        if version not in entries and job not in by_job:  # started, result not in yet
            mine = intent and int(intent.get("version", 0)) == version
            started = (intent or {}).get("at") if mine else None
            entries[version] = model_version_entry(version, job, None, None, fv, groups, created_at=started)
            if mine and intent:
                entries[version].update(
                    {k: v for k, v in (("trigger", intent.get("trigger")), ("triggeredBy", intent.get("by"))) if v}
                )
    versions = [entries[v] for v in sorted(entries, reverse=True)]
    validated = [mv["version"] for mv in versions if mv.get("phase") == "Validated"]
    trained = _trained_condition(versions[0] if versions else None)
    # Ready = a servable model exists; the latest run's outcome is its own condition.
    if validated and trained["status"] != "True":
        ready = condition(
            "Ready", True, "ModelValidated", f"v{max(validated)} is the latest Validated version; {trained['message']}"[:1024]
        )
    else:
        ready = ready_rollup([trained], "ModelValidated", trained["message"])
    view = f"feature view {tp.spec.feature_view.name} v{tp.spec.feature_view.version}"
    accepted = (
        condition("FeatureViewAccepted", False, "FeatureViewRedefined", refused[:1024])
        if refused
        else condition("FeatureViewAccepted", True, "FeatureViewAccepted", f"{view} matches every definition run under it")
    )
    if refused and ready["status"] != "True":
        ready = condition("Ready", False, "FeatureViewRedefined", refused[:1024])
    out: dict[str, Any] = {
        "observedGeneration": meta.get("generation"),
        "modelVersions": versions,
        "latestValidatedVersion": max(validated) if validated else None,
        "conditions": merge_conditions(old.get("conditions"), [ready, trained, accepted], meta.get("generation")),
    }
    if intent:
        out["lastRun"] = intent_to_status(intent, pending.get(int(intent["version"])))
    return typed(TrainingPipelineStatus, out) | {"latestValidatedVersion": out["latestValidatedVersion"]}


def _refusal_is_new(body: Mapping[str, Any], refused: str) -> bool:
    """True unless the status already said this (one Event per transition)."""
    for c in (body.get("status") or {}).get("conditions") or []:
        if c.get("type") == "FeatureViewAccepted":
            return not (c.get("status") == "False" and c.get("message") == refused[:1024])
    return True


def reported_version(result: Mapping[str, Any] | None) -> int | None:
    """The model version a run reports it registered (the registry allocated it), if any."""
    value = (result or {}).get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _model_version(job: Mapping[str, Any]) -> int | None:
    value = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_MODEL_VERSION, "")
    return int(value) if str(value).isdigit() else None


def reconcile(ctx: Context, body: Mapping[str, Any]) -> Result:
    """Start the runs that are due, record the runs that finished, write status."""
    tp = parse_or_report(ctx, body, TrainingPipeline, API_VERSION, PLURAL)
    if tp is None:
        return Result()
    # No run starts while a Secret or the PVC its pod references is missing (reconcile/store_access.py).
    go, access = gate(ctx, body, API_VERSION, PLURAL)
    if not go:
        return Result(requeue_after=ctx.config.store_recheck_seconds)
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    annotations = meta.get("annotations") or {}
    result = Result()
    now = ctx.clock()
    token = annotations.get(RUN_ANNOTATION)

    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_KIND}=trainingpipeline,{LABEL_RESOURCE}={name}"
    # A new pipeline (its first reconcile writes a status) has no Job but perhaps v1 from a crash
    # before that status: v1 is what this reconcile assigns, and its create tolerates a 409.
    job_objs = ctx.kube.list("batch/v1", "jobs", ns, selector) if body.get("status") else []
    jobs = {v: j["metadata"]["name"] for j in job_objs if (v := _model_version(j)) is not None}
    status = body.get("status") or {}
    recorded = {int(mv["version"]): mv for mv in status.get("modelVersions") or []}
    intent = last_intent(status, annotations, job_objs)

    trigger = run_trigger(tp, intent, token, now)
    refused: str | None = None
    if trigger:
        # A feature view version is immutable: compare with what the namespace's training Jobs
        # of the same view version ran (one LIST, only when a run would start; the label keeps
        # it to those Jobs, not every training Job of the namespace).
        view = tp.spec.feature_view
        ran = ctx.kube.list(
            "batch/v1",
            "jobs",
            ns,
            f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_KIND}=trainingpipeline,"
            f"{LABEL_FEATURE_VIEW_KEY}={feature_view_key(view.name, view.version)}",
        )
        refused = redefinition(tp.spec.feature_view.wire(), in_use(ran))
    if refused:
        trigger = None
    if trigger:
        known = set(recorded) | set(jobs) | ({int(intent["version"])} if intent else set())
        cause = run_cause(annotations, token) if trigger == "RunNow" else None
        intent = {
            "version": next_model_version(known),
            "hash": render_training.training_hash(tp),
            "token": token,
            "at": now_iso(now),
            "trigger": cause["trigger"] if cause else trigger,
            **({"by": cause["by"]} if cause else {}),
        }
    started: str | None = None
    recorded_jobs = {mv.get("job"): v for v, mv in recorded.items() if mv.get("job")}
    if (
        intent
        and int(intent["version"]) not in jobs
        and int(intent["version"]) not in recorded
        and intent.get("job") not in recorded_jobs
    ):
        job = render_training.render(
            tp,
            int(intent["version"]),
            ctx.config,
            owner=body,
            trigger=intent.get("trigger") or "Created",
            token=intent.get("token"),
            triggered_by=intent.get("by"),
        )
        # The list above is this reconcile's read of the Jobs: no GET before the create.
        action, _ = apply_child(ctx.kube, job, live=None, fetched=True)
        result.count(action)
        jobs[int(intent["version"])] = job["metadata"]["name"]
        if action == "created":
            started = f"model {tp.spec.model.name} v{intent['version']}: Job {job['metadata']['name']} ({intent.get('trigger')})"

    # Runs that finished and are not recorded yet (a version still in phase Training).
    finished: dict[int, dict[str, Any]] = {}
    for planned, job_obj in newest_finished(job_objs, _model_version).items():
        assert isinstance(planned, int)
        job_name = job_obj["metadata"]["name"]
        old = recorded.get(recorded_jobs.get(job_name, planned))
        if old is not None and old.get("job") in (None, job_name) and old.get("phase") != "Training":
            continue
        run = read_run(ctx.kube, job_obj)
        version = reported_version(run.result) or planned  # the registry's number (module docstring)
        fv_ref = (old or {}).get("featureView") or {"name": tp.spec.feature_view.name, "version": tp.spec.feature_view.version}
        groups = (old or {}).get("featureGroups") or [g.wire() for g in tp.spec.feature_view.feature_groups]
        finished[version] = model_version_entry(
            version, run.job, run.succeeded, run.result, fv_ref, groups, created_at=(old or {}).get("createdAt")
        )
        why = job_obj["metadata"].get("annotations") or {}
        for key, annotation in (("trigger", TRIGGER_ANNOTATION), ("triggeredBy", ANNOTATION_TRIGGERED_BY)):
            if why.get(annotation):
                finished[version][key] = why[annotation]
        if intent and intent.get("job", job_name) == job_name and int(intent["version"]) == planned:
            intent = {**intent, "version": version, "job": job_name}

    written = update_status(
        ctx.kube,
        API_VERSION,
        PLURAL,
        body,
        lambda b: with_access(compute_status(b, tp, jobs, intent, finished, refused), access, b),
    )
    if started:
        emit_event(ctx.kube, body, "TrainingStarted", started)
    if refused and written is not None and _refusal_is_new(body, refused):
        emit_event(ctx.kube, body, "FeatureViewRedefined", refused[:1024], "Warning")
    if written is not None:
        result.count("status")
        model = tp.spec.model.name
        for version, entry in sorted(finished.items()):
            ctx.metrics.model_version(ns, model, entry)
            emit_event(
                ctx.kube,
                body,
                f"Model{entry['phase']}",
                f"model {model} v{version}: {entry['phase']}" + (f" ({entry['message']})" if entry.get("message") else ""),
                "Normal" if entry["phase"] == "Validated" else "Warning",
            )
    due = next_due(tp, intent)
    if due is not None:
        result.requeue_after = max(1.0, (due - now).total_seconds())
    return result
