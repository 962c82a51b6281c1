"""The operator as users run it: ``helm install`` of charts/fti-operator with the image
``make images`` built, on the real node (tests/node; no pod runner, no admin credentials
in the operator). The operator pod runs under the chart's ServiceAccount in a namespace
that enforces the ``restricted`` PodSecurity level, passes its probes, serves /metrics
through its Service, and stops promptly and cleanly when its pod is deleted.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from controlplane.fixtures import _report
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "fti-operator"
TAG = os.environ.get("FTI_IMAGE_TAG", "dev")
OPERATOR_IMAGE = f"ghcr.io/fti-dev/fti-operator:{TAG}"
# Not the fraud test's names: its namespace may still be terminating.
RELEASE, NS = "fti", "fti-operator-e2e"


def describe(node, ns: str) -> str:
    """What a failing test needs to see: events, pod states and the pods' logs."""
    parts = []
    for args in (
        ("get", "events", "-n", ns, "--sort-by=.lastTimestamp"),
        ("describe", "pods", "-n", ns),
        ("logs", "-n", ns, "--all-containers", "--prefix", "--tail=80", "-l", "app.kubernetes.io/name=fti-operator"),
    ):
        out = node.plane.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{out.stdout}{out.stderr}")
    return "\n".join(parts)


def _json(node, *args) -> dict:
    return json.loads(node.plane.kubectl(*args, "-o", "json").stdout)


def _operator_pod(node) -> dict | None:
    pods = _json(node, "get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=fti-operator")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else None


def _ready(pod: dict | None) -> bool:
    conditions = {c["type"]: c["status"] for c in (pod or {}).get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


@pytest.fixture(scope="module")
def operator(node, node_images, request):
    node_images(OPERATOR_IMAGE)
    node.plane.kubectl("apply", "--server-side", "-f", str(REPO / "tests" / "controlplane" / "kserve-crd.yaml"))
    node.plane.kubectl("create", "namespace", NS)
    node.plane.kubectl(
        "label",
        "namespace",
        NS,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    t0 = time.monotonic()
    installed = node.plane.helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NS,
        "--set",
        f"image.tag={TAG}",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        f"pipelineImages.tag={TAG}",
        "--set",
        "pipelineImages.pullPolicy=Never",
        "--wait",
        "--timeout",
        "180s",
        timeout=240,
        check=False,
    )
    if installed.returncode != 0:
        pytest.fail(f"helm install failed: {installed.stderr}\n{describe(node, NS)}", pytrace=False)
    _report(request, f"operator: helm install --wait took {time.monotonic() - t0:.1f}s")
    yield
    node.plane.helm("uninstall", RELEASE, "-n", NS, "--wait", check=False, timeout=120)
    node.plane.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_operator_pod_runs_under_the_chart_service_account_with_probes(node, operator):
    pod = wait_until(lambda: (p := _operator_pod(node)) and _ready(p) and p, timeout=120, description="the operator pod Ready")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == f"{RELEASE}-fti-operator"
    container = spec["containers"][0]
    assert container["image"] == OPERATOR_IMAGE
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["restartCount"] == 0, status

    # In-cluster: Kopf finds the API server by name (cluster DNS) and, as the chart's
    # ServiceAccount, announces itself in the peering object.
    def peers():
        peering = _json(node, "get", "clusterkopfpeering", "fti-operator")
        return peering.get("status") or None

    try:
        wait_until(peers, timeout=60, description="the operator in ClusterKopfPeering fti-operator's status")
    except TimeoutError:
        logs = node.plane.kubectl("logs", "-n", NS, pod["metadata"]["name"]).stdout
        raise AssertionError(f"the operator never reached the API server:\n{logs[-3000:]}") from None
    logs = node.plane.kubectl("logs", "-n", NS, pod["metadata"]["name"]).stdout
    # The operator watches every namespace, so another test's namespace being deleted can
    # refuse a write with 403 NamespaceTerminating: not a denial of the chart's RBAC.
    own = "\n".join(line for line in logs.splitlines() if "NamespaceTerminating" not in line)
    assert "Forbidden" not in own and "Error" not in own, own[-3000:]


def test_metrics_through_the_service(node, operator):
    svc = _json(node, "get", "service", f"{RELEASE}-fti-operator-metrics", "-n", NS)
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/metrics"

    def scrape():
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.read().decode()

    text = wait_until(scrape, timeout=60, ignore=(OSError,), description=f"GET {url}")
    assert "# TYPE" in text and "fti_" in text, text[:2000]


def test_pod_deletion_stops_the_operator_gracefully(node, operator, request):
    pod = wait_until(lambda: (p := _operator_pod(node)) and _ready(p) and p, timeout=120, description="the operator pod Ready")
    name = pod["metadata"]["name"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    t0 = time.monotonic()
    node.plane.kubectl("delete", "pod", name, "-n", NS, "--wait=true", timeout=grace + 30)
    stopped = time.monotonic() - t0
    _report(request, f"operator: pod deleted in {stopped:.1f}s (grace {grace}s)")
    # SIGTERM reaches Kopf (not ignored as PID 1): well inside the grace period.
    assert stopped < grace / 2, f"the operator took {stopped:.1f}s to stop (grace {grace}s)"
    # The Deployment replaces it, and the new pod gets Ready again.
    wait_until(
        lambda: (p := _operator_pod(node)) and p["metadata"]["name"] != name and _ready(p),
        timeout=120,
        description="a new operator pod Ready",
    )
