"""Retention follows traffic, on the real control plane (docs/rollouts.md, "Feature versions
follow the revisions").

With `revisionHistoryLimit: 0` the old pair leaves status as soon as the new one is stable,
but KServe may still route requests to it. The operator runs as a process with the chart's
ServiceAccount; the pipelines run for real on the small data set (the test bed's pod
runner): model 1 reads card_profiles v1, model 2 reads card_profiles v2. KServe's status,
including its traffic table, is written by `set_isvc_status` as KServe would. The old
pair's feature-group version stays Retained while a share of requests goes to it, and is
retired once none does.
"""

from __future__ import annotations

import os

import pytest
from kubernetes import client

from controlplane.kserve import set_isvc_status
from support.examples import example
from support.rollouts import apply, fraud_namespace, get, online, wait_child_model, wait_status
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROFILES = ("card-profiles", "card_profiles")  # (FeaturePipeline name, feature group)


def fg_version(k8s, ns: str, version: int) -> dict:
    st = get(k8s, ns, "featurepipelines", PROFILES[0]).get("status") or {}
    return next((v for v in st.get("versions") or [] if v["version"] == version), {})


def validated(k8s, ns: str, version: int) -> dict | None:
    st = get(k8s, ns, "trainingpipelines", "fraud-model").get("status") or {}
    return next((m for m in st.get("modelVersions") or [] if m["version"] == version and m["phase"] != "Training"), None)


@pytest.fixture(scope="module")
def two_feature_versions(op, k8s, pod_runner):
    """Model 1 trained on card_profiles v1, model 2 on card_profiles v2, both Validated."""
    core = client.CoreV1Api(k8s)
    ns = fraud_namespace(k8s, f"traffic-{os.getpid()}")
    training = example("training-pipeline.yaml", ns)
    apply(k8s, training)
    mv = wait_until(lambda: validated(k8s, ns, 1), timeout=900, description="model 1 trained")
    assert mv["phase"] == "Validated", (mv, pod_runner.dump(ns))
    # card_profiles moves to v2 (materialized by its own run), and the model is trained on it.
    profiles = example("feature-pipeline-profiles.yaml", ns, **{"fti.dev/run": "r2"})
    profiles["spec"]["featureGroup"]["version"] = 2
    apply(k8s, profiles)
    run = wait_until(
        lambda: fg_version(k8s, ns, 2).get("lastRun") or None, timeout=600, description="card_profiles v2 materialized"
    )
    assert run["succeeded"], (run, pod_runner.dump(ns))
    view = training["spec"]["featureView"]
    view["version"] = 2
    for part in (view["label"], *view["features"]):
        if part["featureGroup"]["name"] == PROFILES[1]:
            part["featureGroup"]["version"] = 2
    apply(k8s, training)
    mv2 = wait_until(lambda: validated(k8s, ns, 2), timeout=900, description="model 2 trained on card_profiles v2")
    assert mv2["phase"] == "Validated", (mv2, pod_runner.dump(ns))
    assert {"name": PROFILES[1], "version": 2} in mv2["featureGroups"]
    yield ns
    core.delete_namespace(ns)


def test_the_old_pairs_features_stay_while_kserve_still_routes_to_it(op, k8s, two_feature_versions) -> None:
    ns, name = two_feature_versions, "tr"
    apply(k8s, online(ns, name, 1, revisionHistoryLimit=0))
    wait_child_model(k8s, ns, name, 1)
    set_isvc_status(k8s, ns, name, ready=True)
    wait_status(k8s, ns, name, lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable")
    apply(k8s, online(ns, name, 2, revisionHistoryLimit=0))
    wait_child_model(k8s, ns, name, 2)
    # KServe has revision 2 ready, but Knative still sends a share of the requests to revision 1.
    latest, prev = f"{name}-predictor-00002", f"{name}-predictor-00001"
    set_isvc_status(
        k8s,
        ns,
        name,
        ready=True,
        traffic=[
            {"revisionName": latest, "percent": 95, "latestRevision": True, "tag": "latest"},
            {"revisionName": prev, "percent": 5, "latestRevision": False, "tag": "prev"},
        ],
    )
    obj = wait_status(
        k8s,
        ns,
        name,
        lambda st: (st.get("stable") or {}).get("model") == 2 and len(st.get("routed") or []) == 2,
        "model 2 stable while revision 1 is still routed",
    )
    assert obj["status"]["history"] == [], "revisionHistoryLimit 0: only the traffic holds revision 1"
    old = next(r for r in obj["status"]["routed"] if r["revision"] == 1)
    assert old["traffic"] == 5 and old["kserveRevision"] == prev
    assert {"name": PROFILES[1], "version": 1} in old["featureGroups"]
    held = wait_until(
        lambda: v if (v := fg_version(k8s, ns, 1)).get("state") == "Retained" else None,
        timeout=60,
        description="card_profiles v1 retained for the routed pair",
    )
    assert held["neededBy"] == [f"{ns}/{name}"]
    fp = get(k8s, ns, "featurepipelines", PROFILES[0])
    assert "fti.dev/feature-versions-in-use" in fp["metadata"]["finalizers"]
    # Every request goes to revision 2: nothing reads card_profiles v1 any more.
    set_isvc_status(k8s, ns, name, ready=True)
    wait_status(k8s, ns, name, lambda st: [r["revision"] for r in st.get("routed") or []] == [2], "only revision 2 routed")
    retired = wait_until(
        lambda: v if (v := fg_version(k8s, ns, 1)).get("state") == "Retired" else None,
        timeout=60,
        description="card_profiles v1 retired once no request goes to it",
    )
    assert not retired.get("neededBy")
