"""A retired feature-group version's online data is dropped by a Job, once, and never while it is needed.

The reconcilers on the in-memory API server (tests/support/memkube_rollouts.py): FeaturePipeline
and TrainingPipeline status is written as their runs would leave it, KServe's as KServe writes
it, and the drop Job's pod reports what it dropped as `python -m fti_pipelines.feature.drop_online` does
(tests/unit/pipelines/test_feature_drop_online.py runs that module against the real stores).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fti_operator.config import OperatorConfig
from fti_operator.local.lookups import ScanLookups
from fti_operator.local.memkube import MemKube
from fti_operator.reconcile import Context, feature, inference
from fti_operator.reconcile.feature_jobs import DROP_AFTER_SECONDS, DROP_MODULE, DROP_RETRY_SECONDS, drop_retry_in
from support.memkube_rollouts import NS, Clock, apply_fp, finish_job, get, isvc, kserve, reconcile_isvc, tp

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def env():
    kube = MemKube(clock=lambda: T0)
    return kube, Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=lambda: T0)


def fp(kube: MemKube, version: int) -> None:
    """FeaturePipeline g at `version`, every version up to it written offline and online by a run."""
    apply_fp(kube, version)
    old = {v["version"]: v for v in (get(kube, "featurepipelines", "g").get("status") or {}).get("versions") or []}
    versions = [
        old.get(v)
        or {"version": v, "state": "Active", "online": True, "lastRun": {"job": f"g-{v}", "succeeded": True, "rowsWritten": 10}}
        for v in range(1, version + 1)
    ]
    kube.patch("fti.dev/v1alpha1", "featurepipelines", NS, "g", {"status": {"versions": versions}}, subresource="status")


def serve(kube: MemKube, ctx: Context, model: int) -> None:
    """Model `model` (trained on g v`model`) becomes the one stable revision of service s."""
    tp(kube, {1: 1, 2: 2})
    isvc(kube, version=model, revisionHistoryLimit=0)
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)


def reconcile_fp(ctx: Context) -> None:
    feature.reconcile(ctx, get(ctx.kube, "featurepipelines", "g"))


def versions(kube: MemKube) -> dict[int, dict]:
    return {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}


def jobs(kube: MemKube, trigger: str) -> list[dict]:
    return [j for j in kube.list("batch/v1", "jobs", NS) if j["metadata"]["labels"].get("fti.dev/trigger") == trigger]


def events(kube: MemKube, reason: str) -> list[dict]:
    return [e for e in kube.list("v1", "events", NS) if e["reason"] == reason]


def retire_v1(kube: MemKube, ctx: Context) -> None:
    """g v1 served by model 1, then everything moves to v2: v1 is needed by no revision."""
    fp(kube, 1)
    reconcile_fp(ctx)
    serve(kube, ctx, 1)
    fp(kube, 2)
    reconcile_fp(ctx)
    serve(kube, ctx, 2)
    assert get(kube, "inferenceservices", "s")["status"]["stable"]["model"] == 2


def test_a_retired_versions_online_data_is_dropped_once_by_a_job_of_its_own(env) -> None:
    kube, ctx = env
    retire_v1(kube, ctx)
    result = feature.reconcile(ctx, get(kube, "featurepipelines", "g"))  # v1 is Retired: its CronJob is suspended,
    assert result.requeue_after == DROP_AFTER_SECONDS  # nothing dropped in the same step, the next look is asked for
    assert versions(kube)[1]["state"] == "Retired" and kube.get("batch/v1", "cronjobs", NS, "g-v1")["spec"]["suspend"]
    assert not jobs(kube, "drop-online")
    reconcile_fp(ctx)  # the next reconcile sees it retired, still online: the drop Job starts
    [drop] = jobs(kube, "drop-online")
    container = drop["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", DROP_MODULE]
    spec = json.loads(next(e["value"] for e in container["env"] if e["name"] == "FTI_SPEC"))
    assert spec["featureGroup"]["version"] == 1, "the Job's spec names the retired version, from its own CronJob"
    assert drop["metadata"]["labels"]["fti.dev/feature-group-version"] == "1"
    assert len(events(kube, "DroppingOnlineData")) == 1
    assert versions(kube)[1]["online"] is False, "going: no revision may start reading it meanwhile"
    before = kube.writes()
    reconcile_fp(ctx)  # running: nothing more, no second Job
    assert kube.writes() == before and len(jobs(kube, "drop-online")) == 1
    dropped = {"featureGroup": "g", "version": 1, "onlineDropped": True, "onlineKeysDropped": 10}
    finish_job(kube, drop["metadata"]["name"], dropped)
    reconcile_fp(ctx)
    v1 = versions(kube)[1]
    assert v1["online"] is False and v1["state"] == "Retired"
    assert v1["onlineDrop"] == {
        "job": drop["metadata"]["name"],
        "succeeded": True,
        "keysDropped": 10,
        "finishedAt": "2026-12-04T10:05:00Z",
    }
    assert v1["lastRun"]["job"] == "g-1", "a drop is not a run of the version"
    assert len(events(kube, "OnlineDataDropped")) == 1
    before = kube.writes()
    reconcile_fp(ctx)  # settled: no Job, no Event, no write
    assert kube.writes() == before and len(jobs(kube, "drop-online")) == 1
    assert versions(kube)[2]["online"] is True and "onlineDrop" not in versions(kube)[2], "the Active version is kept"


def test_a_failed_drop_is_tried_again_by_a_job_of_its_own_once_its_retry_is_due() -> None:
    kube, clock = MemKube(clock=lambda: T0), Clock()
    clock.now = datetime(2026, 12, 4, 10, 5, tzinfo=UTC)  # when the drop Jobs below end
    ctx = Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=clock)
    retire_v1(kube, ctx)
    reconcile_fp(ctx)
    reconcile_fp(ctx)
    [first] = jobs(kube, "drop-online")
    finish_job(kube, first["metadata"]["name"], {"reason": "StoreUnavailable", "error": "redis: connection refused"}, failed=True)
    result = feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    v1 = versions(kube)[1]
    assert v1["onlineDrop"]["succeeded"] is False and "connection refused" in v1["onlineDrop"]["message"]
    assert v1["online"] is False and len(events(kube, "OnlineDropFailed")) == 1
    assert result.requeue_after == DROP_RETRY_SECONDS, "the next attempt is asked for, not left to chance"
    clock.now += timedelta(seconds=DROP_RETRY_SECONDS / 2)
    before = kube.writes()
    result = feature.reconcile(ctx, get(kube, "featurepipelines", "g"))  # not due yet: nothing, and the wait asked for
    assert kube.writes() == before and len(jobs(kube, "drop-online")) == 1
    assert result.requeue_after == DROP_RETRY_SECONDS / 2
    clock.now += timedelta(seconds=DROP_RETRY_SECONDS / 2)
    reconcile_fp(ctx)
    retry = next(j for j in jobs(kube, "drop-online") if j["metadata"]["name"] != first["metadata"]["name"])
    assert len(jobs(kube, "drop-online")) == 2 and retry["spec"] == first["spec"], "the same pod, in a Job of its own"
    reconcile_fp(ctx)  # repeated (a crash, another event): the same retry is found, not made again
    assert len(jobs(kube, "drop-online")) == 2
    finish_job(kube, retry["metadata"]["name"], {"onlineDropped": True, "onlineKeysDropped": 7}, "2026-12-04T10:16:00Z")
    result = feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    v1 = versions(kube)[1]
    assert v1["onlineDrop"] == {
        "job": retry["metadata"]["name"],
        "succeeded": True,
        "keysDropped": 7,
        "finishedAt": "2026-12-04T10:16:00Z",
    }
    assert v1["online"] is False and len(events(kube, "OnlineDataDropped")) == 1 and result.requeue_after is None
    clock.now += timedelta(days=1)
    before = kube.writes()
    reconcile_fp(ctx)  # dropped: no attempt more
    assert kube.writes() == before and len(jobs(kube, "drop-online")) == 2


def test_the_retry_wait_reads_any_finish_time_status_may_hold() -> None:
    now = datetime(2026, 12, 4, 10, 5, tzinfo=UTC)
    assert drop_retry_in(None, now) is None and drop_retry_in({"succeeded": True}, now) is None
    assert drop_retry_in({"succeeded": False, "finishedAt": "2026-12-04T10:00:00Z"}, now) == DROP_RETRY_SECONDS - 300
    assert drop_retry_in({"succeeded": False, "finishedAt": "2026-12-04T10:00:00"}, now) == DROP_RETRY_SECONDS - 300
    assert drop_retry_in({"succeeded": False, "finishedAt": "2026-12-04T09:00:00+00:00"}, now) == 0.0
    assert drop_retry_in({"succeeded": False}, now) == 0.0, "no time: due now"
    assert drop_retry_in({"succeeded": False, "finishedAt": "yesterday"}, now) == 0.0, "unreadable: due, no crash"


def test_a_needed_version_is_never_dropped_and_a_rollback_waits_for_a_running_drop(env) -> None:
    kube, ctx = env
    retire_v1(kube, ctx)
    reconcile_fp(ctx)
    reconcile_fp(ctx)
    [drop] = jobs(kube, "drop-online")
    # A rollback to model 1 while v1's drop runs: v1 is needed again, but brought back only
    # once the drop is over, so the drop never lands after the version was written again.
    serve_rollback = get(kube, "inferenceservices", "s")
    serve_rollback["spec"]["model"]["version"] = 1
    kube.apply(
        {k: serve_rollback[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": "s", "namespace": NS}},
        field_manager="user",
    )
    inference.reconcile(ctx, get(kube, "inferenceservices", "s"))
    assert get(kube, "inferenceservices", "s")["status"]["pending"]["model"] == 1
    reconcile_fp(ctx)
    assert versions(kube)[1]["state"] == "Retained" and not jobs(kube, "rematerialize")
    assert versions(kube)[1]["online"] is False, "needed again, but not servable while its drop runs"
    inference.reconcile(ctx, get(kube, "inferenceservices", "s"))
    obj = get(kube, "inferenceservices", "s")
    assert obj["status"]["pending"]["model"] == 1 and obj["status"]["stable"]["model"] == 2 and "target" not in obj["status"]
    assert kube.get("batch/v1", "cronjobs", NS, "g-v1")["spec"]["suspend"] is True
    finish_job(kube, drop["metadata"]["name"], {"onlineDropped": True, "onlineKeysDropped": 10})
    reconcile_fp(ctx)
    [remat] = jobs(kube, "rematerialize")
    assert versions(kube)[1]["online"] is False and versions(kube)[1]["state"] == "Rematerializing"
    finish_job(kube, remat["metadata"]["name"], {"rowsWritten": 0, "onlineRowsWritten": 10})
    reconcile_fp(ctx)
    v1 = versions(kube)[1]
    assert v1["online"] is True and v1["state"] == "Retained" and v1["lastRun"]["job"] == remat["metadata"]["name"]
    # Needed (Retained, and v2 Active): whatever the reconciles, no new drop Job.
    for _ in range(2):
        reconcile_fp(ctx)
    assert len(jobs(kube, "drop-online")) == 1
