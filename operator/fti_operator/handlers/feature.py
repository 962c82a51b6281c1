"""FeaturePipeline reconcile: the current version's CronJob/Job, retention of older versions, status.

Older feature-group versions keep their CronJob (with the spec they were written with) while
a served, canary or history revision still needs them (DESIGN §4.3); once nothing does,
the CronJob goes and the version is Retired. Run results are recorded by jobs.py.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..api import FeaturePipeline
from ..conditions import condition, merge_conditions, ready_rollup
from ..render import feature as render_feature
from ..render.pods import LABEL_FG_VERSION, LABEL_KIND, LABEL_MANAGED_BY, LABEL_RESOURCE, MANAGED_BY
from ..versions import fg_version_states
from .children import apply_child
from .runtime import API_VERSION, Runtime

PLURAL = "featurepipelines"
FINALIZER = "fti.dev/feature-versions-in-use"
RUN_ANNOTATION = "fti.dev/run"


def child_selector(name: str) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_KIND}=featurepipeline,{LABEL_RESOURCE}={name}"


def availability(namespace: str, spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> dict[tuple, Any]:
    """(namespace, group, version) -> (materialized, online) from a FeaturePipeline's status.

    Materialized: data of that version is committed. Online: and the group is declared online
    (the current spec's flag stands for older versions too: a group does not go offline).
    """
    from ..versions import FeatureGroupAvailability

    fg = spec.get("featureGroup") or {}
    online = bool(fg.get("online"))
    out = {}
    for v in (status or {}).get("versions") or []:
        run = v.get("lastRun") or {}
        # Data committed: a watermark (the offline data reaches it; a quarantined batch reports the
        # previous one) or rows written by a successful run.
        materialized = bool(run.get("watermark")) or (bool(run.get("succeeded")) and (run.get("rowsWritten") or 0) > 0)
        if v.get("state") != "Retired":
            out[(namespace, fg.get("name"), int(v["version"]))] = FeatureGroupAvailability(materialized, materialized and online)
    return out


def compute_status(body: Mapping[str, Any], states: dict[int, tuple[str, list[str]]]) -> dict[str, Any]:
    """Status from the version states and the recorded runs (pure)."""
    meta, spec, old = body["metadata"], body["spec"], body.get("status") or {}
    current = int(spec["featureGroup"]["version"])
    runs = {int(v["version"]): v.get("lastRun") for v in old.get("versions") or []}
    versions = []
    for v, (state, needed_by) in states.items():
        entry: dict[str, Any] = {"version": v, "state": state}
        if runs.get(v):
            entry["lastRun"] = runs[v]
        if needed_by:
            entry["neededBy"] = needed_by
        versions.append(entry)
    run = runs.get(current)
    if run is None:
        scheduled = condition("Materialized", None, "WaitingForFirstRun", f"v{current}: no run has finished yet")
    elif run.get("succeeded"):
        scheduled = condition("Materialized", True, "RunSucceeded",
                              f"v{current}: {run.get('rowsWritten', 0)} rows written, {run.get('rowsRejected', 0)} rejected "
                              f"by {run['job']}")
    else:
        scheduled = condition("Materialized", False, "RunFailed", f"v{current}: {run['job']} failed: {run.get('message', '')}"[:1024])
    ready = ready_rollup([scheduled], "Materialized", scheduled["message"])
    return {
        "observedGeneration": meta.get("generation"),
        "versions": versions,
        "conditions": merge_conditions(old.get("conditions"), [ready, scheduled], meta.get("generation")),
    }


def reconcile(rt: Runtime, body: Mapping[str, Any], needed: Mapping[tuple[str, int], list[str]]) -> dict[str, int]:
    """Bring one FeaturePipeline's children and status in line. Returns {action: count} for tests/logs.

    needed: (group, version) -> InferenceServices that need it (from the indexes).
    """
    fp = FeaturePipeline.model_validate(dict(body))
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    group, current = fp.spec.feature_group.name, fp.spec.feature_group.version
    actions: dict[str, int] = {}

    # The only finalizer (§4.3): present exactly while a revision needs one of this group's versions.
    needed_here = {v: by for (g, v), by in needed.items() if g == group and by}
    finalizers = list(meta.get("finalizers") or [])
    if meta.get("deletionTimestamp"):
        if needed_here:
            rt.event(body, "DeletionBlocked", "; ".join(f"{group} v{v} needed by {', '.join(by)}"
                                                        for v, by in sorted(needed_here.items())), "Warning")
            return {"blocked": 1}
        if FINALIZER in finalizers:
            rt.kube.patch(API_VERSION, PLURAL, ns, name, {"metadata": {
                "resourceVersion": meta["resourceVersion"], "finalizers": [f for f in finalizers if f != FINALIZER]}})
            actions["finalizer"] = 1
        return actions
    if bool(needed_here) != (FINALIZER in finalizers):
        new = finalizers + [FINALIZER] if needed_here else [f for f in finalizers if f != FINALIZER]
        patched = rt.kube.patch(API_VERSION, PLURAL, ns, name, {"metadata": {"resourceVersion": meta["resourceVersion"], "finalizers": new}})
        body = {**body, "metadata": {**meta, "resourceVersion": patched["metadata"]["resourceVersion"], "finalizers": new}}
        actions["finalizer"] = 1

    # One LIST of this pipeline's CronJobs serves both the current version's apply (no GET by
    # name, which the API server would answer from etcd) and the retention of older versions.
    # A new pipeline (its first reconcile writes a status) has none: the create goes first, and a
    # 409 (a crash before that status) falls back to a GET.
    cronjobs = rt.kube.list("batch/v1", "cronjobs", ns, child_selector(name)) if body.get("status") else []
    desired = render_feature.render(fp, rt.config, owner=body)
    if desired["kind"] == "CronJob" or not body.get("status"):
        live = next((c for c in cronjobs if c["metadata"]["name"] == desired["metadata"]["name"]), None)
        action, _ = apply_child(rt.kube, desired, live=live, fetched=True)
    else:
        action, _ = apply_child(rt.kube, desired)
    actions[action] = actions.get(action, 0) + 1
    if action != "unchanged":
        rt.event(body, f"{desired['kind']}{action.capitalize()}",
                 f"{desired['kind']} {desired['metadata']['name']} {action} for {group} v{current}")

    token = (meta.get("annotations") or {}).get(RUN_ANNOTATION)
    if token:
        run_job = render_feature.render_run_now(fp, rt.config, token, owner=body)
        action, _ = apply_child(rt.kube, run_job)
        if action == "created":
            rt.event(body, "RunNow", f"Job {run_job['metadata']['name']} started for {RUN_ANNOTATION}={token}")
        actions[action] = actions.get(action, 0) + 1

    # Older versions: keep their CronJobs while needed, delete them once retired.
    by_version = {int(c["metadata"]["labels"].get(LABEL_FG_VERSION, 0)): c for c in cronjobs}
    known = set(by_version) | {int(v["version"]) for v in (body.get("status") or {}).get("versions") or []}
    states = fg_version_states(group, current, known, needed)
    for version, cj in by_version.items():
        # The current version's CronJob goes too once the schedule was removed (a run-once Job replaced it).
        unscheduled = version == current and desired["kind"] != "CronJob"
        if unscheduled or (states.get(version, ("Retired", []))[0] == "Retired" and version != current):
            rt.kube.delete("batch/v1", "cronjobs", ns, cj["metadata"]["name"])
            rt.event(body, "CronJobDeleted" if unscheduled else "VersionRetired",
                     f"{group} v{version}: schedule removed, CronJob {cj['metadata']['name']} deleted" if unscheduled else
                     f"{group} v{version} is needed by no revision: CronJob {cj['metadata']['name']} deleted")
            actions["deleted"] = actions.get("deleted", 0) + 1
    # A retired version that never had a CronJob or run needs no status line.
    states = {v: s for v, s in states.items() if not (s[0] == "Retired" and v not in known)}
    if rt.update_status(PLURAL, body, lambda b: compute_status(b, states)) is not None:
        actions["status"] = 1
    return actions


def needed_by_others(needed: Mapping[tuple[str, int], list[str]], group: str) -> dict[int, list[str]]:
    return {v: by for (g, v), by in needed.items() if g == group and by}
