"""Which watch events queue which reconcile (controller/triggers.py), and what a queue worker does
with a key (controller/runtime.py): the body cache, requeue_after, deletions, permanent refusals.

The handlers are called directly with a Runtime whose queue records keys and whose indexes
are plain dicts: no Kopf, no API server.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from fti_operator.config import OperatorConfig
from fti_operator.controller import runtime, triggers
from fti_operator.controller.indexes import IndexLookups
from fti_operator.controller.queue import WorkQueue
from fti_operator.controller.runtime import Runtime
from fti_operator.reconcile import ApiError, Result
from support.wait import wait_until

NS = "ns"


class RecordingQueue:
    stopped = False

    def __init__(self) -> None:
        self.added: list = []
        self.delayed: list = []

    def add(self, key) -> None:
        self.added.append(key)

    def add_after(self, key, seconds) -> None:
        self.delayed.append((key, seconds))


class CountingKube:
    def __init__(self, objects: dict | None = None) -> None:
        self.objects = objects or {}
        self.gets: list = []

    def get(self, api_version, plural, namespace, name):
        self.gets.append((plural, namespace, name))
        return self.objects.get((plural, namespace, name))


class Memo:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


def make_runtime(indices: dict[str, dict] | None = None, kube: Any = None) -> tuple[Runtime, RecordingQueue, Memo]:
    rt = Runtime(OperatorConfig(), kube=kube or CountingKube(), lookups=IndexLookups(indices or {}))
    rt.queue = RecordingQueue()  # type: ignore[assignment]
    return rt, rt.queue, Memo(rt)  # type: ignore[return-value]


def queued(q: RecordingQueue, plural: str) -> list:
    """Keys of `plural` queued (the object's own key is queued too until it has been reconciled)."""
    return sorted(k for k in q.added if k[0] == plural)


def event(handler, body: dict, type_: str | None, memo: Memo) -> None:
    asyncio.run(handler(body=body, type=type_, memo=memo))


def obj(kind: str, name: str, generation: int = 1, status: dict | None = None, spec: dict | None = None, **meta) -> dict:
    return {
        "apiVersion": "fti.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "generation": generation, "resourceVersion": "1", **meta},
        "spec": spec or {},
        "status": status or {},
    }


def kserve_child(status: dict | None = None) -> dict:
    return {
        "metadata": {
            "name": "fraud-online",
            "namespace": NS,
            "uid": "k1",
            "ownerReferences": [
                {"apiVersion": "fti.dev/v1alpha1", "kind": "InferenceService", "name": "fraud-online", "controller": True}
            ],
        },
        "status": status or {},
    }


def test_kserve_child_queues_its_owner_only_when_what_we_report_changes():
    _rt, q, memo = make_runtime()
    event(triggers.kserve_event, kserve_child(), "ADDED", memo)  # just created: nothing reported yet
    assert q.added == []
    ready = {"url": "http://x", "conditions": [{"type": "Ready", "status": "True"}]}
    event(triggers.kserve_event, kserve_child(ready), "MODIFIED", memo)
    event(triggers.kserve_event, kserve_child(ready), "MODIFIED", memo)  # KServe touched something else
    assert q.added == [("inferenceservices", NS, "fraud-online")]
    moved = {
        **ready,
        "components": {
            "predictor": {
                "latestReadyRevision": "r2",
                "traffic": [{"revisionName": "r2", "percent": 10}, {"revisionName": "r1", "percent": 90}],
            }
        },
    }
    event(triggers.kserve_event, kserve_child(moved), "MODIFIED", memo)
    assert len(q.added) == 2
    event(triggers.kserve_event, kserve_child(moved), "DELETED", memo)  # the owner puts it back
    assert len(q.added) == 3


def test_kserve_children_of_the_initial_listing_are_only_remembered():
    _rt, q, memo = make_runtime()
    ready = {"url": "http://x", "conditions": [{"type": "Ready", "status": "True"}]}
    event(triggers.kserve_event, kserve_child(ready), None, memo)
    event(triggers.kserve_event, kserve_child(ready), "MODIFIED", memo)
    assert q.added == []


def job(finished: str | None, kind: str = "featurepipeline", owner: str = "card-profiles") -> dict:
    conditions = [{"type": finished, "status": "True"}] if finished else []
    return {
        "metadata": {
            "name": f"{owner}-x",
            "namespace": NS,
            "uid": "j1",
            "labels": {"fti.dev/kind": kind, "fti.dev/resource": owner},
        },
        "status": {"conditions": conditions},
    }


def test_a_finished_job_queues_its_owner_once():
    _rt, q, memo = make_runtime()
    event(triggers.job_event, job(None), "ADDED", memo)
    event(triggers.job_event, job(None), "MODIFIED", memo)
    assert q.added == []
    event(triggers.job_event, job("Complete"), "MODIFIED", memo)
    event(triggers.job_event, job("Complete"), "MODIFIED", memo)  # pods cleaned up, TTL set...
    assert q.added == [("featurepipelines", NS, "card-profiles")]
    event(
        triggers.job_event,
        job("Failed", "trainingpipeline", "fraud-model")
        | {"metadata": {**job(None, "trainingpipeline", "fraud-model")["metadata"], "uid": "j2"}},
        "MODIFIED",
        memo,
    )
    assert q.added[-1] == ("trainingpipelines", NS, "fraud-model")


def test_jobs_finished_before_a_restart_are_left_to_the_owners_resume():
    _rt, q, memo = make_runtime()
    event(triggers.job_event, job("Complete"), None, memo)
    event(triggers.job_event, job("Complete"), "MODIFIED", memo)
    assert q.added == []


def test_own_kinds_are_queued_when_their_signature_changes_not_on_status_writes(monkeypatch):
    kube = CountingKube()
    rt, q, memo = make_runtime(kube=kube)
    fp = obj("FeaturePipeline", "card-profiles", spec={"featureGroup": {"name": "card_profiles", "version": 1}})
    event(triggers.feature_event, fp, "ADDED", memo)
    assert q.added == [("featurepipelines", NS, "card-profiles")]
    seen = []
    monkeypatch.setitem(
        runtime.RECONCILERS,
        "featurepipelines",
        ("FeaturePipeline", lambda ctx, body: seen.append(body) or Result(requeue_after=30)),
    )
    rt.process(("featurepipelines", NS, "card-profiles"))
    assert seen == [fp] and kube.gets == []  # started from the watched body: no GET
    assert q.delayed == [(("featurepipelines", NS, "card-profiles"), 30)]  # Result.requeue_after
    event(triggers.feature_event, {**fp, "status": {"conditions": [{"type": "Ready"}]}}, "MODIFIED", memo)
    assert len(q.added) == 1  # our own status write
    event(triggers.feature_event, {**fp, "metadata": {**fp["metadata"], "generation": 2}}, "MODIFIED", memo)
    event(triggers.feature_event, {**fp, "metadata": {**fp["metadata"], "annotations": {"fti.dev/run": "t1"}}}, "MODIFIED", memo)
    assert len(q.added) == 3


def test_a_waiting_key_reconciles_from_the_newest_body_and_a_gone_one_from_nothing():
    kube = CountingKube()
    rt, _q, memo = make_runtime(kube=kube)
    fp = obj("FeaturePipeline", "p", spec={"featureGroup": {"name": "g", "version": 1}})
    event(triggers.feature_event, fp, None, memo)
    newer = {**fp, "metadata": {**fp["metadata"], "resourceVersion": "2"}, "status": {"x": 1}}
    event(triggers.feature_event, newer, "MODIFIED", memo)  # same signature, but the key waits
    assert rt._body(("featurepipelines", NS, "p")) == newer
    event(triggers.feature_event, fp, "DELETED", memo)
    assert rt._body(("featurepipelines", NS, "p")) is None and kube.gets == [("featurepipelines", NS, "p")]


def test_new_model_versions_queue_the_services_of_that_model():
    indices = {"services_by_model": {(NS, "fraud"): ["fraud-online", "fraud-batch"]}}
    _rt, q, memo = make_runtime(indices)
    spec = {"model": {"name": "fraud"}}
    tp = obj("TrainingPipeline", "fraud-model", spec=spec)
    event(triggers.training_event, tp, "ADDED", memo)
    q.added.clear()
    v1 = {"modelVersions": [{"version": 1, "phase": "Training"}]}
    event(triggers.training_event, obj("TrainingPipeline", "fraud-model", spec=spec, status=v1), "MODIFIED", memo)
    assert queued(q, "inferenceservices") == [("inferenceservices", NS, "fraud-batch"), ("inferenceservices", NS, "fraud-online")]
    q.added.clear()
    event(triggers.training_event, obj("TrainingPipeline", "fraud-model", spec=spec, status=v1), "MODIFIED", memo)
    assert queued(q, "inferenceservices") == []
    event(triggers.training_event, obj("TrainingPipeline", "fraud-model", spec=spec, status=v1), "DELETED", memo)
    assert len(queued(q, "inferenceservices")) == 2  # `latest` may resolve to nothing now


def test_feature_availability_queues_the_services_that_read_the_group():
    indices = {
        "models_by_group": {(NS, "card_profiles"): ["fraud"]},
        "services_by_model": {(NS, "fraud"): ["fraud-online"]},
        "revisions_by_group": {(NS, "card_profiles"): [(f"{NS}/old-service", (1,))]},
    }
    _rt, q, memo = make_runtime(indices)
    spec = {"featureGroup": {"name": "card_profiles", "version": 1}}
    event(triggers.feature_event, obj("FeaturePipeline", "card-profiles", spec=spec), None, memo)
    q.added.clear()
    done = {"versions": [{"version": 1, "state": "Active", "lastRun": {"succeeded": True, "rowsWritten": 5}}]}
    fp = obj("FeaturePipeline", "card-profiles", spec=spec, status=done)
    event(triggers.feature_event, fp, "MODIFIED", memo)
    assert queued(q, "inferenceservices") == [("inferenceservices", NS, "fraud-online"), ("inferenceservices", NS, "old-service")]
    q.added.clear()
    event(triggers.feature_event, fp, "MODIFIED", memo)
    assert queued(q, "inferenceservices") == []


def revision(model: int, *groups: tuple[str, int]) -> dict:
    return {"revision": model, "model": model, "featureView": 1, "featureGroups": [{"name": g, "version": v} for g, v in groups]}


def test_revisions_reading_other_feature_versions_queue_those_pipelines():
    indices = {"pipelines_by_group": {(NS, "a"): ["fp-a"], (NS, "b"): ["fp-b"], (NS, "c"): ["fp-c"]}}
    _rt, q, memo = make_runtime(indices)
    st1 = {"stable": revision(1, ("a", 1), ("b", 1))}
    event(triggers.inference_event, obj("InferenceService", "svc", status=st1), None, memo)
    assert q.added == [("inferenceservices", NS, "svc")]  # its own resume; the pipelines resume themselves
    q.added.clear()
    st2 = {"stable": revision(2, ("a", 2), ("b", 1)), "history": [revision(1, ("a", 1), ("b", 1))]}
    event(triggers.inference_event, obj("InferenceService", "svc", status=st2), "MODIFIED", memo)
    assert queued(q, "featurepipelines") == [("featurepipelines", NS, "fp-a")]  # b's versions did not change
    q.added.clear()
    event(triggers.inference_event, obj("InferenceService", "svc", status=st2), "DELETED", memo)
    assert queued(q, "featurepipelines") == [("featurepipelines", NS, "fp-a"), ("featurepipelines", NS, "fp-b")]


def test_index_lookups_answer_from_the_indexes():
    from fti_operator.versions import FeatureGroupAvailability, ModelInfo

    m1 = ModelInfo("fraud", 1, "Validated", feature_groups=(("a", 1),))
    lookups = IndexLookups(
        {
            "models_by_name": {(NS, "fraud"): [(m1,)]},
            "feature_availability": {(NS, "a", 1): [FeatureGroupAvailability(True, False)]},
            "revisions_by_group": {(NS, "a"): [(f"{NS}/s2", (1, 2)), (f"{NS}/s1", (1,))]},
        }
    )
    assert lookups.models(NS, "fraud") == [m1] and lookups.models(NS, "other") == []
    assert lookups.availability(NS, [("a", 1), ("a", 2)]) == {("a", 1): FeatureGroupAvailability(True, False)}
    assert lookups.needed(NS, "a") == {("a", 1): [f"{NS}/s1", f"{NS}/s2"], ("a", 2): [f"{NS}/s2"]}
    assert lookups.needed(NS, "b") == {}


def test_an_object_being_deleted_is_reconciled_only_for_our_finalizer(monkeypatch):
    seen = []
    for plural in runtime.RECONCILERS:
        monkeypatch.setitem(runtime.RECONCILERS, plural, (plural, lambda ctx, body: seen.append(body) or Result()))
    gone = {"deletionTimestamp": "2026-12-04T00:00:00Z"}
    tp = obj("TrainingPipeline", "tp", **gone)  # the garbage collector removes its children: hands off
    fp = obj("FeaturePipeline", "fp", finalizers=["fti.dev/feature-versions-in-use"], **gone)
    kube = CountingKube({("trainingpipelines", NS, "tp"): tp, ("featurepipelines", NS, "fp"): fp})
    rt, _q, _memo = make_runtime(kube=kube)
    rt.process(("trainingpipelines", NS, "tp"))
    rt.process(("featurepipelines", NS, "fp"))
    assert seen == [fp]


def test_a_create_refused_in_a_terminating_namespace_is_not_retried(monkeypatch):
    def refuse(ctx, body):
        raise ApiError(403, "Forbidden", '{"details": {"causes": [{"reason": "NamespaceTerminating"}]}}')

    def fail(ctx, body):
        raise ApiError(500, "Internal Server Error", "etcd timeout")

    kube = CountingKube({("featurepipelines", NS, "fp"): obj("FeaturePipeline", "fp")})
    rt, _q, _memo = make_runtime(kube=kube)
    monkeypatch.setitem(runtime.RECONCILERS, "featurepipelines", ("FeaturePipeline", refuse))
    rt.process(("featurepipelines", NS, "fp"))  # returns: the namespace's deletion deletes the object next
    monkeypatch.setitem(runtime.RECONCILERS, "featurepipelines", ("FeaturePipeline", fail))
    with pytest.raises(ApiError):  # raised to the queue, which retries with backoff
        rt.process(("featurepipelines", NS, "fp"))


def test_a_write_conflict_is_reconciled_again_at_once_from_a_fresh_read(monkeypatch, caplog):
    calls = []

    def conflict(ctx, body):
        calls.append(body["metadata"]["resourceVersion"])
        raise ApiError(409, "Conflict", "the object has been modified")

    key = ("featurepipelines", NS, "fp")
    kube = CountingKube({key: obj("FeaturePipeline", "fp", resourceVersion="7")})
    rt, q, _memo = make_runtime(kube=kube)
    monkeypatch.setitem(runtime.RECONCILERS, "featurepipelines", ("FeaturePipeline", conflict))
    rt._bodies[key] = obj("FeaturePipeline", "fp", resourceVersion="5")  # a stale watched body
    with caplog.at_level("INFO", logger="fti_operator"):
        for _ in range(runtime.CONFLICT_RETRIES):
            rt.process(key)  # returns: queued again, no error
    assert q.added == [key] * runtime.CONFLICT_RETRIES
    assert calls == ["5", "7", "7"]  # the stale body once, then fresh reads
    assert all(r.exc_info is None for r in caplog.records)  # no stack trace for a conflict
    with pytest.raises(ApiError):  # a conflict that keeps coming back: the queue's backoff
        rt.process(key)
    monkeypatch.setitem(runtime.RECONCILERS, "featurepipelines", ("FeaturePipeline", lambda ctx, body: Result()))
    rt.process(key)
    assert rt._conflicts == {}


def test_a_burst_of_new_readers_costs_the_pipeline_one_reconcile():
    """Many services starting to read one group while its pipeline's key waits: one reconcile
    of the pipeline, not one per service (the queue coalesces by key, as controller-runtime's
    workqueue does; the reconcile reads the newest state anyway)."""
    seen: list = []
    busy, release = threading.Event(), threading.Event()

    def process(key) -> None:
        if key == "gate":
            busy.set()
            assert release.wait(10)
        seen.append(key)

    rt, _q, memo = make_runtime({"pipelines_by_group": {(NS, "g"): ["fp-g"]}})
    rt.queue = WorkQueue(process, workers=1)
    try:
        rt.queue.add("gate")
        assert busy.wait(10)
        for i in range(20):
            st = {"stable": revision(1, ("g", 1))}
            event(triggers.inference_event, obj("InferenceService", f"svc{i}", status=st), "MODIFIED", memo)
        release.set()
        wait_until(lambda: len(rt.queue) == 0 and len(seen) == 22, timeout=10, interval=0.01, description="drained")
    finally:
        rt.queue.stop(timeout=10)
    assert seen.count(("featurepipelines", NS, "fp-g")) == 1
    assert len([k for k in seen if k[0] == "inferenceservices"]) == 20  # each service its own reconcile
