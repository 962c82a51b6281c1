"""InferenceService status from what the plan decided and what KServe or the last run reports (pure).

The reconciler (reconcile/inference.py) does the reading and writing; this module only turns
the plan, the serving decision, the KServe child and the newest batch run into conditions and
revisions. A revision counts as serving once KServe says so: its Ready condition, for the spec
generation it has seen, with the latest created revision the latest ready one
(docs/rollouts.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.inference_service import InferenceServiceStatus
from ..render.inference import ANNOTATION_REVISION
from ..versions import ServingDecision
from ..versions.rollout import Observed, Plan, describe
from ..versions.traffic import routed_revisions
from .conditions import condition, merge_conditions, ready_rollup
from .kserve import predictor_traffic
from .monitoring import Monitoring
from .writes import typed


def kserve_ready(child: Mapping[str, Any] | None) -> tuple[bool | None, str]:
    """KServe's Ready condition of the child (None = not reported yet) and its message."""
    for c in ((child or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            ok = {"True": True, "False": False}.get(c.get("status"))
            return ok, c.get("message") or c.get("reason") or ""
    return None, "KServe has not reported readiness yet"


def observe(child: Mapping[str, Any] | None) -> Observed:
    """What KServe reports about the child as it is now (pure).

    The child's spec is ready when KServe has seen its generation, its Ready condition is
    True and the latest created revision is the latest ready one."""
    if not child:
        return Observed()
    meta, st = child.get("metadata") or {}, child.get("status") or {}
    value = (meta.get("annotations") or {}).get(ANNOTATION_REVISION, "")
    revision = int(value) if str(value).isdigit() else None
    ok, message = kserve_ready(child)
    seen = st.get("observedGeneration")
    if seen is not None and meta.get("generation") is not None and int(seen) != int(meta["generation"]):
        return Observed(revision, None, "KServe has not seen the latest spec yet")
    predictor = (st.get("components") or {}).get("predictor") or {}
    created, latest_ready = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
    if ok and created and latest_ready and created != latest_ready:
        ok, message = None, f"revision {created} is not ready yet"
    traffic = next(
        (
            int(t.get("percent", 0))
            for t in predictor.get("traffic") or []
            if t.get("latestRevision") or (created and t.get("revisionName") == created)
        ),
        None,
    )
    return Observed(revision, ok, message, latest_ready if ok else None, traffic)


def batch_observed(last_run: Mapping[str, Any] | None) -> Observed:
    """A batch revision is proven by a run: the newest finished run says which revision it scored
    with and whether it succeeded (a run the model server's skew guard refused fails)."""
    if not last_run or last_run.get("revision") is None:
        return Observed(None, None, "no run has finished yet")
    ok = bool(last_run.get("succeeded"))
    detail = "" if ok else f"{last_run.get('reason') or 'RunFailed'}: {last_run.get('error') or 'the run failed'}"
    return Observed(int(last_run["revision"]), ok, detail)


def compute_status(
    body: Mapping[str, Any],
    plan: Plan,
    decision: ServingDecision,
    child: Mapping[str, Any] | None,
    mode: str,
    last_run: Mapping[str, Any] | None,
    extra: tuple[dict[str, Any], ...] = (),
    monitoring: Monitoring | None = None,
) -> dict[str, Any]:
    """Conditions and revisions (pure): Ready follows the stable revision, whatever the target does.

    extra: conditions decided elsewhere (Canary, from the deployment mode); monitoring: the
    drift reports and their conditions (reconcile/monitoring.py)."""
    monitoring = monitoring or Monitoring()
    meta, old = body["metadata"], body.get("status") or {}
    gen = meta.get("generation")
    stable, target = plan.stable, plan.target
    if decision.allowed:
        up_to_date = condition("UpToDate", True, "Resolved", decision.message)
    else:
        up_to_date = condition(
            "UpToDate", False, decision.reason, decision.message + ("; the stable revision keeps serving" if stable else "")
        )
    if stable is None and mode == "batch" and target is not None:
        # The CronJob of the first revision is in place: batch scoring is scheduled, not waiting.
        serving = condition("Serving", True, "Scheduled", f"batch scoring with {describe(target)} from its next run")
    elif stable is None:
        serving = condition(
            "Serving",
            False,
            decision.reason if not decision.allowed else "NoRevision",
            "nothing serves yet" + (f"; {describe(target)} is being rolled out" if target else ""),
        )
    elif mode == "batch":
        serving = condition(
            "Serving",
            True,
            "Scheduled",
            f"batch scoring with {describe(stable)}" + (f"; {describe(target)} scores from its next run" if target else ""),
        )
    elif target is not None:
        serving = condition("Serving", True, "Serving", f"{describe(stable)} serves while {describe(target)} rolls out")
    else:
        # KServe keeps routing to the last ready revision until a new one is ready (and a
        # Deployment keeps its old pods), so the stable revision serves unless KServe reports
        # the stable revision's own spec not ready.
        seen = observe(child)
        failing = seen.ready is False and seen.revision == int(stable["revision"])
        serving = condition(
            "Serving",
            not failing,
            "KServeNotReady" if failing else "Serving",
            describe(stable) + (f": {seen.message}" if failing else ""),
        )
    ready = ready_rollup([serving], "Serving", serving["message"])
    progress_ok, progress_reason, progress_message = plan.progressing
    progressing = condition("Progressing", progress_ok, progress_reason, progress_message[:1024])
    conds = [ready, serving, up_to_date, progressing, *extra, *monitoring.conditions]
    if target is not None and plan.canary_percent is not None:
        canary_ready = target.get("kserveRevision") is not None
        conds.append(
            condition(
                "CanaryReady",
                True if canary_ready else None,
                "Ready" if canary_ready else "WaitingForKServe",
                f"{describe(target)} at {target.get('traffic', 0)} %",
            )
        )
    # Every pair KServe still routes requests to, known by its KServe revision name from this
    # step's revisions, the ones before it and those routed before (versions/traffic.py). The
    # revision the child renders is known by KServe's latest ready name too: a stable pair
    # rendered again (after an abort or a rollback) is a new KServe revision of the same pair.
    seen = observe(child) if mode == "online" else Observed()
    rendered = next((r for r in (plan.target, plan.stable) if r and seen.revision == int(r["revision"])), None)
    known = [{**rendered, "kserveRevision": seen.kserve_revision} if rendered and seen.kserve_revision else None]
    known += [plan.stable, plan.target, plan.failed, plan.pinned, *plan.history]
    known += [old.get(k) for k in ("stable", "target", "failed", "pinned")]
    known += [*(old.get("history") or []), *(old.get("routed") or [])]
    status: dict[str, Any] = {
        "observedGeneration": gen,
        **plan.status_part(),
        "routed": routed_revisions(predictor_traffic(child), known) if mode == "online" else [],
        "conditions": merge_conditions(old.get("conditions"), conds, gen),
    }
    url = ((child or {}).get("status") or {}).get("url")
    if url:
        status["url"] = url
    if last_run:
        status["lastRun"] = dict(last_run)
    if monitoring.status is not None:
        status["monitoring"] = monitoring.status
    out = typed(InferenceServiceStatus, status)
    # Revisions that no longer exist are removed (null in the merge patch).
    nulls = {"stable": None, "target": None, "failed": None, "pinned": None, "pending": None, "handled": None}
    return {**nulls, **({"monitoring": None} if "monitoring" in old else {}), **out}
