"""Proof that the test control plane is a real Kubernetes API server:
the pinned release, PodSecurity admission, CRDs with a status subresource (the
KServe InferenceService) and Helm against it. No operator involved.
"""

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane import kserve
from controlplane.binaries import pinned_versions
from support.wait import wait_until

SHELL = "fti.dev/test/shell"


def test_version_reports_the_pinned_release(control_plane):
    want = pinned_versions()["K8S_VERSION"]
    assert control_plane.get("/version")["gitVersion"] == want
    kubectl = json.loads(control_plane.kubectl("version", "--output=json").stdout)
    assert kubectl["serverVersion"]["gitVersion"] == want
    assert kubectl["clientVersion"]["gitVersion"] == want


def _pod(name: str, security_context: dict | None = None, container_security: dict | None = None) -> dict:
    container = {"name": "main", "image": SHELL, "args": ["echo compliant"]}
    if container_security:
        container["securityContext"] = container_security
    spec = {"restartPolicy": "Never", "containers": [container]}
    if security_context:
        spec["securityContext"] = security_context
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.mark.namespace_labels({"pod-security.kubernetes.io/enforce": "restricted"})
def test_restricted_namespace_rejects_root_pod_and_admits_compliant_one(k8s, namespace, pod_runner):
    core = client.CoreV1Api(k8s)
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_pod(namespace, _pod("root"))
    assert denied.value.status == 403
    body = json.loads(denied.value.body)
    assert 'violates PodSecurity "restricted:latest"' in body["message"]
    assert "runAsNonRoot" in body["message"]

    compliant = _pod(
        "compliant",
        security_context={"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        container_security={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    )
    core.create_namespaced_pod(namespace, compliant)
    pod = pod_runner.wait_for_phase(namespace, "compliant")
    assert pod.status.phase == "Succeeded"
    assert "compliant" in pod_runner.logs(namespace, "compliant")


def test_kserve_crd_accepts_isvc_and_status_helper(k8s, namespace, control_plane):
    custom = client.CustomObjectsApi(k8s)
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "fraud"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///store/models/fraud/1/model"},
                "minReplicas": 1,
            },
            "transformer": {"containers": [{"name": "transformer", "image": "fti-inference:dev"}]},
        },
    }
    custom.create_namespaced_custom_object(kserve.GROUP, kserve.VERSION, namespace, kserve.PLURAL, isvc)
    # The schema is enforced: a canary above 100 % is rejected by the API server.
    bad = {**isvc, "metadata": {"name": "bad"}, "spec": {"predictor": {**isvc["spec"]["predictor"], "canaryTrafficPercent": 150}}}
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(kserve.GROUP, kserve.VERSION, namespace, kserve.PLURAL, bad)
    assert invalid.value.status == 422

    first = kserve.set_isvc_status(k8s, namespace, "fraud", ready=True)
    status = first["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"IngressReady": "True", "PredictorReady": "True", "TransformerReady": "True", "Ready": "True"}
    assert status["observedGeneration"] == first["metadata"]["generation"]
    assert status["url"] == f"http://fraud.{namespace}.example.com"
    predictor = status["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "fraud-predictor-00001"
    assert predictor["traffic"] == [
        {"tag": "latest", "revisionName": "fraud-predictor-00001", "latestRevision": True, "percent": 100}
    ]

    # A canary: 20 % to a new revision, 80 % to the previous one; then roll out.
    canary = [
        {"tag": "latest", "revisionName": "fraud-predictor-00002", "latestRevision": True, "percent": 20},
        {"tag": "prev", "revisionName": "fraud-predictor-00001", "latestRevision": False, "percent": 80},
    ]
    kserve.set_isvc_status(k8s, namespace, "fraud", latest_revision="fraud-predictor-00002", traffic=canary)
    columns = control_plane.kubectl("get", "isvc", "fraud", "-n", namespace, "--no-headers").stdout.split()
    assert columns[1:5] == [f"http://fraud.{namespace}.example.com", "True", "80", "20"]

    rolled = kserve.set_isvc_status(k8s, namespace, "fraud", latest_revision="fraud-predictor-00002")
    predictor = rolled["status"]["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "fraud-predictor-00002"
    assert predictor["previousRolledoutRevision"] == "fraud-predictor-00001"

    failed = kserve.set_isvc_status(
        k8s,
        namespace,
        "fraud",
        ready=False,
        latest_revision="fraud-predictor-00003",
        reason="RevisionFailed",
        message="model failed to load",
    )
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RevisionFailed")
    # The last good revision keeps serving, as in KServe.
    assert failed["status"]["components"]["predictor"]["latestReadyRevision"] == "fraud-predictor-00002"


def test_helm_template_install_uninstall(control_plane, namespace, k8s):
    from controlplane.binaries import HERE

    chart = HERE / "testdata" / "tiny-chart"
    rendered = control_plane.helm("template", "demo", str(chart), "--set", "greeting=hi").stdout
    assert "name: demo-config" in rendered and 'greeting: "hi"' in rendered

    control_plane.helm("install", "demo", str(chart), "--namespace", namespace, "--wait", "--timeout", "60s")
    core = client.CoreV1Api(k8s)
    config = core.read_namespaced_config_map("demo-config", namespace)
    assert config.data["greeting"] == "hello"
    # Installed (not templated) charts see the real server version.
    assert config.data["kubeVersion"] == pinned_versions()["K8S_VERSION"]
    releases = json.loads(control_plane.helm("list", "--namespace", namespace, "--output", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]

    control_plane.helm("uninstall", "demo", "--namespace", namespace, "--wait")

    def gone():
        try:
            core.read_namespaced_config_map("demo-config", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=30, description="the release's ConfigMap to be deleted")
    assert json.loads(control_plane.helm("list", "--namespace", namespace, "--output", "json").stdout) == []
