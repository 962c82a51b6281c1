"""The test bed's node runs real containers: a Job completes, a Deployment's pod gets
Ready through its readiness probe, and a ClusterIP Service answers from the node and, by
name, from a pod (kube-proxy's rules, the cluster-DNS stand-in). Uses the real node (tests/node), no pod runner; the image is
the local base (images/base.sh), which has python3 and nothing else.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from controlplane.fixtures import _report
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _get(node, ns: str, kind: str, name: str) -> dict:
    return json.loads(node.plane.kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)


@pytest.fixture
def ns(node):
    name = "smoke-" + uuid.uuid4().hex[:6]
    node.plane.kubectl("create", "namespace", name)
    wait_until(
        lambda: node.plane.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        description=f"ServiceAccount {name}/default",
    )
    yield name
    node.plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _job(name: str, image: str, script: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {"name": "main", "image": image, "imagePullPolicy": "Never", "command": ["python3", "-c", script]}
                    ],
                }
            },
        },
    }


def _job_done(node, ns: str, name: str) -> dict:
    job = _get(node, ns, "job", name)
    conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
    if conditions.get("Failed") == "True":
        logs = node.plane.kubectl("logs", f"job/{name}", "-n", ns, check=False)
        raise AssertionError(f"Job {name} failed: {job['status']}\n{logs.stdout}{logs.stderr}")
    return job if conditions.get("Complete") == "True" else None


def test_job_completes_with_its_logs(node, base_image, ns, request):
    t0 = time.monotonic()
    node.plane.kubectl(
        "apply", "-n", ns, "-f", "-", input=json.dumps(_job("hello", base_image, "print('hello from a container')"))
    )
    wait_until(lambda: _job_done(node, ns, "hello"), timeout=120, interval=0.2, description="Job hello Complete")
    _report(request, f"smoke: Job applied -> Complete in {time.monotonic() - t0:.1f}s")
    logs = node.plane.kubectl("logs", "job/hello", "-n", ns).stdout
    assert "hello from a container" in logs


def test_deployment_ready_and_service_answers(node, base_image, ns, request):
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": base_image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-m", "http.server", "8000", "--directory", "/etc"],
                            "ports": [{"containerPort": 8000}],
                            "readinessProbe": {"httpGet": {"path": "/os-release", "port": 8000}, "periodSeconds": 1},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8000}]},
    }
    t0 = time.monotonic()
    for manifest in (deployment, service):
        node.plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    wait_until(
        lambda: _get(node, ns, "deployment", "web").get("status", {}).get("readyReplicas") == 1,
        timeout=120,
        interval=0.2,
        description="Deployment web Ready",
    )
    _report(request, f"smoke: Deployment applied -> pod Ready in {time.monotonic() - t0:.1f}s")
    cluster_ip = _get(node, ns, "service", "web")["spec"]["clusterIP"]

    def from_node():
        with urllib.request.urlopen(f"http://{cluster_ip}/os-release", timeout=2) as r:
            return r.read().decode()

    assert "bookworm" in wait_until(from_node, timeout=30, ignore=(OSError,), description="Service from the node")
    # From a pod, by name (cluster DNS: tests/node/dns.py), through kube-proxy's DNAT and
    # back over the same bridge.
    script = "import urllib.request; print(urllib.request.urlopen('http://web/os-release', timeout=5).read().decode())"
    node.plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_job("client", base_image, script)))
    wait_until(lambda: _job_done(node, ns, "client"), timeout=120, interval=0.2, description="Job client Complete")
    assert "bookworm" in node.plane.kubectl("logs", "job/client", "-n", ns).stdout
