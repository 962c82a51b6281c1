"""The reconcilers on the in-memory API server: rollouts as KServe reports them, the deadline,
features brought back with the model, a deleted TrainingPipeline changing nothing that serves.

FeaturePipeline and TrainingPipeline status is written here as their pipelines' runs would
leave it (the pipelines themselves run in the integration tests); KServe's status is written
as KServe writes it (tests/controlplane/kserve.py writes the same shapes on the real API server).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fti_operator.config import OperatorConfig
from fti_operator.local.lookups import ScanLookups
from fti_operator.local.memkube import MemKube
from fti_operator.reconcile import Context, feature, inference

NS = "fraud"
T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
FV1, FV2 = [("g", 1)], [("g", 2)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def env():
    kube, clock = MemKube(clock=lambda: T0), Clock()
    ctx = Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=clock)
    return kube, ctx, clock


def fp(kube: MemKube, version: int, runs: dict[int, str]) -> dict:
    kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "FeaturePipeline",
            "metadata": {"name": "g", "namespace": NS},
            "spec": {
                "featureGroup": {"name": "g", "version": version, "primaryKey": ["k"], "eventTime": "t", "online": True},
                "source": {"uri": "file:///data/g/", "format": "parquet"},
                "schedule": "0 * * * *",
            },
        },
        field_manager="user",
    )
    status = {
        "versions": [
            {
                "version": v,
                "state": "Active" if v == version else "Retained",
                "lastRun": {"job": job, "succeeded": True, "rowsWritten": 10, "watermark": "2026-12-01T00:00:00Z"},
            }
            for v, job in runs.items()
        ]
    }
    return kube.patch("fti.dev/v1alpha1", "featurepipelines", NS, "g", {"status": status}, subresource="status")


def tp(kube: MemKube, models: dict[int, int]) -> dict:
    """A TrainingPipeline whose status records model version -> feature-group version g."""
    kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "TrainingPipeline",
            "metadata": {"name": "m", "namespace": NS},
            "spec": {
                "model": {"name": "m", "estimator": "sklearn.linear_model.LogisticRegression"},
                "featureView": {
                    "name": "m",
                    "version": 1,
                    "label": {"featureGroup": {"name": "g", "version": 1}, "column": "y"},
                    "features": [{"featureGroup": {"name": "g", "version": 1}, "columns": ["x"]}],
                },
            },
        },
        field_manager="user",
    )
    versions = [
        {
            "version": mv,
            "phase": "Validated",
            "featureView": {"name": "m", "version": g},
            "featureGroups": [{"name": "g", "version": g}],
            "storageUri": f"file:///s/models/m/{mv}/model",
        }
        for mv, g in models.items()
    ]
    return kube.patch(
        "fti.dev/v1alpha1", "trainingpipelines", NS, "m", {"status": {"modelVersions": versions}}, subresource="status"
    )


def isvc(kube: MemKube, version="latest", **rollout) -> dict:
    return kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "s", "namespace": NS},
            "spec": {
                "model": {"name": "m", "version": version},
                "mode": "online",
                "online": {"topology": "combined"},
                "rollout": {"readinessTimeout": "60s", **rollout},
            },
        },
        field_manager="user",
    )


def get(kube: MemKube, plural: str, name: str) -> dict:
    return kube.get("fti.dev/v1alpha1", plural, NS, name)


def reconcile_isvc(ctx: Context):
    return inference.reconcile(ctx, get(ctx.kube, "inferenceservices", "s"))


def kserve(kube: MemKube, ready: bool, message: str = "") -> dict:
    """KServe's status for the child's current generation (ready: the latest revision took all traffic)."""
    child = kube.get("serving.kserve.io/v1beta1", "inferenceservices", NS, "s")
    gen = child["metadata"]["generation"]
    latest = f"s-predictor-{gen:05d}"
    predictor = {"latestCreatedRevision": latest}
    if ready:
        predictor.update(latestReadyRevision=latest, traffic=[{"revisionName": latest, "percent": 100, "latestRevision": True}])
    return kube.patch(
        "serving.kserve.io/v1beta1",
        "inferenceservices",
        NS,
        "s",
        {
            "status": {
                "observedGeneration": gen,
                "url": "http://s.fraud.example.com",
                "components": {"predictor": predictor},
                "conditions": [{"type": "Ready", "status": "True" if ready else "False", "message": message}],
            }
        },
        subresource="status",
    )


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
                                "message": '{"ok": true, "rowsWritten": 5, "watermark": "2026-12-04T00:00:00Z"}',
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
    assert fpo["status"]["versions"][0]["neededBy"] == [f"{NS}/s"]
    before = kube.writes()
    reconcile_isvc(ctx)  # the model is gone from the registry's view; the stable revision keeps serving as it is
    obj = get(kube, "inferenceservices", "s")
    assert obj["status"]["stable"]["storageUri"] == "file:///s/models/m/1/model" and child_model(kube) == 1
    assert cond(obj, "Ready")["status"] == "True" and cond(obj, "UpToDate")["reason"] == "ModelNotFound"
    assert kube.writes() - before <= 2  # the UpToDate transition and its Event, nothing else


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
