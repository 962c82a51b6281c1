"""Rollouts on the real control plane, with the operator as users run it and real pipelines.

The operator runs as a process (`python -m fti_operator`) with a token of the chart's
ServiceAccount — so every call it makes is one the chart's RBAC grants — and is SIGKILLed
halfway through an automatic rollback. Pipeline pods are run by the test bed's pod runner
(the real feature and training code, on a small generated data set). KServe's controller
is the one stand-in: `set_isvc_status` writes the status KServe would. Each scenario
asserts the KServe object as the API server has it and the status the operator wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane.kserve import set_isvc_status
from support.rollouts import (
    GROUP,
    VERSION,
    apply,
    condition,
    custom,
    events,
    fraud_pipelines,
    get,
    kserve_child,
    online,
    served_model,
    trained,
    wait_child_model,
    wait_status,
)
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(op, k8s, pod_runner, request):
    """A namespace with both feature groups materialized and model versions 1 and 2 Validated."""
    core = client.CoreV1Api(k8s)
    ns = f"rollouts-{os.getpid()}"
    fraud_pipelines(k8s, ns)

    mv = wait_until(lambda: trained(k8s, ns, 1), timeout=900, description="model 1 trained")
    assert mv["phase"] == "Validated", (mv, pod_runner.dump(ns))
    # A second model version on the same features: a run-now token trains again.
    tp = get(k8s, ns, "trainingpipelines", "fraud-model")
    custom(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "trainingpipelines", "fraud-model", {"metadata": {"annotations": {"fti.dev/run": "second"}}}
    )
    mv2 = wait_until(lambda: trained(k8s, ns, 2), timeout=900, description="model 2 trained")
    assert mv2["phase"] == "Validated" and tp
    yield ns
    core.delete_namespace(ns)


def test_upgrade_becomes_stable_only_when_kserve_reports_it(op, k8s, models, control_plane) -> None:
    ns = models
    apply(k8s, online(ns, "up", 1))
    obj = wait_status(k8s, ns, "up", lambda st: st.get("target"), "target recorded")
    assert "stable" not in obj["status"] and condition(obj, "Ready")["status"] != "True"
    wait_child_model(k8s, ns, "up", 1)
    set_isvc_status(k8s, ns, "up", ready=True)
    obj = wait_status(k8s, ns, "up", lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable")
    assert obj["status"]["stable"]["kserveRevision"] == "up-predictor-00001"
    assert obj["status"]["stable"]["featureGroups"] and obj["status"]["stable"]["storageUri"].endswith("/fraud/1/model")
    # Upgrade: the spec names model 2. Until KServe reports it, model 1 stays stable and Ready.
    apply(k8s, online(ns, "up", 2))
    wait_child_model(k8s, ns, "up", 2)
    obj = wait_status(k8s, ns, "up", lambda st: (st.get("target") or {}).get("model") == 2, "model 2 target")
    assert obj["status"]["stable"]["model"] == 1 and condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Progressing")["reason"] == "RollingOut"
    set_isvc_status(k8s, ns, "up", ready=True)
    obj = wait_status(k8s, ns, "up", lambda st: (st.get("stable") or {}).get("model") == 2, "model 2 stable")
    assert [h["model"] for h in obj["status"]["history"]] == [1] and "target" not in obj["status"]
    assert condition(obj, "Progressing")["reason"] == "RolloutComplete"
    assert len(events(k8s, ns, "up", "RolloutComplete")) == 2

    # One-command rollback, no Git drift: the plugin sets an annotation, the spec and generation stay.
    generation = obj["metadata"]["generation"]
    # kubectl runs plugins from PATH; here the plugin runs as `kubectl-fti` would, with kubectl on PATH.
    kubectl_dir = Path(control_plane.binaries.path("kubectl")).parent
    plugin = subprocess.run(
        [
            sys.executable,
            "-c",
            "from fti_operator.rollout_cli import kubectl_plugin; kubectl_plugin()",
            "rollout",
            "undo",
            "up",
            "-n",
            ns,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": f"{kubectl_dir}:{os.environ['PATH']}", "KUBECONFIG": str(control_plane.kubeconfig)},
    )
    assert plugin.returncode == 0, plugin.stderr
    wait_child_model(k8s, ns, "up", 1)
    set_isvc_status(k8s, ns, "up", ready=True)
    obj = wait_status(k8s, ns, "up", lambda st: (st.get("stable") or {}).get("model") == 1, "rolled back to model 1")
    assert obj["metadata"]["generation"] == generation and obj["spec"]["model"]["version"] == 2
    assert obj["status"]["pinned"]["model"] == 1 and obj["status"]["stable"]["revision"] == 1


def test_readiness_deadline_rolls_back_even_across_a_sigkill(op, k8s, models) -> None:
    ns = models
    apply(k8s, online(ns, "dl", 1, readinessTimeout="25s"))
    wait_child_model(k8s, ns, "dl", 1)
    set_isvc_status(k8s, ns, "dl", ready=True)
    wait_status(k8s, ns, "dl", lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable")
    apply(k8s, online(ns, "dl", 2, readinessTimeout="25s"))
    obj = wait_status(k8s, ns, "dl", lambda st: (st.get("target") or {}).get("model") == 2, "model 2 target")
    since = obj["status"]["target"]["since"]
    wait_child_model(k8s, ns, "dl", 2)
    set_isvc_status(
        k8s,
        ns,
        "dl",
        ready=False,
        reason="RevisionFailed",
        message="readiness probe failed: skew guard: feature view 1 expected, store has 2",
    )
    op.kill()  # halfway: the target and its deadline are in status, the operator is gone
    op.start()
    obj = wait_status(k8s, ns, "dl", lambda st: st.get("failed"), "automatic rollback", timeout=120)
    assert obj["status"]["failed"]["model"] == 2 and obj["status"]["failed"]["since"] == since, "the deadline moved"
    assert "skew guard" in obj["status"]["failed"]["message"]
    assert obj["status"]["stable"]["model"] == 1 and condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Progressing")["reason"] == "RolledBack"
    child = wait_child_model(k8s, ns, "dl", 1)
    assert "canaryTrafficPercent" not in child["spec"]["predictor"]
    assert len(events(k8s, ns, "dl", "RolledBack")) == 1
    # Nothing changes while the spec stays: the failed pair is not tried again.
    rv = get(k8s, ns, "inferenceservices", "dl")["metadata"]["resourceVersion"]
    set_isvc_status(k8s, ns, "dl", ready=True)  # KServe reports the stable pair's revision ready again
    wait_status(k8s, ns, "dl", lambda st: condition({"status": st}, "Serving").get("status") == "True", "serving")
    assert served_model(kserve_child(k8s, ns, "dl")) == 1 and rv


def test_canary_then_promote(op, k8s, models) -> None:
    ns = models
    body = online(ns, "cn", 1)
    body["spec"]["online"]["canary"] = {"trafficPercent": 10}
    apply(k8s, body)
    wait_child_model(k8s, ns, "cn", 1)
    set_isvc_status(k8s, ns, "cn", ready=True)
    wait_status(k8s, ns, "cn", lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable (no canary first)")
    body["spec"]["model"]["version"] = 2
    apply(k8s, body)
    child = wait_child_model(k8s, ns, "cn", 2)
    assert child["spec"]["predictor"]["canaryTrafficPercent"] == 10
    obj = get(k8s, ns, "inferenceservices", "cn")
    assert condition(obj, "CanaryReady").get("status") in ("Unknown", None) or "traffic" not in obj["status"]["target"]
    latest, prev = "cn-predictor-00002", "cn-predictor-00001"
    set_isvc_status(
        k8s,
        ns,
        "cn",
        ready=True,
        traffic=[
            {"revisionName": latest, "percent": 10, "latestRevision": True, "tag": "latest"},
            {"revisionName": prev, "percent": 90, "latestRevision": False, "tag": "prev"},
        ],
    )
    obj = wait_status(k8s, ns, "cn", lambda st: (st.get("target") or {}).get("traffic") == 10, "canary at 10 %")
    assert obj["status"]["stable"]["traffic"] == 90 and condition(obj, "CanaryReady")["status"] == "True"
    assert condition(obj, "Progressing")["reason"] == "CanaryInProgress"
    custom(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "inferenceservices", "cn", {"metadata": {"annotations": {"fti.dev/promote": "p1"}}}
    )
    obj = wait_status(k8s, ns, "cn", lambda st: (st.get("stable") or {}).get("model") == 2, "promoted")
    assert obj["status"]["handled"]["promote"] == "p1" and obj["status"]["stable"]["traffic"] == 100


def test_training_pipeline_deleted_while_serving_and_feature_deletion_held(op, k8s, models) -> None:
    ns = models
    apply(k8s, online(ns, "keep", 1))
    wait_child_model(k8s, ns, "keep", 1)
    set_isvc_status(k8s, ns, "keep", ready=True)
    wait_status(k8s, ns, "keep", lambda st: st.get("stable"), "stable")
    custom(k8s).delete_namespaced_custom_object(GROUP, VERSION, ns, "trainingpipelines", "fraud-model")
    # Still served as it was, and its feature versions still protected by the revisions' own snapshots.
    wait_until(
        lambda: (
            "fti.dev/feature-versions-in-use"
            in (get(k8s, ns, "featurepipelines", "card-profiles")["metadata"].get("finalizers") or [])
        ),
        timeout=30,
        description="finalizer",
    )
    custom(k8s).delete_namespaced_custom_object(GROUP, VERSION, ns, "featurepipelines", "card-profiles")

    def deleting():
        obj = get(k8s, ns, "featurepipelines", "card-profiles")
        return obj if obj["metadata"].get("deletionTimestamp") else None

    wait_until(deleting, timeout=30, description="deletion requested")
    fp = wait_until(
        lambda: (
            (o := get(k8s, ns, "featurepipelines", "card-profiles"))
            and condition(o, "Ready").get("reason") == "DeletionBlocked"
            and o
        ),
        timeout=30,
        description="DeletionBlocked",
    )
    assert f"{ns}/keep" in condition(fp, "Ready")["message"] and events(k8s, ns, "card-profiles", "DeletionBlocked")
    assert served_model(kserve_child(k8s, ns, "keep")) == 1
    for name in ("up", "dl", "cn", "keep"):
        try:
            custom(k8s).delete_namespaced_custom_object(GROUP, VERSION, ns, "inferenceservices", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def gone() -> bool:
        try:
            get(k8s, ns, "featurepipelines", "card-profiles")
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_until(gone, timeout=60, description="the FeaturePipeline goes once nothing needs its versions")
