"""The local KServe stand-in writes KServe's status shapes (those of tests/controlplane/kserve.py)."""

from __future__ import annotations

import copy

import pytest

from fti_operator.local.kserve import API_VERSION, PLURAL, LocalKServe, ServerFailed, replace_patch
from fti_operator.local.memkube import MemKube


class Servers:
    """Fake start_server/stop_server: each start gets the next port; `fail` makes the next start raise."""

    def __init__(self) -> None:
        self.port = 9000
        self.started: list[tuple[str, dict]] = []
        self.running: set[str] = set()
        self.fail: str | None = None

    def start(self, isvc: dict, component: str, container: dict) -> str:
        if self.fail:
            raise ServerFailed(self.fail)
        self.port += 1
        url = f"http://127.0.0.1:{self.port}"
        self.started.append((component, container))
        self.running.add(url)
        return url

    def stop(self, url: str) -> None:
        self.running.remove(url)


def isvc(predictor: dict | None = None, transformer: dict | None = None) -> dict:
    spec = {"predictor": predictor or {"minReplicas": 1, "containers": [{"name": "kserve-container", "image": "i:1"}]}}
    if transformer:
        spec["transformer"] = transformer
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": {"name": "fraud", "namespace": "ns"}, "spec": spec}


@pytest.fixture
def env():
    kube, servers = MemKube(), Servers()
    return kube, servers, LocalKServe(kube, servers.start, servers.stop)


def status(kube: MemKube) -> dict:
    return kube.get(API_VERSION, PLURAL, "ns", "fraud")["status"]


def predictor_image(image: str, canary: int | None = None) -> dict:
    p: dict = {"minReplicas": 1, "containers": [{"name": "kserve-container", "image": image}]}
    if canary is not None:
        p["canaryTrafficPercent"] = canary
    return p


def test_replace_patch_turns_old_into_new() -> None:
    from fti_operator.local.objects import merge_patch

    old = {"a": 1, "b": {"c": 1, "d": 2}, "e": [1]}
    new = {"b": {"c": 1}, "e": [2], "f": {"g": 1}}
    assert merge_patch(old, replace_patch(old, new)) == new


def test_a_ready_service_gets_kserves_status(env) -> None:
    kube, servers, kserve = env
    kube.create(isvc())
    assert kserve.step() == 1
    st = status(kube)
    assert [(c["type"], c["status"]) for c in st["conditions"]] == [
        ("IngressReady", "True"),
        ("PredictorReady", "True"),
        ("Ready", "True"),
    ]
    assert st["observedGeneration"] == 1 and st["deploymentMode"] == "Serverless"
    assert st["url"] == "http://127.0.0.1:9001" and st["address"] == {"url": "http://127.0.0.1:9001"}
    assert st["components"]["predictor"] == {
        "latestCreatedRevision": "fraud-predictor-00001",
        "latestReadyRevision": "fraud-predictor-00001",
        "latestRolledoutRevision": "fraud-predictor-00001",
        "url": "http://127.0.0.1:9001",
        "address": {"url": "http://127.0.0.1:9001"},
        "traffic": [{"tag": "latest", "revisionName": "fraud-predictor-00001", "latestRevision": True, "percent": 100}],
    }
    assert st["modelStatus"]["transitionStatus"] == "UpToDate"
    assert servers.started == [("predictor", {"name": "kserve-container", "image": "i:1"})]
    writes = kube.writes()
    assert kserve.step() == 0 and kube.writes() == writes, "nothing changed: nothing started, nothing written"
    assert kserve.servers() == {"ns/fraud": {"fraud-predictor-00001": {"predictor": "http://127.0.0.1:9001"}}}


def test_a_transformer_is_pointed_at_its_predictor(env) -> None:
    kube, servers, kserve = env
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m/1"}
    kube.create(
        isvc(
            {"minReplicas": 1, "model": model},
            {"minReplicas": 1, "containers": [{"name": "kserve-container", "args": ["--role", "transformer"]}]},
        )
    )
    kserve.step()
    assert servers.started == [
        ("predictor", model),
        (
            "transformer",
            {
                "name": "kserve-container",
                "args": ["--role", "transformer", "--model_name", "fraud", "--predictor_host", "127.0.0.1:9001"],
            },
        ),
    ]
    st = status(kube)
    assert [c["type"] for c in st["conditions"]] == ["IngressReady", "PredictorReady", "Ready", "TransformerReady"]
    assert st["url"] == "http://127.0.0.1:9002", "the transformer is the entry point"
    assert st["components"]["transformer"]["latestRolledoutRevision"] == "fraud-transformer-00001"
    assert st["components"]["transformer"]["traffic"][0]["revisionName"] == "fraud-transformer-00001"


def test_a_spec_change_is_a_new_revision_and_the_old_server_stops(env) -> None:
    kube, servers, kserve = env
    kube.create(isvc())
    kserve.step()
    kube.patch(API_VERSION, PLURAL, "ns", "fraud", {"spec": {"predictor": predictor_image("i:2")}})
    kserve.step()
    predictor = status(kube)["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "fraud-predictor-00002"
    assert predictor["previousRolledoutRevision"] == "fraud-predictor-00001"
    assert servers.running == {"http://127.0.0.1:9002"}
    assert status(kube)["observedGeneration"] == 2


def test_a_canary_splits_traffic_then_rolls_out_without_a_new_revision(env) -> None:
    kube, servers, kserve = env
    kube.create(isvc())
    kserve.step()
    kube.patch(API_VERSION, PLURAL, "ns", "fraud", {"spec": {"predictor": predictor_image("i:2", canary=20)}})
    kserve.step()
    predictor = status(kube)["components"]["predictor"]
    assert predictor["traffic"] == [
        {"tag": "latest", "revisionName": "fraud-predictor-00002", "latestRevision": True, "percent": 20},
        {"tag": "prev", "revisionName": "fraud-predictor-00001", "latestRevision": False, "percent": 80},
    ]
    assert predictor["latestRolledoutRevision"] == "fraud-predictor-00001"
    assert status(kube)["url"] == "http://127.0.0.1:9001", "most traffic still goes to the rolled-out revision"
    assert servers.running == {"http://127.0.0.1:9001", "http://127.0.0.1:9002"}

    kube.patch(API_VERSION, PLURAL, "ns", "fraud", {"spec": {"predictor": {"canaryTrafficPercent": None}}})
    kserve.step()
    predictor = status(kube)["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == "fraud-predictor-00002", "traffic alone makes no revision"
    assert predictor["latestRolledoutRevision"] == "fraud-predictor-00002"
    assert predictor["previousRolledoutRevision"] == "fraud-predictor-00001"
    assert predictor["traffic"] == [
        {"tag": "latest", "revisionName": "fraud-predictor-00002", "latestRevision": True, "percent": 100}
    ]
    assert servers.running == {"http://127.0.0.1:9002"}


def test_a_failed_revision_leaves_the_last_good_one_serving(env) -> None:
    kube, servers, kserve = env
    kube.create(isvc())
    kserve.step()
    first = copy.deepcopy(status(kube))
    servers.fail = "model failed to load"
    kube.patch(API_VERSION, PLURAL, "ns", "fraud", {"spec": {"predictor": predictor_image("i:2")}})
    kserve.step()
    st = status(kube)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RevisionFailed")
    assert "fraud-predictor-00002" in ready["message"] and "model failed to load" in ready["message"]
    predictor = st["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == "fraud-predictor-00002"
    assert predictor["latestReadyRevision"] == "fraud-predictor-00001"
    assert predictor["traffic"] == first["components"]["predictor"]["traffic"]
    assert st["url"] == first["url"] and servers.running == {first["url"]}
    assert st["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    writes = kube.writes()
    assert kserve.step() == 0 and kube.writes() == writes, "a failed revision is not retried until the spec changes"


def test_servers_stop_when_the_service_goes(env) -> None:
    kube, servers, kserve = env
    kube.create(isvc())
    kserve.step()
    kube.delete(API_VERSION, PLURAL, "ns", "fraud")
    assert kserve.step() == 1
    assert servers.running == set() and kserve.servers() == {}


def test_a_new_process_restarts_the_reported_revision(env) -> None:
    kube, servers, kserve = env
    kube.create(isvc())
    kserve.step()
    servers.running.clear()  # the previous `fti local` process ended, its servers with it
    again = LocalKServe(kube, servers.start, servers.stop)
    again.step()
    predictor = status(kube)["components"]["predictor"]
    assert predictor["latestCreatedRevision"] == "fraud-predictor-00001"
    assert status(kube)["url"] == "http://127.0.0.1:9002" and servers.running == {"http://127.0.0.1:9002"}
    # A spec changed while no process ran is the next revision.
    kube.patch(API_VERSION, PLURAL, "ns", "fraud", {"spec": {"predictor": predictor_image("i:2")}})
    third = LocalKServe(kube, servers.start, servers.stop)
    third.step()
    assert status(kube)["components"]["predictor"]["latestRolledoutRevision"] == "fraud-predictor-00002"


def test_raw_deployment_mode_does_not_split_traffic(env) -> None:
    kube, servers, kserve = env
    raw = isvc()
    raw["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    kube.create(raw)
    kserve.step()
    assert status(kube)["deploymentMode"] == "RawDeployment"
    kube.patch(API_VERSION, PLURAL, "ns", "fraud", {"spec": {"predictor": predictor_image("i:2", canary=20)}})
    kserve.step()
    predictor = status(kube)["components"]["predictor"]
    # No Knative route, no traffic table: KServe reports traffic[] only in Serverless mode.
    assert "traffic" not in predictor and predictor["latestReadyRevision"] == "fraud-predictor-00002"
    assert servers.running == {"http://127.0.0.1:9002"}
