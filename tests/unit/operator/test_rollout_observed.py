"""Table tests of what is read back from KServe: routed revisions (retention follows traffic),
the deployment mode and its cluster default, the Canary condition, and adopting a live child."""

from __future__ import annotations

import json

import pytest

from fti_operator.reconcile.canary import canary_condition
from fti_operator.reconcile.kserve import KServeDefaults, default_mode_of, mode_from, predictor_traffic, served_by
from fti_operator.reconcile.kube import ApiError
from fti_operator.versions import needed_by_services, revision_feature_groups
from fti_operator.versions.adoption import adopt
from fti_operator.versions.rollout import Observed, Plan, Want
from fti_operator.versions.traffic import routed_revisions

ISO0 = "2026-12-01T10:00:00Z"


def rev(revision: int, model: int, fv: int, kserve: str | None = None, **extra) -> dict:
    out = {
        "revision": revision,
        "model": model,
        "featureView": fv,
        "featureGroups": [{"name": "g", "version": fv}],
        "storageUri": f"file:///s/models/m/{model}/model",
    }
    if kserve:
        out["kserveRevision"] = kserve
    return {**out, **extra}


def t(name: str, percent: int | None, latest: bool = False, tag: str | None = None) -> dict:
    out: dict = {"revisionName": name, "latestRevision": latest}
    if percent is not None:
        out["percent"] = percent
    if tag:
        out["tag"] = tag
    return out


OLD = rev(1, 1, 1, "s-predictor-00001", since=ISO0, traffic=90)
NEW = rev(2, 2, 2, "s-predictor-00002", since=ISO0, traffic=10)


@pytest.mark.parametrize(
    "traffic, known, expected",
    [
        # A canary: both pairs take requests, each with its share and its snapshot.
        ([t("s-predictor-00002", 10, True, "latest"), t("s-predictor-00001", 90, tag="prev")], [NEW, OLD], {2: 10, 1: 90}),
        # All traffic moved: only the new pair is routed.
        ([t("s-predictor-00002", 100, True)], [NEW, OLD], {2: 100}),
        # A tag kept at 0 % (its own URL only) and an entry without a percentage route no requests.
        ([t("s-predictor-00002", 100, True), t("s-predictor-00001", 0, tag="prev")], [NEW, OLD], {2: 100}),
        ([t("s-predictor-00001", None)], [OLD], {}),
        # A KServe revision no revision of ours records (never reported ready to us): left out.
        ([t("s-predictor-00003", 100, True)], [NEW, OLD], {}),
        # Known only from an earlier routed entry (the revision left status meanwhile).
        ([t("s-predictor-00001", 100)], [None, {**OLD, "traffic": 100}], {1: 100}),
        # Nothing reported (RawDeployment has no traffic table).
        ([], [NEW, OLD], {}),
    ],
    ids=["canary", "moved", "zero-tag", "no-percent", "unknown", "from-routed", "none"],
)
def test_routed_revisions(traffic, known, expected) -> None:
    routed = routed_revisions(traffic, known)
    assert {r["revision"]: r["traffic"] for r in routed} == expected
    assert [r["revision"] for r in routed] == sorted(expected, reverse=True)
    for r in routed:
        # Self-contained: the pair's snapshot, without the rollout bookkeeping of where it came from.
        assert r["featureGroups"] and r["storageUri"] and r["kserveRevision"] and "since" not in r


def test_a_routed_pair_keeps_its_feature_versions_after_it_left_every_other_field() -> None:
    # revisionHistoryLimit 0: revision 1 is neither stable nor in history, but KServe still routes to it.
    status = {"stable": rev(2, 2, 2, "s-predictor-00002"), "history": [], "routed": [{**OLD, "traffic": 5}]}
    assert revision_feature_groups(status) == {("g", 1), ("g", 2)}
    assert needed_by_services([("fraud/s", status)])[("g", 1)] == ["fraud/s"]
    assert revision_feature_groups({**status, "routed": []}) == {("g", 2)}


def test_predictor_traffic_reads_kserve_status() -> None:
    child = {"status": {"components": {"predictor": {"traffic": [t("a", 100, True)]}}}}
    assert predictor_traffic(child) == [t("a", 100, True)]
    assert predictor_traffic(None) == [] and predictor_traffic({"status": {"components": {}}}) == []


@pytest.mark.parametrize(
    "ours, theirs, reported, expected",
    [
        (None, None, None, None),
        ("RawDeployment", None, None, "RawDeployment"),
        (None, "RawDeployment", "Serverless", "RawDeployment"),
        (None, None, "Serverless", "Serverless"),
        ("Serverless", None, "RawDeployment", "RawDeployment"),  # what KServe reports it does wins
        (None, None, "Standard", "Standard"),
    ],
)
def test_mode_from_annotations_and_status(ours, theirs, reported, expected) -> None:
    child = {"metadata": {"annotations": {"serving.kserve.io/deploymentMode": theirs} if theirs else {}}, "status": {}}
    if reported:
        child["status"]["deploymentMode"] = reported
    spec = {"serving.kserve.io/deploymentMode": ours} if ours else {}
    assert mode_from(spec, child) == expected


def config_map(deploy: object) -> dict:
    return {"data": {"deploy": deploy if isinstance(deploy, str) else json.dumps(deploy)}}


@pytest.mark.parametrize(
    "cm, expected",
    [
        (config_map({"defaultDeploymentMode": "RawDeployment"}), "RawDeployment"),
        (config_map({"defaultDeploymentMode": "Serverless"}), "Serverless"),
        (config_map({}), None),
        (config_map("not json"), None),
        ({"data": {}}, None),
        (None, None),
    ],
)
def test_default_mode_of_the_config_map(cm, expected) -> None:
    assert default_mode_of(cm) == expected


class FakeKube:
    """Only `get`, counting calls: the ConfigMap read is the one call under test."""

    def __init__(self, answer) -> None:
        self.answer, self.calls = answer, 0

    def get(self, api_version, plural, namespace, name):
        assert (api_version, plural, name) == ("v1", "configmaps", "inferenceservice-config")
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_cluster_default_is_cached_and_a_refusal_means_serverless_logged_once(caplog) -> None:
    clock = [0.0]
    defaults = KServeDefaults(ttl=60, now=lambda: clock[0])
    kube = FakeKube(config_map({"defaultDeploymentMode": "RawDeployment"}))
    assert defaults.mode(kube, "kserve") == "RawDeployment"
    assert defaults.mode(kube, "kserve") == "RawDeployment" and kube.calls == 1
    clock[0] = 61
    kube.answer = ApiError(403, "Forbidden")
    caplog.set_level("INFO", logger="fti_operator.reconcile.kserve")
    assert defaults.mode(kube, "kserve") == "Serverless" and kube.calls == 2
    clock[0] = 122
    assert defaults.mode(kube, "kserve") == "Serverless" and kube.calls == 3
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    kube.answer = ApiError(500, "Internal")
    clock[0] = 200
    with pytest.raises(ApiError):  # a server error is not an answer: the reconcile is retried
        defaults.mode(kube, "kserve")
    missing = KServeDefaults(now=lambda: 0.0)
    assert missing.mode(FakeKube(None), "kserve") == "Serverless"


def plan(target=None, canary=None, progressing=(True, "RolloutComplete", "")) -> Plan:
    return Plan(rev(1, 1, 1), target, None, None, [], {}, None, target, canary, progressing)


@pytest.mark.parametrize(
    "want, the_plan, expected",
    [
        (Want(None), plan(), None),
        (Want(None, canary_percent=10), plan(), ("False", "NoCanaryInProgress")),
        (Want(None, canary_percent=10), plan(rev(2, 2, 2, traffic=10), 10), ("True", "CanaryInProgress")),
        (
            Want(None, canary_percent=10, traffic_split=False),
            plan(progressing=(False, "TrafficSplitUnsupported", "held")),
            ("False", "TrafficSplitUnsupported"),
        ),
        (
            Want(None, canary_percent=10, traffic_split=False, canary_fallback="rollOut"),
            plan(rev(2, 2, 2), None, (True, "RollingOut", "")),
            ("False", "TrafficSplitUnsupported"),
        ),
    ],
    ids=["no-canary-asked", "none-running", "running", "held", "rolled-out-instead"],
)
def test_canary_condition(want, the_plan, expected) -> None:
    conds = canary_condition(want, the_plan)
    assert (None if not conds else (conds[0]["status"], conds[0]["reason"])) == expected
    assert all(c["type"] == "Canary" for c in conds)


SERVED = rev(3, 2, 2)


@pytest.mark.parametrize(
    "status, observed, role",
    [
        # Status lost entirely; KServe reports the child's revision ready with all the traffic.
        ({}, Observed(3, True, "", "s-predictor-00007", 100), "stable"),
        # Not ready yet: it is the target, its deadline counted from the child's last write.
        ({}, Observed(3, None, "not ready"), "target"),
        # Ready, but KServe routes only a canary share to it: still the target, with that share.
        ({"stable": rev(1, 1, 1, "s-predictor-00001")}, Observed(3, True, "", "s-predictor-00002", 10), "target"),
        # The status knows a stable pair but not the newer one the child serves.
        ({"stable": rev(1, 1, 1, "s-predictor-00001")}, Observed(3, True, "", "s-predictor-00002", 100), "stable"),
    ],
    ids=["lost-ready", "lost-not-ready", "canary", "newer-than-stable"],
)
def test_a_child_the_status_does_not_know_is_adopted(status, observed, role) -> None:
    out, event = adopt(status, SERVED, observed, ISO0)
    entry = out[role]
    assert (entry["revision"], entry["model"], entry["since"]) == (3, 2, ISO0)
    assert event is not None and event[1] == "Adopted" and f"adopted as {role}" in event[2]
    if role == "stable":
        assert entry["kserveRevision"] == observed.kserve_revision and entry["traffic"] == 100
        if status.get("stable"):
            assert out["history"][0]["revision"] == 1, "the stable it replaces stays in history"
    if observed.latest_traffic == 10:
        assert entry["traffic"] == 10 and out["stable"]["revision"] == 1


@pytest.mark.parametrize(
    "status",
    [
        {"target": rev(4, 3, 3, since=ISO0)},  # a rollout in progress drives the child
        {"stable": rev(3, 2, 2)},  # known
        {"failed": rev(3, 2, 2, reason="ProgressDeadlineExceeded")},  # rolled back: rendered again, not adopted
        {"stable": rev(1, 1, 1), "history": [rev(3, 2, 2)]},
        {"stable": rev(5, 2, 2)},  # the same pair under another number
    ],
    ids=["target", "stable", "failed", "history", "same-pair"],
)
def test_nothing_is_adopted_that_the_status_knows(status) -> None:
    out, event = adopt(status, SERVED, Observed(3, True, "", "x", 100), ISO0)
    assert out == status and event is None


def test_served_by_reads_the_childs_annotation_and_labels() -> None:
    child = {
        "metadata": {
            "annotations": {"fti.dev/revision": "3"},
            "labels": {"fti.dev/model-version": "2", "fti.dev/feature-view-version": "2"},
        },
        "spec": {"predictor": {"model": {"storageUri": "s3://b/m/2"}}},
    }
    served = served_by(child)
    assert served is not None and (served.revision, served.model, served.feature_view, served.storage_uri) == (
        3,
        2,
        2,
        "s3://b/m/2",
    )
    assert served_by({"metadata": {"annotations": {"fti.dev/revision": "3"}}}) is None
    assert served_by(None) is None


def test_an_adopted_target_keeps_the_time_the_api_server_recorded_for_our_last_write() -> None:
    from fti_operator.reconcile.kserve import written_at

    child = {
        "metadata": {
            "managedFields": [
                {"manager": "kserve-controller", "operation": "Update", "time": "2026-12-01T11:00:00Z"},
                {"manager": "fti-operator", "operation": "Apply", "time": "2026-12-01T10:00:00Z"},
            ]
        }
    }
    assert written_at(child) == "2026-12-01T10:00:00Z"
    assert written_at({"metadata": {}}) is None and written_at(None) is None
