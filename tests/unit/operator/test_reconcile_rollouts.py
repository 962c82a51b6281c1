"""The reconcilers on the in-memory API server: rollouts as KServe reports them, the deadline,
features brought back with the model, a deleted TrainingPipeline changing nothing that serves.

FeaturePipeline and TrainingPipeline status is written here as their pipelines' runs would
leave it (the pipelines themselves run in the integration tests); KServe's status is written
as KServe writes it (tests/controlplane/kserve.py writes the same shapes on the real API server).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from fti_operator.config import OperatorConfig
from fti_operator.local.lookups import ScanLookups
from fti_operator.local.memkube import MemKube
from fti_operator.reconcile import Context, feature
from support.memkube_rollouts import NS, T0, Clock, fp, get, isvc, kserve, reconcile_isvc, rollout_env, tp

FV1, FV2 = [("g", 1)], [("g", 2)]


@pytest.fixture
def env():
    return rollout_env()


def child_model(kube: MemKube) -> int:
    child = kube.get("serving.kserve.io/v1beta1", "inferenceservices", NS, "s")
    return int(child["metadata"]["labels"]["fti.dev/model-version"])


def cond(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_a_target_is_recorded_before_its_child_and_stable_only_once_kserve_is_ready(env) -> None:
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1})
    isvc(kube)
    reconcile_isvc(ctx)
    st = get(kube, "inferenceservices", "s")["status"]
    assert st["target"]["model"] == 1 and "stable" not in st and child_model(kube) == 1
    assert cond(get(kube, "inferenceservices", "s"), "Ready")["status"] == "False"
    kserve(kube, True)
    reconcile_isvc(ctx)
    obj = get(kube, "inferenceservices", "s")
    assert obj["status"]["stable"]["model"] == 1 and obj["status"]["stable"]["kserveRevision"] == "s-predictor-00001"
    assert cond(obj, "Ready")["status"] == "True" and cond(obj, "Progressing")["reason"] == "RolloutComplete"
    before = kube.writes()
    reconcile_isvc(ctx)
    assert kube.writes() == before, "a settled InferenceService must not write"


def test_a_target_not_ready_by_its_deadline_is_rolled_back_once(env) -> None:
    kube, ctx, clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1})
    isvc(kube)
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)
    tp(kube, {1: 1, 2: 1})  # a newer Validated model
    result = reconcile_isvc(ctx)
    assert child_model(kube) == 2 and result.requeue_after == 60
    kserve(kube, False, "readiness probe failed: skew guard: feature view mismatch")
    clock.now = T0 + timedelta(seconds=30)
    assert reconcile_isvc(ctx).requeue_after == 30  # the deadline counts from the recorded since
    clock.now = T0 + timedelta(seconds=61)
    reconcile_isvc(ctx)
    obj = get(kube, "inferenceservices", "s")
    assert child_model(kube) == 1 and obj["status"]["stable"]["model"] == 1 and "target" not in obj["status"]
    assert obj["status"]["failed"]["model"] == 2 and "skew guard" in obj["status"]["failed"]["message"]
    assert cond(obj, "Progressing")["reason"] == "RolledBack" and cond(obj, "Ready")["status"] == "True"
    warnings = [e for e in kube.list("v1", "events", NS) if e["reason"] == "RolledBack"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    before = kube.writes()
    reconcile_isvc(ctx)  # same spec, same latest: the failed pair is not tried again
    assert kube.writes() == before and child_model(kube) == 1


def test_a_rollback_to_a_retired_feature_version_brings_it_back_first(env) -> None:
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))  # the v1 CronJob
    tp(kube, {1: 1})
    isvc(kube, version=1, revisionHistoryLimit=0)
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)
    # Move on: feature group v2, model 2 on it, the service follows; v1 is needed by nothing.
    fp(kube, 2, {1: "g-1", 2: "g-2"})
    tp(kube, {1: 1, 2: 2})
    isvc(kube, version=2, revisionHistoryLimit=0)
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    versions = {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}
    assert versions[1]["state"] == "Retired"
    v1_cron = kube.get("batch/v1", "cronjobs", NS, "g-v1")
    assert v1_cron["spec"]["suspend"] is True, "a retired version keeps its (suspended) CronJob"
    # GitOps rollback to model 1: it waits for g v1, which is brought back by a run.
    isvc(kube, version=1, revisionHistoryLimit=0)
    reconcile_isvc(ctx)
    obj = get(kube, "inferenceservices", "s")
    assert obj["status"]["pending"]["model"] == 1 and child_model(kube) == 2
    assert cond(obj, "Progressing")["reason"] == "WaitingForFeatures"
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    versions = {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}
    assert versions[1]["state"] == "Rematerializing"
    job = versions[1]["rematerializeJob"]
    assert kube.get("batch/v1", "jobs", NS, job) is not None
    assert kube.get("batch/v1", "cronjobs", NS, "g-v1")["spec"]["suspend"] is False
    reconcile_isvc(ctx)
    assert job in cond(get(kube, "inferenceservices", "s"), "UpToDate")["message"]
    assert cond(get(kube, "inferenceservices", "s"), "Progressing")["reason"] == "Rematerializing"
    # The run finishes: recorded, available, the rollback proceeds by itself.
    kube.patch(
        "batch/v1",
        "jobs",
        NS,
        job,
        {"status": {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2026-12-04T10:05:00Z"}},
        subresource="status",
    )
    pod = kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{job}-x", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": job}},
            "spec": {"containers": []},
        }
    )
    kube.patch(
        "v1",
        "pods",
        NS,
        pod["metadata"]["name"],
        {
            "status": {
                "containerStatuses": [
                    {
                        "state": {
                            "terminated": {
                                "message": (
                                    '{"ok": true, "rowsWritten": 5, "onlineRowsWritten": 5, "watermark": "2026-12-04T00:00:00Z"}'
                                ),
                                "finishedAt": "2026-12-04T10:05:00Z",
                            }
                        }
                    }
                ]
            }
        },
        subresource="status",
    )
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    versions = {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}
    assert versions[1]["state"] == "Retained" and versions[1]["lastRun"]["job"] == job
    reconcile_isvc(ctx)
    assert child_model(kube) == 1 and get(kube, "inferenceservices", "s")["status"]["target"]["model"] == 1


def test_deleting_the_training_pipeline_changes_nothing_that_serves(env) -> None:
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1})
    isvc(kube)
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)
    kube.delete("fti.dev/v1alpha1", "trainingpipelines", NS, "m")
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    fpo = get(kube, "featurepipelines", "g")
    assert "fti.dev/feature-versions-in-use" in fpo["metadata"]["finalizers"]
    before = kube.writes()
    reconcile_isvc(ctx)  # the model is gone from the registry's view; the stable revision keeps serving as it is
    obj = get(kube, "inferenceservices", "s")
    assert obj["status"]["stable"]["storageUri"] == "file:///s/models/m/1/model" and child_model(kube) == 1
    assert cond(obj, "Ready")["status"] == "True" and cond(obj, "UpToDate")["reason"] == "ModelNotFound"
    assert kube.writes() - before <= 2  # the UpToDate transition and its Event, nothing else
    # The pipeline moves on: v1 is kept for the stable revision (its own snapshot, the
    # TrainingPipeline is gone), and the status names the service that keeps it.
    fp(kube, 2, {1: "g-1"})
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    versions = {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}
    assert versions[1]["state"] == "Retained" and versions[1]["neededBy"] == [f"{NS}/s"]
    assert versions[2]["state"] == "Active" and "neededBy" not in versions[2]


def reader(kube: MemKube, name: str, *groups: tuple[str, int]) -> None:
    """An InferenceService whose stable revision reads `groups`, as its reconciles leave it."""
    kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"model": {"name": "m", "version": "latest"}, "mode": "online", "online": {"topology": "combined"}},
        },
        field_manager="user",
    )
    stable = {"revision": 1, "model": 1, "featureView": 1, "featureGroups": [{"name": g, "version": v} for g, v in groups]}
    kube.patch("fti.dev/v1alpha1", "inferenceservices", NS, name, {"status": {"stable": stable}}, subresource="status")


def test_new_readers_of_the_active_version_write_nothing_to_the_pipeline(env) -> None:
    """A burst of services starting to read a group must not re-write its pipeline once per
    service: the Active version is kept anyway, so its readers are not status (docs/versions.md).
    Only the first reader changes something (the finalizer); an older version's readers are listed."""
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))  # settle: CronJob, status
    settled = kube.writes()
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    assert kube.writes() == settled, "a no-change reconcile must not write"
    reader(kube, "s0", ("g", 1))
    before = kube.writes()
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    assert kube.writes() - before == 1  # the finalizer, nothing else
    assert "fti.dev/feature-versions-in-use" in get(kube, "featurepipelines", "g")["metadata"]["finalizers"]
    for i in range(1, 6):
        reader(kube, f"s{i}", ("g", 1))
        before = kube.writes()
        feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
        assert kube.writes() == before, f"reader s{i} re-wrote the pipeline"
    fp(kube, 2, {1: "g-1"})  # the pipeline moves on: v1 is now kept for its readers, who are named
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    versions = {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}
    assert versions[1]["state"] == "Retained" and versions[1]["neededBy"] == [f"{NS}/s{i}" for i in range(6)]


class Crash(Exception):
    """The operator process dies: nothing after this call runs."""


class CrashAfter:
    """A Kube that dies right after its `n`-th write (the write itself reaches the API server)."""

    WRITES = frozenset({"create", "apply", "patch", "delete", "replace"})

    def __init__(self, kube: MemKube, n: int) -> None:
        self.kube, self.left = kube, n

    def __getattr__(self, attr: str):
        call = getattr(self.kube, attr)
        if attr not in self.WRITES:
            return call

        def write(*args, **kwargs):
            out = call(*args, **kwargs)
            self.left -= 1
            if self.left == 0:
                raise Crash(attr)
            return out

        return write


def retired_v1(kube: MemKube, ctx: Context) -> None:
    """g v1 retired (its CronJob suspended), then the spec names model 1 again, which reads it."""
    fp(kube, 1, {1: "g-1"})
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    tp(kube, {1: 1, 2: 2})
    fp(kube, 2, {1: "g-1", 2: "g-2"})
    isvc(kube, version=2, revisionHistoryLimit=0)
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    assert kube.get("batch/v1", "cronjobs", NS, "g-v1")["spec"]["suspend"] is True
    isvc(kube, version=1, revisionHistoryLimit=0)
    reconcile_isvc(ctx)


def test_bringing_a_version_back_survives_a_crash_after_any_write(env) -> None:
    kube, ctx, _clock = env
    retired_v1(kube, ctx)
    before = kube.writes()
    feature.reconcile(ctx, get(kube, "featurepipelines", "g"))
    writes = kube.writes() - before
    assert writes >= 4  # the Job, its Event, the resume, the status
    for n in range(1, writes + 1):
        kube = MemKube(clock=lambda: T0)
        ctx = Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=Clock())
        retired_v1(kube, ctx)
        crashing = Context(CrashAfter(kube, n), ScanLookups(kube), OperatorConfig(image_tag="test"), clock=Clock())
        with pytest.raises(Crash):
            feature.reconcile(crashing, get(kube, "featurepipelines", "g"))
        feature.reconcile(ctx, get(kube, "featurepipelines", "g"))  # the operator, started again
        jobs = [j["metadata"]["name"] for j in kube.list("batch/v1", "jobs", NS) if "remat" in j["metadata"]["name"]]
        assert len(jobs) == 1, (n, jobs)
        assert kube.get("batch/v1", "cronjobs", NS, "g-v1")["spec"]["suspend"] is False, n
        versions = {v["version"]: v for v in get(kube, "featurepipelines", "g")["status"]["versions"]}
        assert versions[1]["state"] == "Rematerializing" and versions[1]["rematerializeJob"] == jobs[0], n
        assert len([e for e in kube.list("v1", "events", NS) if e["reason"] == "Rematerializing"]) == 1, n


def timeless(status: dict) -> dict:
    """Status without the conditions' wall-clock transition times."""
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}


def test_an_upgrade_survives_a_crash_after_any_write_with_one_event(env) -> None:
    def serving_1() -> tuple[MemKube, Context]:
        kube = MemKube(clock=lambda: T0)
        ctx = Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=Clock())
        fp(kube, 1, {1: "g-1"})
        tp(kube, {1: 1, 2: 1})
        isvc(kube, version=1)
        reconcile_isvc(ctx)
        kserve(kube, True)
        reconcile_isvc(ctx)
        isvc(kube, version=2)
        return kube, ctx

    kube, ctx = serving_1()
    before = kube.writes()
    reconcile_isvc(ctx)
    writes = kube.writes() - before  # the Event, the status that records it, the child
    reconcile_isvc(ctx)  # what it reads of the child it wrote
    reference = timeless(get(kube, "inferenceservices", "s")["status"])
    for n in range(1, writes + 1):
        kube, ctx = serving_1()
        crashing = Context(CrashAfter(kube, n), ScanLookups(kube), OperatorConfig(image_tag="test"), clock=Clock())
        with pytest.raises(Crash):
            reconcile_isvc(crashing)
        reconcile_isvc(ctx)  # the operator, started again
        reconcile_isvc(ctx)
        assert child_model(kube) == 2 and timeless(get(kube, "inferenceservices", "s")["status"]) == reference, n
        reasons = [e["reason"] for e in kube.list("v1", "events", NS)]
        # The Event goes just before the status write that records the transition, named after
        # the status it starts from: a crash on either side neither loses nor doubles it, and
        # the child written after a crash is no new Event.
        assert sorted(reasons) == ["RolloutComplete", "RolloutStarted", "RolloutStarted"], (n, reasons)


# -- what KServe reports beyond readiness: traffic, deployment mode, a child status does not know --
KSERVE_API = "serving.kserve.io/v1beta1"


def kserve_traffic(kube: MemKube, traffic: dict[int, int]) -> dict:
    """KServe's status with the latest revision ready and Knative's traffic table as given
    (KServe revision number -> percent), as during a canary or while requests move."""
    child = kube.get(KSERVE_API, "inferenceservices", NS, "s")
    gen = child["metadata"]["generation"]
    latest = f"s-predictor-{gen:05d}"
    table = [
        {
            "revisionName": f"s-predictor-{n:05d}",
            "percent": p,
            "latestRevision": n == gen,
            "tag": "latest" if n == gen else "prev",
        }
        for n, p in sorted(traffic.items(), reverse=True)
    ]
    status = {
        "observedGeneration": gen,
        "components": {"predictor": {"latestCreatedRevision": latest, "latestReadyRevision": latest, "traffic": table}},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    return kube.patch(KSERVE_API, "inferenceservices", NS, "s", {"status": status}, subresource="status")


def stable_at(kube: MemKube, ctx: Context, apply_spec) -> None:
    """The service applied by `apply_spec()`, reconciled, reported ready by KServe, stable."""
    apply_spec()
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)


def fg_state(ctx: Context, version: int) -> dict:
    feature.reconcile(ctx, get(ctx.kube, "featurepipelines", "g"))
    return {v["version"]: v for v in get(ctx.kube, "featurepipelines", "g")["status"]["versions"]}[version]


def test_retention_follows_traffic_the_old_pair_is_kept_until_no_longer_routed(env) -> None:
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1})
    stable_at(kube, ctx, lambda: isvc(kube, version=1, revisionHistoryLimit=0))
    fp(kube, 2, {1: "g-1", 2: "g-2"})
    tp(kube, {1: 1, 2: 2})
    isvc(kube, version=2, revisionHistoryLimit=0)
    reconcile_isvc(ctx)
    # KServe has the new revision ready, but Knative still routes a share to the old one.
    kserve_traffic(kube, {2: 90, 1: 10})
    reconcile_isvc(ctx)
    st = get(kube, "inferenceservices", "s")["status"]
    assert st["stable"]["model"] == 2 and st["history"] == [], "no history: revision 1 is only routed"
    assert [(r["revision"], r["traffic"], r["featureGroups"]) for r in st["routed"]] == [
        (2, 90, [{"name": "g", "version": 2}]),
        (1, 10, [{"name": "g", "version": 1}]),
    ]
    v1 = fg_state(ctx, 1)
    assert v1["state"] == "Retained" and v1["neededBy"] == [f"{NS}/s"]
    assert "fti.dev/feature-versions-in-use" in get(kube, "featurepipelines", "g")["metadata"]["finalizers"]
    # All requests moved: nothing reads g v1 any more.
    kserve_traffic(kube, {2: 100})
    reconcile_isvc(ctx)
    assert [r["revision"] for r in get(kube, "inferenceservices", "s")["status"]["routed"]] == [2]
    assert fg_state(ctx, 1)["state"] == "Retired"


def test_an_aborted_canary_keeps_its_features_while_kserve_still_routes_to_it(env) -> None:
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1})
    stable_at(kube, ctx, lambda: canary_isvc(kube, 1))
    fp(kube, 2, {1: "g-1", 2: "g-2"})
    tp(kube, {1: 1, 2: 2})
    canary_isvc(kube, 2)
    reconcile_isvc(ctx)
    kserve_traffic(kube, {2: 10, 1: 90})
    reconcile_isvc(ctx)
    assert get(kube, "inferenceservices", "s")["status"]["target"]["traffic"] == 10
    # Abort: the stable pair is rendered again (a new KServe revision), the canary keeps its
    # share until that revision is ready.
    kube.patch("fti.dev/v1alpha1", "inferenceservices", NS, "s", {"metadata": {"annotations": {"fti.dev/abort": "a1"}}})
    reconcile_isvc(ctx)
    st = get(kube, "inferenceservices", "s")["status"]
    assert "target" not in st and st["failed"]["model"] == 2 and child_model(kube) == 1
    assert {r["revision"]: r["traffic"] for r in st["routed"]} == {2: 10, 1: 90}
    # The feature group moves on to v3: v2 is read only by the aborted canary, which still takes requests.
    fp(kube, 3, {1: "g-1", 2: "g-2", 3: "g-3"})
    v2 = fg_state(ctx, 2)
    assert v2["state"] == "Retained" and v2["neededBy"] == [f"{NS}/s"]
    kserve_traffic(kube, {3: 100})  # the stable pair again, as KServe's revision 3, takes every request
    reconcile_isvc(ctx)
    st = get(kube, "inferenceservices", "s")["status"]
    assert [(r["revision"], r["traffic"], r["kserveRevision"]) for r in st["routed"]] == [(1, 100, "s-predictor-00003")]
    assert fg_state(ctx, 2)["state"] == "Retired"


def canary_isvc(kube: MemKube, version: int, annotations: dict | None = None) -> dict:
    return kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "s", "namespace": NS, **({"annotations": annotations} if annotations else {})},
            "spec": {
                "model": {"name": "m", "version": version},
                "mode": "online",
                "online": {"topology": "combined", "canary": {"trafficPercent": 10}},
                "rollout": {"readinessTimeout": "60s"},
            },
        },
        field_manager="user",
    )


def test_the_cluster_default_mode_holds_a_canary_back_with_a_canary_condition(env) -> None:
    kube, ctx, _clock = env
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
            "data": {"deploy": '{"defaultDeploymentMode": "RawDeployment"}'},
        }
    )
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1, 2: 1})
    stable_at(kube, ctx, lambda: canary_isvc(kube, 1))
    obj = get(kube, "inferenceservices", "s")
    assert cond(obj, "Canary")["reason"] == "TrafficSplitUnsupported" and cond(obj, "Ready")["status"] == "True"
    canary_isvc(kube, 2)
    reconcile_isvc(ctx)
    obj = get(kube, "inferenceservices", "s")
    assert child_model(kube) == 1 and "target" not in obj["status"], "held back: no canary KServe would ignore"
    assert (cond(obj, "Canary")["status"], cond(obj, "Canary")["reason"]) == ("False", "TrafficSplitUnsupported")
    assert "held back" in cond(obj, "Canary")["message"]
    assert cond(obj, "Progressing")["reason"] == "TrafficSplitUnsupported"


def test_without_the_config_map_kserve_default_serverless_splits_the_canary(env) -> None:
    kube, ctx, _clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1, 2: 1})
    stable_at(kube, ctx, lambda: canary_isvc(kube, 1))
    assert cond(get(kube, "inferenceservices", "s"), "Canary")["reason"] == "NoCanaryInProgress"
    canary_isvc(kube, 2)
    reconcile_isvc(ctx)
    child = kube.get(KSERVE_API, "inferenceservices", NS, "s")
    assert child_model(kube) == 2 and child["spec"]["predictor"]["canaryTrafficPercent"] == 10
    kserve_traffic(kube, {2: 10, 1: 90})
    reconcile_isvc(ctx)
    obj = get(kube, "inferenceservices", "s")
    assert (cond(obj, "Canary")["status"], cond(obj, "Canary")["reason"]) == ("True", "CanaryInProgress")
    assert "KServe routes 10 %" in cond(obj, "Canary")["message"]


def wipe_status(kube: MemKube) -> None:
    """The status lost (an object restored from a backup without it); the child stays."""
    status = get(kube, "inferenceservices", "s")["status"]
    kube.patch("fti.dev/v1alpha1", "inferenceservices", NS, "s", {"status": dict.fromkeys(status)}, subresource="status")
    assert "status" not in get(kube, "inferenceservices", "s")


def test_a_live_child_the_status_does_not_know_is_adopted_not_rolled_out_again(env) -> None:
    kube, ctx, clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1, 2: 1})
    stable_at(kube, ctx, lambda: isvc(kube, version=1))
    stable_at(kube, ctx, lambda: isvc(kube, version=2))
    before = get(kube, "inferenceservices", "s")["status"]["stable"]
    assert before["revision"] == 2
    child = kube.get(KSERVE_API, "inferenceservices", NS, "s")
    wipe_status(kube)
    clock.now = T0 + timedelta(minutes=5)
    reconcile_isvc(ctx)
    obj = get(kube, "inferenceservices", "s")
    st = obj["status"]
    assert "target" not in st and (st["stable"]["revision"], st["stable"]["model"]) == (2, 2)
    assert st["stable"]["kserveRevision"] == before["kserveRevision"] and st["stable"]["featureGroups"] == before["featureGroups"]
    after = kube.get(KSERVE_API, "inferenceservices", NS, "s")
    assert after["metadata"]["generation"] == child["metadata"]["generation"], "the child is not written again"
    assert cond(obj, "Ready")["status"] == "True" and cond(obj, "Progressing")["reason"] == "RolloutComplete"
    adopted = [e for e in kube.list("v1", "events", NS) if e["reason"] == "Adopted"]
    assert len(adopted) == 1 and "adopted as stable" in adopted[0]["message"]
    assert not [e for e in kube.list("v1", "events", NS) if e["reason"] == "RolloutStarted" and "revision 3" in e["message"]]
    writes = kube.writes()
    reconcile_isvc(ctx)
    assert kube.writes() == writes


def test_a_child_being_rolled_out_is_adopted_as_the_target_with_its_revision(env) -> None:
    kube, ctx, clock = env
    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1, 2: 1})
    stable_at(kube, ctx, lambda: isvc(kube, version=1))
    isvc(kube, version=2)
    reconcile_isvc(ctx)  # revision 2 is the target; KServe has not reported on it yet
    child = kube.get(KSERVE_API, "inferenceservices", NS, "s")
    wipe_status(kube)
    clock.now = T0 + timedelta(seconds=30)
    result = reconcile_isvc(ctx)
    st = get(kube, "inferenceservices", "s")["status"]
    assert (st["target"]["revision"], st["target"]["model"]) == (2, 2) and "stable" not in st
    assert kube.get(KSERVE_API, "inferenceservices", NS, "s")["metadata"]["generation"] == child["metadata"]["generation"]
    # The deadline runs from the operator's last write of the child (its managedFields time,
    # kept by `fti local`'s API server as by the real one), not from the adoption.
    assert st["target"]["since"] == "2026-12-04T10:00:00Z"
    assert result.requeue_after == 30
    kserve(kube, True)
    reconcile_isvc(ctx)
    assert get(kube, "inferenceservices", "s")["status"]["stable"]["revision"] == 2


def test_fti_locals_kserve_reports_the_traffic_the_reconciler_reads(env) -> None:
    """The same reconciler against `fti local`'s KServe stand-in (local/kserve.py), whose traffic
    table has KServe's shape: a canary's split shows in status.routed, then the abort."""
    from fti_operator.local.kserve import LocalKServe

    kube, ctx, _clock = env
    ports = iter(range(9001, 9100))
    local = LocalKServe(kube, lambda _isvc, _component, _container: f"http://127.0.0.1:{next(ports)}", lambda _url: None)

    def settle() -> dict:
        local.step()
        reconcile_isvc(ctx)
        return get(kube, "inferenceservices", "s")

    fp(kube, 1, {1: "g-1"})
    tp(kube, {1: 1, 2: 1})
    canary_isvc(kube, 1)
    reconcile_isvc(ctx)
    assert settle()["status"]["stable"]["kserveRevision"] == "s-predictor-00001"
    canary_isvc(kube, 2)
    reconcile_isvc(ctx)
    obj = settle()
    assert obj["status"]["target"]["traffic"] == 10 and cond(obj, "Canary")["status"] == "True"
    assert [(r["revision"], r["model"], r["traffic"]) for r in obj["status"]["routed"]] == [(2, 2, 10), (1, 1, 90)]
    kube.patch("fti.dev/v1alpha1", "inferenceservices", NS, "s", {"metadata": {"annotations": {"fti.dev/abort": "a1"}}})
    reconcile_isvc(ctx)
    obj = settle()
    assert "target" not in obj["status"] and obj["status"]["failed"]["model"] == 2 and child_model(kube) == 1
    assert [(r["revision"], r["traffic"], r["kserveRevision"]) for r in obj["status"]["routed"]] == [
        (1, 100, "s-predictor-00003")
    ]
