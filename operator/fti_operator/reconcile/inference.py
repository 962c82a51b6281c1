"""InferenceService: resolve the pair, decide whether it may be served, roll out, report.

The decision (`versions.decide_pair`) and the rollout (`versions.rollout.plan_rollout`) are
pure; this module reads what they need through the lookups, renders ONE child from ONE pair
and writes it in one call, then records the revisions and conditions. Every revision in
status carries its own snapshot — the model's storage URI, the feature view and every
feature-group version it reads — so rendering an older revision again and keeping its
features materialized never depend on another resource's status (docs/versions.md).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..api import InferenceService
from ..api.inference_service import InferenceServiceStatus
from ..render import inference as render_inference
from ..render.pods import LABEL_COMPONENT, LABEL_KIND, LABEL_RESOURCE
from ..versions import ModelInfo, decide_pair, resolve_model
from ..versions.rollout import RolloutPlan, plan_rollout
from .children import apply_child
from .conditions import condition, merge_conditions, ready_rollup
from .context import Context, Result
from .kube import Kube
from .runs import newest_finished, read_run
from .writes import emit_event, now_iso, typed, update_status

API_VERSION = "fti.dev/v1alpha1"
PLURAL = "inferenceservices"
SNAPSHOT_KEYS = ("featureViewName", "storageUri", "featureGroups")


def kserve_ready(child: Mapping[str, Any] | None) -> tuple[bool | None, str]:
    """KServe's Ready condition of the child (None = not reported yet) and its message."""
    for c in ((child or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ok = {"True": True, "False": False}.get(c.get("status"))
            return ok, c.get("message") or c.get("reason") or ""
    return None, "KServe has not reported readiness yet"


# What a child KServe has not reported on yet looks like to a driver deciding whether a child's
# event is worth a reconcile of its owner (readiness, url).
NOT_REPORTED = (kserve_ready(None), None)


def snapshot(info: ModelInfo | None) -> dict[str, Any]:
    """What a revision records about its model version, from the model's registry entry."""
    if info is None:
        return {}
    out: dict[str, Any] = {"featureGroups": [{"name": g, "version": v} for g, v in info.feature_groups]}
    if info.feature_view_name:
        out["featureViewName"] = info.feature_view_name
    if info.storage_uri:
        out["storageUri"] = info.storage_uri
    return out


def with_snapshots(part: Mapping[str, Any], old: Mapping[str, Any], models: Mapping[int, ModelInfo]) -> dict[str, Any]:
    """Revisions of `part` completed with their snapshots: the one already recorded for the same
    revision and pair (self-contained: it survives the TrainingPipeline), else the model's."""
    recorded: dict[tuple[int, int, int], dict[str, Any]] = {}
    for r in [old.get("serving"), old.get("canary"), *(old.get("history") or [])]:
        if r:
            recorded[(int(r["revision"]), int(r["model"]), int(r["featureView"]))] = {
                k: r[k] for k in SNAPSHOT_KEYS if r.get(k) is not None}

    def complete(r: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if r is None:
            return None
        snap = recorded.get((int(r["revision"]), int(r["model"]), int(r["featureView"]))) or snapshot(models.get(int(r["model"])))
        return {**r, **snap}

    return {"serving": complete(part.get("serving")), "canary": complete(part.get("canary")),
            "history": [c for h in part.get("history") or [] if (c := complete(h))]}


def compute_status(body: Mapping[str, Any], revisions: Mapping[str, Any], plan: RolloutPlan, decision_ok: bool,
                   reason: str, message: str, child: Mapping[str, Any] | None, mode: str,
                   last_run: Mapping[str, Any] | None) -> dict[str, Any]:
    meta, old = body["metadata"], body.get("status") or {}
    gen = meta.get("generation")
    if decision_ok:
        up_to_date = condition("UpToDate", True, "Resolved", message)
    else:
        up_to_date = condition("UpToDate", False, reason, message + ("; the current revision keeps serving" if plan.serving else ""))
    if plan.serving is None:
        serving_cond = condition("Serving", False, reason if not decision_ok else "NoRevision", "nothing is served yet")
    elif mode == "online":
        ok, msg = kserve_ready(child)
        serving_cond = condition("Serving", ok, "Serving" if ok else ("KServeNotReady" if ok is False else "WaitingForKServe"),
                                 f"model {plan.serving.model} / feature view {plan.serving.feature_view}" + ("" if ok else f": {msg}"))
    else:
        serving_cond = condition("Serving", True, "Scheduled",
                                 f"batch scoring with model {plan.serving.model} / feature view {plan.serving.feature_view}")
    # Ready: something serves and it is healthy; an unresolvable newer version is reported by UpToDate only.
    ready = ready_rollup([serving_cond], "Serving", serving_cond["message"])
    conds = [ready, serving_cond, up_to_date]
    if plan.canary is not None:
        conds.append(condition("CanaryReady", True, "Serving",
                               f"model {plan.canary.model} / feature view {plan.canary.feature_view} at {plan.canary.traffic}%"))
    status: dict[str, Any] = {"observedGeneration": gen, **revisions,
                              "conditions": merge_conditions(old.get("conditions"), conds, gen)}
    url = ((child or {}).get("status") or {}).get("url")
    if url:
        status["url"] = url
    if last_run:
        status["lastRun"] = dict(last_run)
    out = typed(InferenceServiceStatus, status)
    # Fields that no longer apply are removed (null in the merge patch).
    return {"serving": None, "canary": None, **out}


def other_mode_children(kube: Kube, isvc: InferenceService) -> list[dict[str, str]]:
    """Children of the mode the spec no longer asks for (online <-> batch): reads only, no writes."""
    name, ns = isvc.metadata.name, isvc.metadata.namespace
    if isvc.spec.mode == "batch":
        live = kube.get(render_inference.KSERVE_API_VERSION, "inferenceservices", ns, render_inference.kserve_name(isvc))
        found = [("serving.kserve.io/v1beta1", "inferenceservices", "InferenceService", live)] if live else []
    else:
        selector = f"{LABEL_KIND}={render_inference.KIND.lower()},{LABEL_RESOURCE}={name},{LABEL_COMPONENT}=batch"
        found = [("batch/v1", plural, kind, obj) for plural, kind in (("cronjobs", "CronJob"), ("jobs", "Job"))
                 for obj in kube.list("batch/v1", plural, ns, label_selector=selector)]
    uid = isvc.metadata.uid
    return [{"apiVersion": api, "plural": plural, "kind": kind, "name": obj["metadata"]["name"]}
            for api, plural, kind, obj in found
            # Only what this resource owns: a same-named KServe service of someone else stays.
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])]


def fold_child_event(rollout: list[tuple[str, str]], child_event: tuple[str, str], child_written: str) -> list[tuple[str, str]]:
    """Events to post after the child was written (pure). A rollout step of the same reconcile
    already says which revision now serves: it also names the written child ("...; InferenceService
    x created") rather than a second Event telling the user the same thing."""
    if not rollout:
        return [child_event]
    (reason, message), rest = rollout[0], rollout[1:]
    return [(reason, f"{message}; {child_written}"), *rest]


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
    last: dict[str, Any] = {"job": run.job, "succeeded": bool(run.succeeded and result.get("ok", True)),
                            "finishedAt": result.get("finishedAt") or run.finished_at}
    for k in ("rowsScored", "rowsWritten", "outputUri", "error", "reason"):
        if result.get(k) is not None:
            last[k] = result[k]
    return last


def reconcile(ctx: Context, body: Mapping[str, Any]) -> Result:
    """Resolve, decide, render one pair, write it, record what serves."""
    isvc = InferenceService.model_validate(dict(body))
    meta = body["metadata"]
    ns = meta["namespace"]
    spec = isvc.spec
    result = Result()
    models = ctx.lookups.models(ns, spec.model.name)
    target = resolve_model(spec.model.version, models)
    groups = list(target.feature_groups) if target else []
    decision = decide_pair(spec.model.version, spec.model.name, target, ctx.lookups.availability(ns, groups), spec.mode)
    canary = spec.online.canary.traffic_percent if spec.mode == "online" and spec.online and spec.online.canary else None
    old = body.get("status") or {}
    plan = plan_rollout(old, decision, canary_percent=canary,
                        history_limit=spec.rollout.revision_history_limit, now=now_iso(ctx.clock()))
    revisions = with_snapshots(plan.status_part(), old, {m.version: m for m in models})
    child = child_event = None
    desired: dict[str, Any] | None = None
    action = "unchanged"
    if plan.render is not None:
        rendered = revisions["canary"] if plan.canary is not None else revisions["serving"]
        pair = render_inference.ResolvedPair(
            revision=plan.render.revision, model_name=spec.model.name, model_version=plan.render.model,
            feature_view_name=rendered.get("featureViewName") or spec.model.name,
            feature_view_version=plan.render.feature_view, storage_uri=rendered.get("storageUri"))
        if spec.mode == "online":
            desired = render_inference.render_online(isvc, pair, ctx.config, owner=body, canary_percent=plan.canary_percent)
        else:
            desired = render_inference.render_batch(isvc, pair, ctx.config, owner=body)
        # A new object (no status yet) has no children yet: apply without reading first, and
        # there is no child of another mode to look for.
        new = not old
        action, child = apply_child(ctx.kube, desired, live=None, fetched=new)
        result.count(action)
        for stale in other_mode_children(ctx.kube, isvc) if not new else ():
            ctx.kube.delete(stale["apiVersion"], stale["plural"], ns, stale["name"])
            result.count("deleted")
            emit_event(ctx.kube, body, f"{stale['kind']}Deleted",
                       f"{stale['kind']} {stale['name']} deleted: spec.mode is now {spec.mode}")
        if action != "unchanged":
            child_event = (f"{desired['kind']}{action.capitalize()}",
                           f"{desired['kind']} {desired['metadata']['name']} {action}: revision {pair.revision} = model "
                           f"{pair.model_version} / feature view {pair.feature_view_version}")
    last_run = _batch_run(ctx, isvc, old) if spec.mode == "batch" and old else None
    old_up = next((c for c in old.get("conditions") or [] if c.get("type") == "UpToDate"), None)
    written = update_status(ctx.kube, API_VERSION, PLURAL, body, lambda b: compute_status(
        b, revisions, plan, decision.allowed, decision.reason, decision.message, child, spec.mode, last_run))
    rollout_events = list(plan.events) if written is not None else []
    if child_event is not None and desired is not None:
        rollout_events = fold_child_event(rollout_events, child_event,
                                          f"{desired['kind']} {desired['metadata']['name']} {action}")
    for reason, message in rollout_events:
        emit_event(ctx.kube, body, reason, message)
    if written is not None:
        result.count("status")
        if not decision.allowed and (old_up is None or old_up.get("reason") != decision.reason):
            emit_event(ctx.kube, body, decision.reason, decision.message, "Warning")
    status = (written or body).get("status") or {}
    ctx.metrics.served(ns, meta["name"], status.get("serving"), status.get("canary"))
    return result
