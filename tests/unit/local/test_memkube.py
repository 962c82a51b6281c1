"""The in-memory API server: the semantics the reconcilers depend on, as the real one has them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fti_operator.local.memkube import MemKube
from fti_operator.local.objects import merge_patch, plural_of
from fti_operator.reconcile.kube import ApiError

API = "fti.dev/v1alpha1"


def pipeline(name: str = "fp", spec: dict | None = None, **meta) -> dict:
    return {
        "apiVersion": API,
        "kind": "FeaturePipeline",
        "metadata": {"name": name, "namespace": "ns", **meta},
        "spec": spec or {"schedule": "@hourly"},
    }


def job(name: str, owner: dict | None = None, labels: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": {}}}


def test_plurals_follow_the_api_machinery_rule() -> None:
    assert [plural_of({"kind": k}) for k in ("Job", "CronJob", "Event", "InferenceService", "NetworkPolicy", "Ingress")] == [
        "jobs",
        "cronjobs",
        "events",
        "inferenceservices",
        "networkpolicies",
        "ingresses",
    ]


def test_merge_patch_is_rfc7386() -> None:
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": {"b": "c"}}, {"a": "x"}) == {"a": "x"}


def test_create_sets_server_fields_and_refuses_a_duplicate() -> None:
    kube = MemKube(clock=lambda: datetime(2026, 12, 4, 16, 0, 0, 123, tzinfo=UTC))
    created = kube.create({**pipeline(), "status": {"x": 1}})
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"] == "2026-12-04T16:00:00Z"
    assert "status" not in created, "status is a subresource: a create ignores it"
    with pytest.raises(ApiError) as exc:
        kube.create(pipeline())
    assert exc.value.status == 409 and exc.value.reason == "AlreadyExists"
    assert kube.get(API, "featurepipelines", "ns", "fp") == created
    assert kube.get(API, "featurepipelines", "ns", "other") is None


def test_generate_name_gets_a_unique_suffix() -> None:
    kube = MemKube()
    names = {
        kube.create(
            {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "fp.", "namespace": "ns"}, "reason": f"R{i}"}
        )["metadata"]["name"]
        for i in range(20)
    }
    assert len(names) == 20 and all(n.startswith("fp.") and len(n) == 8 for n in names)
    # Events list in the order they were posted, for `fti local` to show.
    assert [e["reason"] for e in kube.list("v1", "events", "ns")] == [f"R{i}" for i in range(20)]


def test_resource_version_grows_and_generation_only_on_spec_changes() -> None:
    kube = MemKube()
    obj = kube.create(pipeline())
    rv0 = int(obj["metadata"]["resourceVersion"])
    labelled = kube.patch(API, "featurepipelines", "ns", "fp", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1 and int(labelled["metadata"]["resourceVersion"]) > rv0
    status = kube.patch(API, "featurepipelines", "ns", "fp", {"status": {"phase": "Ready"}}, subresource="status")
    assert status["metadata"]["generation"] == 1 and status["status"] == {"phase": "Ready"}
    assert int(status["metadata"]["resourceVersion"]) > int(labelled["metadata"]["resourceVersion"])
    respec = kube.patch(API, "featurepipelines", "ns", "fp", {"spec": {"schedule": "@daily"}})
    assert respec["metadata"]["generation"] == 2
    applied = kube.apply(pipeline(spec={"schedule": "@weekly"}))
    assert applied["metadata"]["generation"] == 3
    again = kube.apply(pipeline(spec={"schedule": "@weekly"}))
    assert again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"], "a no-op write changes nothing"
    assert again["metadata"]["generation"] == 3


def test_a_stale_resource_version_is_a_conflict() -> None:
    kube = MemKube()
    old = kube.create(pipeline())
    kube.patch(API, "featurepipelines", "ns", "fp", {"status": {"a": 1}}, subresource="status")
    for sub in (None, "status"):
        with pytest.raises(ApiError) as exc:
            kube.patch(
                API,
                "featurepipelines",
                "ns",
                "fp",
                {"metadata": {"resourceVersion": old["metadata"]["resourceVersion"]}, "status": {"a": 2}},
                subresource=sub,
            )
        assert exc.value.conflict
    fresh = kube.get(API, "featurepipelines", "ns", "fp")
    ok = kube.patch(
        API,
        "featurepipelines",
        "ns",
        "fp",
        {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]}, "status": {"a": 2}},
        subresource="status",
    )
    assert ok["status"] == {"a": 2}
    with pytest.raises(ApiError) as missing:
        kube.patch(API, "featurepipelines", "ns", "nope", {"status": {}}, subresource="status")
    assert missing.value.not_found


def test_status_subresource_is_isolated_both_ways() -> None:
    kube = MemKube()
    kube.create(pipeline())
    patched = kube.patch(
        API,
        "featurepipelines",
        "ns",
        "fp",
        {"spec": {"schedule": "x"}, "metadata": {"labels": {"a": "b"}}, "status": {"s": 1}},
        subresource="status",
    )
    assert patched["spec"] == {"schedule": "@hourly"} and "labels" not in patched["metadata"]
    assert patched["status"] == {"s": 1}
    main = kube.patch(API, "featurepipelines", "ns", "fp", {"status": {"s": 2}, "spec": {"schedule": "y"}})
    assert main["status"] == {"s": 1} and main["spec"] == {"schedule": "y"}
    assert kube.apply({**pipeline(spec={"schedule": "y"}), "status": {"s": 3}})["status"] == {"s": 1}


def test_apply_adds_updates_and_removes_only_its_own_fields() -> None:
    kube = MemKube()
    kube.apply(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "m", "namespace": "ns", "labels": {"a": "1", "b": "1"}},
            "spec": {"predictor": {"minReplicas": 1, "canaryTrafficPercent": 10, "containers": [{"name": "c"}]}},
        }
    )
    # Another writer (KServe's webhook, a user) sets fields of its own.
    kube.patch(
        "serving.kserve.io/v1beta1",
        "inferenceservices",
        "ns",
        "m",
        {"metadata": {"labels": {"user": "x"}}, "spec": {"predictor": {"timeout": 60}}},
    )
    out = kube.apply(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "m", "namespace": "ns", "labels": {"a": "2"}},
            "spec": {"predictor": {"minReplicas": 2, "containers": [{"name": "d"}]}},
        }
    )
    assert out["metadata"]["labels"] == {"a": "2", "user": "x"}
    assert out["spec"]["predictor"] == {"minReplicas": 2, "timeout": 60, "containers": [{"name": "d"}]}
    assert out["metadata"]["generation"] == 3


def test_apply_keeps_a_field_another_manager_still_applies() -> None:
    kube = MemKube()
    kube.apply(pipeline(spec={"a": 1, "b": 1}), field_manager="kubectl")
    kube.apply(pipeline(spec={"b": 1}))
    out = kube.apply(pipeline(spec={"c": 1}))
    assert out["spec"] == {"a": 1, "b": 1, "c": 1}, "b stays: kubectl still applies it"


def test_managed_fields_record_each_managers_last_changing_apply() -> None:
    # The API server's managedFields time: what adoption reads as when a rollout started.
    now = [datetime(2026, 12, 4, 16, 0, tzinfo=UTC)]
    kube = MemKube(clock=lambda: now[0])

    def times(obj: dict) -> dict:
        return {e["manager"]: e["time"] for e in obj["metadata"]["managedFields"]}

    kube.apply(pipeline(spec={"a": 1}))
    now[0] = datetime(2026, 12, 4, 16, 5, tzinfo=UTC)
    same = kube.apply(pipeline(spec={"a": 1}))  # no change: the time stays
    assert times(same) == {"fti-operator": "2026-12-04T16:00:00Z"}
    kube.apply(pipeline(spec={"a": 1, "b": 2}), field_manager="kubectl")
    now[0] = datetime(2026, 12, 4, 16, 9, tzinfo=UTC)
    out = kube.apply(pipeline(spec={"a": 3}))
    assert times(out) == {"kubectl": "2026-12-04T16:05:00Z", "fti-operator": "2026-12-04T16:09:00Z"}
    # A client cannot set it.
    forged = kube.apply({**pipeline(spec={"a": 4}), "metadata": {"name": "fp", "namespace": "ns", "managedFields": []}})
    assert times(forged)["fti-operator"] == "2026-12-04T16:09:00Z"


def test_apply_with_a_stale_resource_version_conflicts() -> None:
    kube = MemKube()
    first = kube.apply(pipeline())
    kube.apply(pipeline(spec={"x": 1}))
    with pytest.raises(ApiError) as exc:
        kube.apply(pipeline(spec={"x": 2}, resourceVersion=first["metadata"]["resourceVersion"]))
    assert exc.value.conflict


def test_finalizers_block_deletion_until_removed() -> None:
    kube = MemKube()
    seen: list[tuple[str, str]] = []
    kube.subscribe(lambda type_, obj: seen.append((type_, obj["metadata"]["name"])))
    fp = kube.create(pipeline(finalizers=["fti.dev/x"]))
    child = kube.create(job("j", owner=fp))
    kube.delete(API, "featurepipelines", "ns", "fp")
    live = kube.get(API, "featurepipelines", "ns", "fp")
    assert live["metadata"]["deletionTimestamp"] and live["metadata"]["finalizers"] == ["fti.dev/x"]
    assert kube.get("batch/v1", "jobs", "ns", "j") == child, "background: dependents go after the owner"
    with pytest.raises(ApiError) as exc:
        kube.patch(API, "featurepipelines", "ns", "fp", {"metadata": {"finalizers": ["fti.dev/x", "y"]}})
    assert exc.value.status == 422
    kube.delete(API, "featurepipelines", "ns", "fp")  # a second delete changes nothing
    kube.patch(
        API,
        "featurepipelines",
        "ns",
        "fp",
        {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"], "finalizers": []}},
    )
    assert kube.get(API, "featurepipelines", "ns", "fp") is None
    assert kube.get("batch/v1", "jobs", "ns", "j") is None
    assert seen == [("ADDED", "fp"), ("ADDED", "j"), ("MODIFIED", "fp"), ("DELETED", "fp"), ("DELETED", "j")]


def test_garbage_collection_cascades_and_spares_other_owners_dependents() -> None:
    kube = MemKube()
    fp = kube.create(pipeline())
    other = kube.create(pipeline("other"))
    cron = kube.create(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c", "namespace": "ns", "ownerReferences": [{"uid": fp["metadata"]["uid"], "controller": True}]},
        }
    )
    kube.create(job("j1", owner=cron))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "ownerReferences": [{"uid": kube.get("batch/v1", "jobs", "ns", "j1")["metadata"]["uid"], "controller": True}],
        },
    }
    kube.create(pod)
    shared = job("shared", owner=fp)
    shared["metadata"]["ownerReferences"].append({"uid": other["metadata"]["uid"], "controller": False})
    kube.create(shared)
    kube.delete(API, "featurepipelines", "ns", "fp")
    assert kube.get("batch/v1", "cronjobs", "ns", "c") is None
    assert kube.get("batch/v1", "jobs", "ns", "j1") is None
    assert kube.get("v1", "pods", "ns", "p") is None
    assert kube.get("batch/v1", "jobs", "ns", "shared") is not None, "it still has a live owner"
    kube.delete(API, "featurepipelines", "ns", "other")
    assert kube.get("batch/v1", "jobs", "ns", "shared") is None
    kube.delete(API, "featurepipelines", "ns", "never-existed")  # not an error


def test_orphan_propagation_keeps_dependents_without_the_reference() -> None:
    kube = MemKube()
    fp = kube.create(pipeline())
    kube.create(job("j", owner=fp))
    kube.delete(API, "featurepipelines", "ns", "fp", propagation="Orphan")
    assert "ownerReferences" not in kube.get("batch/v1", "jobs", "ns", "j")["metadata"]


def test_label_selectors_and_namespaces() -> None:
    kube = MemKube()
    kube.create(job("a", labels={"app": "x", "tier": "1"}))
    kube.create(job("b", labels={"app": "x"}))
    kube.create(job("c", labels={"app": "y", "tier": "2"}))
    kube.create({**job("d", labels={"app": "x"}), "metadata": {"name": "d", "namespace": "other", "labels": {"app": "x"}}})

    def names(selector: str | None, ns: str | None = "ns") -> list[str]:
        return [o["metadata"]["name"] for o in kube.list("batch/v1", "jobs", ns, label_selector=selector)]

    assert names("app=x") == ["a", "b"]
    assert names("app==x,tier=1") == ["a"]
    assert names("tier") == ["a", "c"]
    assert names("!tier") == ["b"]
    assert names("app!=x") == ["c"]
    assert names(None) == ["a", "b", "c"]
    assert names("app=x", ns=None) == ["a", "b", "d"]
    with pytest.raises(ApiError):
        names("app in (x,y)")


def test_reads_are_copies_and_calls_are_counted_like_the_http_client() -> None:
    kube = MemKube()
    kube.create(pipeline())
    got = kube.get(API, "featurepipelines", "ns", "fp")
    got["spec"]["schedule"] = "mutated"
    assert kube.get(API, "featurepipelines", "ns", "fp")["spec"]["schedule"] == "@hourly"
    kube.patch(API, "featurepipelines", "ns", "fp", {"status": {"a": 1}}, subresource="status")
    kube.list(API, "featurepipelines", "ns")
    before = kube.writes()
    kube.get(API, "featurepipelines", "ns", "fp")
    assert kube.writes() == before
    assert kube.calls == {
        ("POST", "featurepipelines"): 1,
        ("GET", "featurepipelines"): 4,
        ("PATCH", "featurepipelines/status"): 1,
    }


def test_watchers_may_write_and_see_changes_in_order() -> None:
    kube = MemKube()
    seen: list[tuple[str, str]] = []

    def react(type_: str, obj: dict) -> None:
        seen.append((type_, obj["metadata"]["name"]))
        if obj["kind"] == "FeaturePipeline" and type_ == "ADDED":
            kube.create(job("child", owner=obj))

    unsubscribe = kube.subscribe(react)
    kube.create(pipeline())
    unsubscribe()
    kube.create(pipeline("late"))
    assert seen == [("ADDED", "fp"), ("ADDED", "child")]


def test_dump_and_load_round_trip_through_json() -> None:
    kube = MemKube()
    fp = kube.apply(pipeline(spec={"a": 1, "b": 1}, finalizers=["f"]))
    kube.patch(API, "featurepipelines", "ns", "fp", {"status": {"s": 1}}, subresource="status")
    kube.create(job("j", owner=fp))
    for i in range(3):
        kube.create(
            {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "fp.", "namespace": "ns"}, "reason": f"R{i}"}
        )
    restored = MemKube.load(json.loads(json.dumps(kube.dump())))
    assert restored.dump() == kube.dump()
    assert [e["reason"] for e in restored.list("v1", "events", "ns")] == ["R0", "R1", "R2"]
    # The resourceVersion counter and the applied fields survive: the next apply still removes b.
    out = restored.apply(pipeline(spec={"a": 1}, finalizers=["f"]))
    assert out["spec"] == {"a": 1} and int(out["metadata"]["resourceVersion"]) > 5
    restored.delete(API, "featurepipelines", "ns", "fp")
    restored.patch(API, "featurepipelines", "ns", "fp", {"metadata": {"finalizers": None}})
    assert restored.get("batch/v1", "jobs", "ns", "j") is None
    assert MemKube.load({}).dump()["objects"] == []


def test_concurrent_conditional_writes_lose_nothing() -> None:
    """Optimistic concurrency under threads: every increment lands once, resourceVersions never repeat."""
    import threading

    kube = MemKube()
    kube.create(pipeline())
    versions: list[str] = []
    kube.subscribe(lambda type_, obj: versions.append(obj["metadata"]["resourceVersion"]))

    def bump(times: int) -> None:
        for _ in range(times):
            while True:
                live = kube.get(API, "featurepipelines", "ns", "fp")
                n = (live.get("status") or {}).get("n", 0)
                try:
                    kube.patch(
                        API,
                        "featurepipelines",
                        "ns",
                        "fp",
                        {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "status": {"n": n + 1}},
                        subresource="status",
                    )
                    break
                except ApiError as exc:  # a lost race retries; anything else fails the thread
                    assert exc.conflict  # noqa: PT017 - a retry loop, not an expected error

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kube.get(API, "featurepipelines", "ns", "fp")["status"] == {"n": 200}
    assert len(versions) == 200 and versions == sorted(versions, key=int), "changes are delivered in order"
