"""The KServe stand-in (tests/node/kserve_standin.py — not KServe) on the real node: an
InferenceService becomes a Deployment + Service per component, and its status follows
the real pods' readiness probes, as KServe's RawDeployment mode would report it."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from controlplane.fixtures import _report
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def ns(node):
    name = "kserve-" + uuid.uuid4().hex[:6]
    node.plane.kubectl("create", "namespace", name)
    wait_until(
        lambda: node.plane.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        description=f"ServiceAccount {name}/default",
    )
    yield name
    node.plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _isvc(name: str, image: str, ready_path: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-m", "http.server", "8080", "--directory", "/etc"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": ready_path, "port": 8080}, "periodSeconds": 1},
                    }
                ],
            }
        },
    }


def _status(node, ns: str, name: str) -> dict:
    out = node.plane.kubectl("get", "inferenceservices.serving.kserve.io", name, "-n", ns, "-o", "json")
    return json.loads(out.stdout).get("status") or {}


def _condition(status: dict, type_: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == type_), None)


def test_ready_from_the_pods_readiness_and_the_service_answers(node, base_image, kserve_standin, ns, request):
    t0 = time.monotonic()
    node.plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_isvc("model", base_image, "/os-release")))
    status = wait_until(
        lambda: (s := _status(node, ns, "model")) and _condition(s, "Ready") == "True" and s,
        timeout=120,
        interval=0.2,
        description="InferenceService model Ready",
    )
    _report(request, f"kserve stand-in: InferenceService applied -> Ready in {time.monotonic() - t0:.1f}s")
    assert _condition(status, "PredictorReady") == "True"
    assert status["components"]["predictor"]["latestReadyRevision"] == "model-predictor-00001"
    assert status["deploymentMode"] == "RawDeployment"
    assert status["url"] == f"http://model-predictor.{ns}.svc.cluster.local"
    node.plane.kubectl("get", "deployment", "model-predictor", "-n", ns)
    ip = json.loads(node.plane.kubectl("get", "service", "model-predictor", "-n", ns, "-o", "json").stdout)["spec"]["clusterIP"]
    # From a pod, through the Service (no cluster DNS on this node: by ClusterIP).
    script = f"import urllib.request; print(urllib.request.urlopen('http://{ip}/os-release', timeout=5).read().decode())"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "client"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": base_image, "imagePullPolicy": "Never", "command": ["python3", "-c", script]}
                    ],
                }
            },
        },
    }
    node.plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(job))
    node.plane.kubectl("wait", "job/client", "-n", ns, "--for=condition=Complete", "--timeout=120s", timeout=130)
    assert "bookworm" in node.plane.kubectl("logs", "job/client", "-n", ns).stdout
    assert not kserve_standin.errors


def test_a_revision_whose_probe_fails_is_not_ready(node, base_image, kserve_standin, ns):
    node.plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_isvc("broken", base_image, "/no-such-file")))
    status = wait_until(
        lambda: (s := _status(node, ns, "broken")) and s.get("conditions") and s,
        timeout=60,
        interval=0.2,
        description="InferenceService broken has a status",
    )
    # Running but never Ready: the readiness probe decides, as in KServe.
    wait_until(
        lambda: node.plane.kubectl("get", "pods", "-n", ns, "-o", "jsonpath={.items[*].status.phase}").stdout == "Running",
        timeout=60,
        description="the predictor pod Running",
    )
    status = _status(node, ns, "broken")
    assert _condition(status, "Ready") == "False"
    assert _condition(status, "PredictorReady") == "False"
    assert "latestReadyRevision" not in status["components"]["predictor"]
