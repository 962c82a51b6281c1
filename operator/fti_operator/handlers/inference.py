"""InferenceService reconcile: resolve the pair, decide whether it may be served, roll out, report.

The decision (versions.decide_pair) and the rollout (versions.rollout.plan_rollout) are
pure; this module reads what they need from the indexes, renders ONE child from ONE pair
and writes it in one call, then records serving/canary/history and conditions.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..api import InferenceService
from ..conditions import condition, merge_conditions, now_iso, ready_rollup
from ..render import inference as render_inference
from ..versions import ModelInfo, decide_pair, resolve_model
from ..versions.rollout import RolloutPlan, plan_rollout
from ..render.pods import LABEL_COMPONENT, LABEL_KIND, LABEL_RESOURCE
from .children import apply_child
from .runtime import Runtime

PLURAL = "inferenceservices"


def kserve_ready(child: Mapping[str, Any] | None) -> tuple[bool | None, str]:
    """KServe's Ready condition of the child (None = not reported yet) and its message."""
    for c in ((child or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ok = {"True": True, "False": False}.get(c.get("status"))
            return ok, c.get("message") or c.get("reason") or ""
    return None, "KServe has not reported readiness yet"


# What a child KServe has not reported on yet looks like to compute_status (readiness, url): the
# status the reconcile that created the child already wrote.
NOT_REPORTED = (kserve_ready(None), None)


def compute_status(body: Mapping[str, Any], plan: RolloutPlan, decision_ok: bool, reason: str, message: str,
                   child: Mapping[str, Any] | None, mode: str) -> dict[str, Any]:
    meta, old = body["metadata"], body.get("status") or {}
    gen = meta.get("generation")
    parts = []
    if decision_ok:
        parts.append(condition("UpToDate", True, "Resolved", message))
    else:
        parts.append(condition("UpToDate", False, reason, message + ("; the current revision keeps serving" if plan.serving else "")))
    if plan.serving is None:
        serving_cond = condition("Serving", False, reason if not decision_ok else "NoRevision", "nothing is served yet")
    elif mode == "online":
        ok, msg = kserve_ready(child)
        serving_cond = condition("Serving", ok, "Serving" if ok else ("KServeNotReady" if ok is False else "WaitingForKServe"),
                                 f"model {plan.serving.model} / feature view {plan.serving.feature_view}" + ("" if ok else f": {msg}"))
    else:
        serving_cond = condition("Serving", True, "Scheduled", f"batch scoring with model {plan.serving.model} / feature view {plan.serving.feature_view}")
    # Ready: something serves and it is healthy; an unresolvable newer version is reported by UpToDate only.
    ready = ready_rollup([serving_cond], "Serving", serving_cond["message"])
    conds = [ready, serving_cond, parts[0]]
    if plan.canary is not None:
        conds.append(condition("CanaryReady", True, "Serving",
                               f"model {plan.canary.model} / feature view {plan.canary.feature_view} at {plan.canary.traffic}%"))
    status = {"observedGeneration": gen, **plan.status_part(),
              "conditions": merge_conditions(old.get("conditions"), conds, gen)}
    url = ((child or {}).get("status") or {}).get("url")
    if url:
        status["url"] = url
    return status


def other_mode_children(kube: Any, isvc: InferenceService) -> list[dict[str, str]]:
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


def reconcile(rt: Runtime, body: Mapping[str, Any], models: Iterable[ModelInfo],
              availability: Mapping[tuple[str, int], Any]) -> dict[str, int]:
    """models: every ModelInfo of spec.model.name in this namespace; availability: (group, version) -> FeatureGroupAvailability."""
    isvc = InferenceService.model_validate(dict(body))
    meta = body["metadata"]
    ns = meta["namespace"]
    models = list(models)
    actions: dict[str, int] = {}
    spec = isvc.spec
    target = resolve_model(spec.model.version, models)
    decision = decide_pair(spec.model.version, spec.model.name, target, availability, spec.mode)
    canary = spec.online.canary.traffic_percent if spec.mode == "online" and spec.online and spec.online.canary else None
    plan = plan_rollout(body.get("status"), decision, canary_percent=canary,
                        history_limit=spec.rollout.revision_history_limit, now=now_iso())
    child = child_event = None
    if plan.render is not None:
        by_version = {m.version: m for m in models}
        info = by_version.get(plan.render.model)
        pair = render_inference.ResolvedPair(
            revision=plan.render.revision, model_name=spec.model.name, model_version=plan.render.model,
            feature_view_name=(info.feature_view_name if info else None) or spec.model.name,
            feature_view_version=plan.render.feature_view, storage_uri=info.storage_uri if info else None)
        if spec.mode == "online":
            desired = render_inference.render_online(isvc, pair, rt.config, owner=body, canary_percent=plan.canary_percent)
        else:
            desired = render_inference.render_batch(isvc, pair, rt.config, owner=body)
        # A new object (no status yet) has no children yet: create without reading first (a 409
        # after a crash falls back to a GET), and there is no child of another mode to look for.
        new = not body.get("status")
        action, child = apply_child(rt.kube, desired, live=None, fetched=new)
        actions[action] = actions.get(action, 0) + 1
        for stale in other_mode_children(rt.kube, isvc) if not new else ():
            rt.kube.delete(stale["apiVersion"], stale["plural"], ns, stale["name"])
            actions["deleted"] = actions.get("deleted", 0) + 1
            rt.event(body, f"{stale['kind']}Deleted", f"{stale['kind']} {stale['name']} deleted: spec.mode is now {spec.mode}")
        if action != "unchanged":
            child_event = (f"{desired['kind']}{action.capitalize()}",
                           f"{desired['kind']} {desired['metadata']['name']} {action}: revision {pair.revision} = model "
                           f"{pair.model_version} / feature view {pair.feature_view_version}")
    old_up = next((c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "UpToDate"), None)
    written = rt.update_status(PLURAL, body, lambda b: compute_status(b, plan, decision.allowed, decision.reason,
                                                                      decision.message, child, spec.mode))
    rollout_events = list(plan.events) if written is not None else []
    if child_event is not None:
        rollout_events = fold_child_event(rollout_events, child_event,
                                          f"{desired['kind']} {desired['metadata']['name']} {action}")
    for reason, message in rollout_events:
        rt.event(body, reason, message)
    if written is not None:
        actions["status"] = 1
        if not decision.allowed and (old_up is None or old_up.get("reason") != decision.reason):
            rt.event(body, decision.reason, decision.message, "Warning")
    return actions
