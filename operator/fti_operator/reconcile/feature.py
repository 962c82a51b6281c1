"""FeaturePipeline: the current version's CronJob (or Job), retention of older versions, runs, status.

Older feature-group versions keep their CronJob (with the spec they were written with) while
a revision that is stable, target, canary, pinned or in the rollback history reads them
(docs/versions.md); once nothing does, the CronJob goes and the version is Retired. The only
finalizer is present exactly while some revision needs one of this group's versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import FeaturePipeline
from ..api.feature_pipeline import NEEDED_BY_LISTED, FeaturePipelineStatus
from ..api.identity import (
    ANNOTATION_RETIRED,
    ANNOTATION_RUN,
    API_VERSION,
    FEATURE_PIPELINE,
    FINALIZER_FEATURE_VERSIONS,
)
from ..render import feature as render_feature
from ..render.pods import LABEL_FG_VERSION, LABEL_KIND, LABEL_MANAGED_BY, LABEL_RESOURCE, MANAGED_BY
from ..versions import fg_version_states
from . import quarantine
from .children import apply_child
from .conditions import condition, merge_conditions
from .context import Context, Result
from .feature_jobs import (
    DROP_AFTER_SECONDS,
    DROP_RETRY_SECONDS,
    TRIGGER_DROP,
    TRIGGER_REMATERIALIZE,
    busy_versions,
    drop_job,
    drop_retry_in,
    online_drop,
    rematerialize_job,
    should_drop,
    trigger_of,
)
from .results import feature_run, job_finished
from .runs import newest_finished, read_run
from .store_access import gate, with_access
from .validity import parse_or_report
from .writes import emit_event, typed, update_status

PLURAL = FEATURE_PIPELINE.plural
FINALIZER = FINALIZER_FEATURE_VERSIONS
RUN_ANNOTATION = ANNOTATION_RUN


def child_selector(name: str) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_KIND}=featurepipeline,{LABEL_RESOURCE}={name}"


def _fg_version(obj: Mapping[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_FG_VERSION, "")
    return int(value) if str(value).isdigit() else None


def published_online(before: bool | None, run: Mapping[str, Any] | None) -> bool | None:
    """Whether a version is in the online store, after `run` (pure): a run that published it says
    so (`onlineRowsWritten`) and that stays true; a run that committed rows offline only (the group
    was not online then) makes it false until one publishes. Turning `online` on in the spec does
    not put a version's rows in the online store — its next run does (docs/rollouts.md)."""
    if run is None:
        return before
    if run.get("onlineRowsWritten") is not None or before:
        return True
    if run.get("succeeded") and (run.get("rowsWritten") or 0) > 0:
        return False
    return before


def compute_status(
    body: Mapping[str, Any],
    states: dict[int, tuple[str, list[str]]],
    new_runs: Mapping[int, dict[str, Any]],
    remat: Mapping[int, str] | None = None,
    new_drops: Mapping[int, dict[str, Any]] | None = None,
    dropping: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """Status from the version states, the recorded runs and drops, and the runs and drops just read (pure)."""
    meta, spec, old = body["metadata"], body["spec"], body.get("status") or {}
    current = int(spec["featureGroup"]["version"])
    runs = {int(v["version"]): v.get("lastRun") for v in old.get("versions") or []}
    online = {int(v["version"]): v.get("online") for v in old.get("versions") or []}
    drops = {int(v["version"]): v.get("onlineDrop") for v in old.get("versions") or []}
    runs.update(new_runs)
    drops.update(new_drops or {})
    versions = []
    for v, (state, needed_by) in states.items():
        entry: dict[str, Any] = {"version": v, "state": state}
        if (remat or {}).get(v):
            entry["state"], entry["rematerializeJob"] = "Rematerializing", (remat or {})[v]
        if runs.get(v):
            entry["lastRun"] = runs[v]
        in_store = published_online(online.get(v), new_runs.get(v))
        if (drop := (new_drops or {}).get(v)) and drop["succeeded"] and not new_runs.get(v):
            in_store = False  # a run and its drop never overlap (feature_jobs.py): the drop is the newer
        if v in dropping:  # its online data is going: no revision may start reading it meanwhile
            in_store = False
        if in_store is not None:
            entry["online"] = in_store
        if drops.get(v):
            entry["onlineDrop"] = drops[v]
        if needed_by and state != "Active":
            # Listed where the readers are the reason the version is kept. The current version is
            # kept anyway; listing its readers would re-write this status for every service that
            # starts reading the group (docs/versions.md). The first NEEDED_BY_LISTED and the count:
            # a version read by many services must not grow the object towards etcd's size limit.
            entry["neededBy"] = needed_by[:NEEDED_BY_LISTED]
            entry["neededByCount"] = len(needed_by)
        versions.append(entry)
    run = runs.get(current)
    if run is None:
        materialized = condition("Materialized", None, "WaitingForFirstRun", f"v{current}: no run has finished yet")
    elif run.get("succeeded"):
        materialized = condition(
            "Materialized",
            True,
            "RunSucceeded",
            f"v{current}: {run.get('rowsWritten', 0)} rows written, {run.get('rowsRejected', 0)} rejected by {run['job']}",
        )
    else:
        materialized = condition(
            "Materialized", False, "RunFailed", f"v{current}: {run['job']} failed: {run.get('message', '')}"[:1024]
        )
    quarantined = quarantine.data_quarantined(current, run)
    ready = quarantine.ready(materialized, quarantined, spec, run)
    return typed(
        FeaturePipelineStatus,
        {
            "observedGeneration": meta.get("generation"),
            "versions": versions,
            "conditions": merge_conditions(old.get("conditions"), [ready, materialized, quarantined], meta.get("generation")),
        },
    )


def _finalize(
    ctx: Context, body: Mapping[str, Any], needed_here: Mapping[int, list[str]], group: str, result: Result
) -> Mapping[str, Any] | None:
    """Keep the finalizer exactly while a revision needs a version; returns the body to go on
    with, or None when the object is being deleted (nothing more to do)."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    finalizers = list(meta.get("finalizers") or [])
    if meta.get("deletionTimestamp"):
        if needed_here:
            reason = "; ".join(f"{group} v{v} needed by {', '.join(by)}" for v, by in sorted(needed_here.items()))
            old: Mapping[str, Any] = next(
                (c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {}
            )
            if old.get("reason") != "DeletionBlocked" or old.get("message") != reason:
                emit_event(ctx.kube, body, "DeletionBlocked", reason, "Warning")
                update_status(
                    ctx.kube,
                    API_VERSION,
                    PLURAL,
                    body,
                    lambda b: {
                        "conditions": merge_conditions(
                            (b.get("status") or {}).get("conditions"),
                            [condition("Ready", False, "DeletionBlocked", reason)],
                            b["metadata"].get("generation"),
                        )
                    },
                )
            result.count("blocked")
            return None
        if FINALIZER in finalizers:
            ctx.kube.patch(
                API_VERSION,
                PLURAL,
                ns,
                name,
                {
                    "metadata": {
                        "resourceVersion": meta["resourceVersion"],
                        "finalizers": [f for f in finalizers if f != FINALIZER],
                    }
                },
            )
            result.count("finalizer")
        return None
    if bool(needed_here) != (FINALIZER in finalizers):
        new = [*finalizers, FINALIZER] if needed_here else [f for f in finalizers if f != FINALIZER]
        patched = ctx.kube.patch(
            API_VERSION, PLURAL, ns, name, {"metadata": {"resourceVersion": meta["resourceVersion"], "finalizers": new}}
        )
        body = {**body, "metadata": {**meta, "resourceVersion": patched["metadata"]["resourceVersion"], "finalizers": new}}
        result.count("finalizer")
    return body


RETIRED_ANNOTATION = ANNOTATION_RETIRED


def is_retired(cronjob: Mapping[str, Any]) -> bool:
    return ((cronjob.get("metadata") or {}).get("annotations") or {}).get(RETIRED_ANNOTATION) == "true"


def retire_patch(retired: bool) -> dict[str, Any]:
    """Suspend a retired version's CronJob (marked, so a user's own suspend is told apart) or resume it."""
    return {"metadata": {"annotations": {RETIRED_ANNOTATION: "true" if retired else None}}, "spec": {"suspend": retired}}


def reconcile(ctx: Context, body: Mapping[str, Any]) -> Result:
    """Bring one FeaturePipeline's children and status in line with its spec and its runs."""
    fp = parse_or_report(ctx, body, FeaturePipeline, API_VERSION, PLURAL)
    if fp is None:
        return Result()
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    group, current = fp.spec.feature_group.name, fp.spec.feature_group.version
    result = Result()
    needed = ctx.lookups.needed(ns, group)
    needed_here = {v: by for (g, v), by in needed.items() if g == group and by}
    after = _finalize(ctx, body, needed_here, group, result)
    if after is None:
        return result
    body = after
    # Nothing is rendered while a Secret or the PVC its pods reference is missing (reconcile/store_access.py).
    go, access = gate(ctx, body, API_VERSION, PLURAL)
    if not go:
        result.requeue_after = ctx.config.store_recheck_seconds
        return result

    # One LIST each of this pipeline's CronJobs and Jobs serves the current version's apply (no
    # GET by name), the retention of older versions and the runs to record. A new pipeline (its
    # first reconcile writes a status) has none: the create goes first.
    known_children = bool(body.get("status"))
    cronjobs = ctx.kube.list("batch/v1", "cronjobs", ns, child_selector(name)) if known_children else []
    jobs = ctx.kube.list("batch/v1", "jobs", ns, child_selector(name)) if known_children else []
    desired = render_feature.render(fp, ctx.config, owner=body)
    if desired["kind"] == "CronJob":
        live = next((c for c in cronjobs if c["metadata"]["name"] == desired["metadata"]["name"]), None)
    else:
        live = next((j for j in jobs if j["metadata"]["name"] == desired["metadata"]["name"]), None)
    action, _ = apply_child(ctx.kube, desired, live=live, fetched=True)
    result.count(action)
    if action != "unchanged":
        emit_event(
            ctx.kube,
            body,
            f"{desired['kind']}{action.capitalize()}",
            f"{desired['kind']} {desired['metadata']['name']} {action} for {group} v{current}",
        )

    token = (meta.get("annotations") or {}).get(RUN_ANNOTATION)
    if token:
        run_job = render_feature.render_run_now(fp, ctx.config, token, owner=body)
        if not any(j["metadata"]["name"] == run_job["metadata"]["name"] for j in jobs):
            action, _ = apply_child(ctx.kube, run_job, live=None, fetched=True)
            if action == "created":
                emit_event(ctx.kube, body, "RunNow", f"Job {run_job['metadata']['name']} started for {RUN_ANNOTATION}={token}")
            result.count(action)

    # Older versions: keep their CronJobs while needed; once retired, suspend them (the definition
    # that wrote the version is kept, so a rollback can bring the version back).
    by_version = {v: c for c in cronjobs if (v := _fg_version(c)) is not None}
    old_versions = {int(v["version"]): v for v in (body.get("status") or {}).get("versions") or []}
    recorded = {v: e.get("lastRun") or {} for v, e in old_versions.items()}
    known = set(by_version) | set(recorded)
    states = fg_version_states(group, current, known, needed)
    remat = {v: str(e["rematerializeJob"]) for v, e in old_versions.items() if e.get("rematerializeJob")}
    in_store = {v: e.get("online") for v, e in old_versions.items()}
    # A re-materializing Job still running is one even if a crash kept it out of status.
    for running in jobs:
        if trigger_of(running) == TRIGGER_REMATERIALIZE and job_finished(running) is None and (v := _fg_version(running)):
            remat.setdefault(v, running["metadata"]["name"])
    busy = busy_versions(jobs, _fg_version)
    last_drop = {v: e["onlineDrop"] for v, e in old_versions.items() if e.get("onlineDrop")}
    retry = {v: wait for v, d in last_drop.items() if (wait := drop_retry_in(d, ctx.clock())) is not None}
    for version, cj in by_version.items():
        state = states.get(version, ("Retired", []))[0]
        if version == current and desired["kind"] != "CronJob":
            # The schedule was removed: a run-once Job replaced the CronJob.
            ctx.kube.delete("batch/v1", "cronjobs", ns, cj["metadata"]["name"])
            emit_event(
                ctx.kube,
                body,
                "CronJobDeleted",
                f"{group} v{version}: schedule removed, CronJob {cj['metadata']['name']} deleted",
            )
            result.count("deleted")
        elif version == current and is_retired(cj):  # the spec went back to a retired version
            ctx.kube.patch("batch/v1", "cronjobs", ns, cj["metadata"]["name"], retire_patch(False))
            result.count("resumed")
        elif version != current and state == "Retired" and not is_retired(cj):
            ctx.kube.patch("batch/v1", "cronjobs", ns, cj["metadata"]["name"], retire_patch(True))
            emit_event(
                ctx.kube,
                body,
                "VersionRetired",
                f"{group} v{version} is needed by no revision: CronJob "
                f"{cj['metadata']['name']} suspended (kept to bring the version back on a rollback)",
            )
            result.count("retired")
            if in_store.get(version):  # its online data goes on the next look, if still Retired then
                result.requeue_within(DROP_AFTER_SECONDS)
        elif version != current and state == "Retained" and is_retired(cj) and TRIGGER_DROP in busy.get(version, ()):
            result.count("waiting")  # its online data is being dropped: brought back once that is over
        elif version != current and state == "Retained" and is_retired(cj):
            # Crash-safe order: the Job (named after the suspended CronJob's resourceVersion) and
            # its Event (named after the Job) before the resume. A reconcile after a crash
            # anywhere in between finds the CronJob still suspended at the same resourceVersion
            # and makes the same calls: the Job and the Event already exist, none is made twice.
            run = rematerialize_job(cj)
            job_name = run["metadata"]["name"]
            emit_event(
                ctx.kube,
                body,
                "Rematerializing",
                f"{group} v{version} is needed again by "
                f"{', '.join(states[version][1])}: CronJob {cj['metadata']['name']} resumed, Job {job_name} started",
                name=f"{job_name}.rematerializing",
            )
            live_run = next((j for j in jobs if j["metadata"]["name"] == job_name), None)
            action, _ = apply_child(ctx.kube, run, live=live_run, fetched=True)
            result.count(action)
            ctx.kube.patch("batch/v1", "cronjobs", ns, cj["metadata"]["name"], retire_patch(False))
            remat[version] = job_name
        elif version != current and should_drop(
            state, is_retired(cj), in_store.get(version), version in busy, retry_in := retry.get(version)
        ):
            # Its Event (named after the Job) before the Job, like a re-materialization's above.
            drop = drop_job(cj, last_drop[version]["job"] if retry_in == 0 else None)
            if not any(j["metadata"]["name"] == drop["metadata"]["name"] for j in jobs):
                emit_event(
                    ctx.kube,
                    body,
                    "DroppingOnlineData",
                    f"{group} v{version} is needed by no revision: Job {drop['metadata']['name']} drops its online "
                    "data (the offline data stays, to bring the version back on a rollback)",
                    name=f"{drop['metadata']['name']}.dropping",
                )
                result.count(apply_child(ctx.kube, drop, live=None, fetched=True)[0])
            busy.setdefault(version, set()).add(TRIGGER_DROP)
        elif version != current and state == "Retired" and retry.get(version):
            # A failed drop waits for its next attempt: the driver's timer brings the reconcile.
            result.requeue_within(retry[version])

    # Runs: the newest finished Job of each version, read only when status does not have it yet.
    new_runs: dict[int, dict[str, Any]] = {}
    for key, job in newest_finished(jobs, lambda j: None if trigger_of(j) == TRIGGER_DROP else _fg_version(j)).items():
        assert isinstance(key, int)
        if recorded.get(key, {}).get("job") == job["metadata"]["name"]:
            continue
        finished = read_run(ctx.kube, job)
        new_runs[key] = feature_run(finished.job, finished.succeeded, finished.result, finished.finished_at)
        states.setdefault(key, ("Active" if key == current else "Retired", []))
    # Drops of online data likewise: the newest finished drop Job of each version, once.
    new_drops: dict[int, dict[str, Any]] = {}
    for key, job in newest_finished(jobs, lambda j: _fg_version(j) if trigger_of(j) == TRIGGER_DROP else None).items():
        assert isinstance(key, int)
        if (old_versions.get(key, {}).get("onlineDrop") or {}).get("job") != job["metadata"]["name"]:
            finished = read_run(ctx.kube, job)
            new_drops[key] = online_drop(finished.job, finished.succeeded, finished.result, finished.finished_at)
            if not new_drops[key]["succeeded"] and states.get(key, ("Retired", []))[0] == "Retired":
                result.requeue_within(DROP_RETRY_SECONDS)
    # A retired version that never had a CronJob or run needs no status line.
    states = {v: s for v, s in states.items() if not (s[0] == "Retired" and v not in known and v not in new_runs)}
    # A re-materialization is over once its Job's run is recorded.
    remat = {
        v: j
        for v, j in remat.items()
        if (new_runs.get(v) or recorded.get(v) or {}).get("job") != j and states.get(v, ("Retired", []))[0] != "Retired"
    }
    dropping = frozenset(v for v, triggers in busy.items() if TRIGGER_DROP in triggers)

    def status(b: Mapping[str, Any]) -> dict[str, Any]:
        return with_access(compute_status(b, states, new_runs, remat, new_drops, dropping), access, b)

    written = update_status(ctx.kube, API_VERSION, PLURAL, body, status)
    if written is not None:
        result.count("status")
        for version, run in sorted(new_runs.items()):
            ctx.metrics.feature_run(ns, group, version, run)
            reason, message, kind = quarantine.run_event(group, version, run)
            emit_event(ctx.kube, body, reason, message, kind)
        for version, drop in sorted(new_drops.items()):
            emit_event(
                ctx.kube,
                body,
                "OnlineDataDropped" if drop["succeeded"] else "OnlineDropFailed",
                f"{group} v{version}: Job {drop['job']} "
                + (
                    f"dropped {drop.get('keysDropped', 0)} online keys"
                    if drop["succeeded"]
                    else f"failed: {drop.get('message', '')}"
                ),
                "Normal" if drop["succeeded"] else "Warning",
            )
    return result
