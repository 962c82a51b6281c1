"""InferenceService: resolve the pair, plan the rollout from what KServe reports, write one child.

The decision (`versions.decide_pair`) and the rollout (`versions.rollout.plan_rollout`) are
pure; this module reads what they need — the registry's model versions and the feature
groups' availability through the lookups, the KServe child from the API server — renders
ONE child from ONE revision and writes it in one call, then records what KServe reports
(the status itself is computed, purely, in reconcile/inference_status.py).
Every revision in status carries its own snapshot (the model's storage URI, the feature
view, every feature-group version it reads), so rendering an older revision again and
keeping its features materialized never depend on another resource (docs/rollouts.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..api import InferenceService
from ..api.common import parse_duration
from ..api.identity import (
    ANNOTATION_ABORT,
    ANNOTATION_PROMOTE,
    ANNOTATION_RETRY,
    ANNOTATION_ROLLBACK,
    API_VERSION,
    INFERENCE_SERVICE,
)
from ..render import inference as render_inference
from ..render.inference import ANNOTATION_REVISION
from ..render.pods import LABEL_COMPONENT, LABEL_KIND, LABEL_RESOURCE
from ..versions import ModelInfo, ServingDecision, decide_pair, resolve_model
from ..versions.adoption import adopt
from ..versions.rollout import Plan, Want, describe, plan_rollout
from .canary import canary_condition, traffic_split
from .children import apply_child
from .conditions import now_iso
from .context import Context, Result
from .inference_status import batch_observed, compute_status, observe
from .kserve import served_revision, written_at
from .kube import Kube
from .monitoring import Monitoring, apply_cronjob, observe as observe_monitoring
from .runs import newest_finished, read_run
from .store_access import gate
from .validity import parse_or_report
from .writes import emit_event, transition_event_name, update_status

PLURAL = INFERENCE_SERVICE.plural


def snapshot(info: ModelInfo) -> dict[str, Any]:
    """What a revision records about its model version: enough to render and retain it alone."""
    out: dict[str, Any] = {
        "model": info.version,
        "featureView": int(info.feature_view_version or 0),
        "featureGroups": [{"name": g, "version": v} for g, v in info.feature_groups],
    }
    if info.feature_view_name:
        out["featureViewName"] = info.feature_view_name
    if info.storage_uri:
        out["storageUri"] = info.storage_uri
    return out


def other_mode_children(kube: Kube, isvc: InferenceService) -> list[dict[str, str]]:
    """Children of the mode the spec no longer asks for (online <-> batch): reads only, no writes."""
    name, ns = isvc.metadata.name, isvc.metadata.namespace
    if isvc.spec.mode == "batch":
        live = kube.get(render_inference.KSERVE_API_VERSION, "inferenceservices", ns, render_inference.kserve_name(isvc))
        found = [("serving.kserve.io/v1beta1", "inferenceservices", "InferenceService", live)] if live else []
    else:
        selector = f"{LABEL_KIND}={render_inference.KIND.lower()},{LABEL_RESOURCE}={name},{LABEL_COMPONENT}=batch"
        found = [
            ("batch/v1", plural, kind, obj)
            for plural, kind in (("cronjobs", "CronJob"), ("jobs", "Job"))
            for obj in kube.list("batch/v1", plural, ns, label_selector=selector)
        ]
    uid = isvc.metadata.uid
    return [
        {"apiVersion": api, "plural": plural, "kind": kind, "name": obj["metadata"]["name"]}
        for api, plural, kind, obj in found
        # Only what this resource owns: a same-named KServe service of someone else stays.
        if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
    ]


def _batch_run(ctx: Context, isvc: InferenceService, old: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest finished batch Job as status.lastRun, read only when it is not recorded yet."""
    selector = f"{LABEL_KIND}={render_inference.KIND.lower()},{LABEL_RESOURCE}={isvc.metadata.name},{LABEL_COMPONENT}=batch"
    jobs = ctx.kube.list("batch/v1", "jobs", isvc.metadata.namespace, selector)
    newest = newest_finished(jobs, lambda _job: "batch").get("batch")
    recorded = old.get("lastRun") or None
    if newest is None or (recorded and recorded.get("job") == newest["metadata"]["name"]):
        return recorded
    run = read_run(ctx.kube, newest)
    result = run.result or {}
    last: dict[str, Any] = {
        "job": run.job,
        "succeeded": bool(run.succeeded and result.get("ok", True)),
        "finishedAt": result.get("finishedAt") or run.finished_at,
    }
    for k in ("rowsScored", "rowsWritten", "outputUri", "modelVersion", "featureViewVersion", "error", "reason"):
        if result.get(k) is not None:
            last[k] = result[k]
    revision = (newest["metadata"].get("annotations") or {}).get(ANNOTATION_REVISION)
    if revision and str(revision).isdigit():
        last["revision"] = int(revision)
    else:  # a Job made by an older operator or by hand: name its pair by the versions it reports
        pair = (result.get("modelVersion"), result.get("featureViewVersion"))
        known = [old.get("target"), old.get("stable"), *(old.get("history") or [])]
        match = next((r for r in known if r and (r.get("model"), r.get("featureView")) == pair), None)
        if match is not None:
            last["revision"] = int(match["revision"])
    return last


def want_of(
    ctx: Context, isvc: InferenceService, body: Mapping[str, Any], child: Mapping[str, Any] | None = None
) -> tuple[Want, ServingDecision]:
    """The resolved pair the spec asks for, the rollout settings and the annotations (reads only)."""
    spec = isvc.spec
    ns = isvc.metadata.namespace or "default"
    models = ctx.lookups.models(ns, spec.model.name)
    resolved = resolve_model(spec.model.version, models)
    groups = list(resolved.feature_groups) if resolved else []
    availability = ctx.lookups.availability(ns, groups)
    decision = decide_pair(spec.model.version, spec.model.name, resolved, availability, spec.mode)
    annotations = body["metadata"].get("annotations") or {}
    canary = spec.online.canary.traffic_percent if spec.mode == "online" and spec.online and spec.online.canary else None
    waiting = not decision.allowed and decision.reason == "FeaturesNotReady" and decision.model is not None
    want = Want(
        revision=snapshot(decision.model) if decision.allowed and decision.model is not None else None,
        pending=snapshot(decision.model) if waiting and decision.model is not None else None,
        rematerializing=waiting and any(a.detail.startswith("re-materializing") for a in availability.values()),
        blocked_reason=None if decision.allowed else decision.reason,
        blocked_message=decision.message,
        canary_percent=canary,
        auto_rollback=spec.rollout.auto_rollback,
        traffic_split=traffic_split(ctx, child, isvc) if canary is not None else True,
        canary_fallback=spec.online.canary.when_unsupported if spec.online and spec.online.canary else "hold",
        readiness_timeout=float(parse_duration(spec.rollout.readiness_timeout)),
        deadline=spec.mode == "online",
        history_limit=spec.rollout.revision_history_limit,
        generation=int(body["metadata"].get("generation") or 0),
        rollback=annotations.get(ANNOTATION_ROLLBACK),
        promote=annotations.get(ANNOTATION_PROMOTE),
        abort=annotations.get(ANNOTATION_ABORT),
        retry=annotations.get(ANNOTATION_RETRY),
    )
    return want, decision


def render_child(ctx: Context, isvc: InferenceService, body: Mapping[str, Any], plan: Plan) -> dict[str, Any] | None:
    """The one child of the revision the plan renders: predictor and transformer of one pair, one object."""
    r = plan.render
    if r is None:
        return None
    pair = render_inference.ResolvedPair(
        revision=int(r["revision"]),
        model_name=isvc.spec.model.name,
        model_version=int(r["model"]),
        feature_view_name=r.get("featureViewName") or isvc.spec.model.name,
        feature_view_version=int(r["featureView"]),
        storage_uri=r.get("storageUri"),
    )
    if isvc.spec.mode == "online":
        return render_inference.render_online(isvc, pair, ctx.config, owner=body, canary_percent=plan.canary_percent)
    return render_inference.render_batch(isvc, pair, ctx.config, owner=body)


def moves_traffic(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` over `live` is a rollout step: another revision or canary share."""

    def step(child: Mapping[str, Any] | None) -> tuple[Any, Any] | None:
        if not child:
            return None
        revision = (child["metadata"].get("annotations") or {}).get(ANNOTATION_REVISION)
        return revision, ((child.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")

    return step(live) != step(desired)


def live_child(kube: Kube, isvc: InferenceService) -> dict[str, Any] | None:
    if isvc.spec.mode == "online":
        return kube.get(
            render_inference.KSERVE_API_VERSION, "inferenceservices", isvc.metadata.namespace, render_inference.kserve_name(isvc)
        )
    if isvc.spec.batch is not None and isvc.spec.batch.schedule is None:
        return None  # a run-once Job per pair: its name already says the pair
    return kube.get("batch/v1", "cronjobs", isvc.metadata.namespace, render_inference.batch_name(isvc))


def reconcile(ctx: Context, body: Mapping[str, Any]) -> Result:
    """Resolve, plan the rollout from what KServe reports, record it, then write the one child.

    Status goes first: a target is recorded (with its `since`, the start of its deadline)
    before the child that rolls it out is written, so a crash between the two is healed by
    the next reconcile writing the same child, and the deadline is never extended."""
    isvc = parse_or_report(ctx, body, InferenceService, API_VERSION, PLURAL)
    if isvc is None:
        return Result()
    go, access = gate(ctx, body, API_VERSION, PLURAL)  # its pods' Secrets and PVC (reconcile/store_access.py)
    if not go:
        return Result(requeue_after=ctx.config.store_recheck_seconds)
    meta = body["metadata"]
    ns, mode = meta["namespace"], isvc.spec.mode
    result = Result()
    old = body.get("status") or {}
    now = ctx.clock()
    new = not old
    # What serves now: the child as the API server has it (a new object has none yet), and
    # for batch the newest run.
    # An online child is read even without status: one the status does not know is adopted.
    live = None if new and mode != "online" else live_child(ctx.kube, isvc)
    last_run = _batch_run(ctx, isvc, old) if mode == "batch" and not new else None
    want, decision = want_of(ctx, isvc, body, live)
    seen = observe(live) if mode == "online" else batch_observed(last_run)
    known, adopted = old, None
    if mode == "online":
        models = ctx.lookups.models(ns, isvc.spec.model.name) if live else []
        served = served_revision(live, isvc.metadata.uid, models, snapshot)
        known, adopted = adopt(old, served, seen, written_at(live) or now_iso(now))
    plan = plan_rollout(known, want, seen, now)
    if adopted is not None:
        plan.events.insert(0, adopted)
    extra = (*canary_condition(want, plan), *((access,) if access else ()))
    monitoring = observe_monitoring(ctx, isvc, body, now)
    had_monitoring = "monitoring" in old
    compute = partial(
        compute_status, plan=plan, decision=decision, child=live, mode=mode, last_run=last_run, extra=extra, monitoring=monitoring
    )
    body = _record(ctx, body, plan, decision, result, compute, monitoring)
    apply_cronjob(ctx, isvc, body, result, had_monitoring)
    desired = render_child(ctx, isvc, body, plan)
    if desired is not None:
        action, _child = apply_child(ctx.kube, desired, live=live, fetched=True)
        result.count(action)
        if action != "unchanged" and not plan.events and not moves_traffic(live, desired):
            # A rollout step already has its Event (posted with the status that records it, maybe
            # by a reconcile that crashed before this write); a child rewritten without one
            # (replicas, resources) gets its own.
            emit_event(
                ctx.kube,
                body,
                f"{desired['kind']}{action.capitalize()}",
                f"{desired['kind']} {desired['metadata']['name']} {action} for {describe(plan.render or {})}",
            )
        for stale in other_mode_children(ctx.kube, isvc) if not new else ():
            ctx.kube.delete(stale["apiVersion"], stale["plural"], ns, stale["name"])
            result.count("deleted")
            emit_event(
                ctx.kube, body, f"{stale['kind']}Deleted", f"{stale['kind']} {stale['name']} deleted: spec.mode is now {mode}"
            )
    status = body.get("status") or {}
    ctx.metrics.served(ns, meta["name"], status.get("stable"), status.get("target"))
    result.requeue_after = plan.requeue_after
    return result


def _record(
    ctx: Context,
    body: Mapping[str, Any],
    plan: Plan,
    decision: ServingDecision,
    result: Result,
    status: Callable[[Mapping[str, Any]], dict[str, Any]],
    monitoring: Monitoring,
) -> Mapping[str, Any]:
    """Write `status` (computed from the body it is written over: inference_status.compute_status)
    and post the Events of `plan` — once: just before the write that records the transition,
    each named after the status it starts from, so a reconcile retried after a crash on either
    side of the write finds the Event (or the status) there and posts none."""
    old = body.get("status") or {}
    old_up = next((c for c in old.get("conditions") or [] if c.get("type") == "UpToDate"), None)
    events = [*plan.events, *monitoring.events]
    if not decision.allowed and (old_up is None or old_up.get("reason") != decision.reason):
        events.append(("Warning", decision.reason, decision.message))

    def post() -> None:
        for type_, reason, message in events:
            emit_event(ctx.kube, body, reason, message, type_, name=transition_event_name(body, reason, message))

    written = update_status(
        ctx.kube,
        API_VERSION,
        PLURAL,
        body,
        status,
        before_write=post,
    )
    if written is None:
        return body
    result.count("status")
    meta = body["metadata"]
    if plan.rolled_back:
        ctx.metrics.rollback(meta["namespace"], meta["name"], plan.rolled_back)
    if monitoring.new_report and monitoring.status is not None:
        ctx.metrics.drift(meta["namespace"], meta["name"], monitoring.status.get("revisions") or [])
    return written
