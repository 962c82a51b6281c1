"""End to end on kind: built images, the Helm chart, the fraud example (needs Docker).

Skipped unless a Docker engine answers and `kind`, `kubectl` and `helm` are on PATH.
It builds the four images, loads them into a kind cluster made from kind-config.yaml,
installs the chart with the data volume, applies the example and waits for the
feature pipelines and the TrainingPipeline to become Ready.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = {
    "fti-operator": "operator/Dockerfile",
    "fti-feature": "pipeline_images/docker/feature.Dockerfile",
    "fti-training": "pipeline_images/docker/training.Dockerfile",
    "fti-inference": "pipeline_images/docker/inference.Dockerfile",
}
TAG = "e2e"

pytestmark = pytest.mark.e2e


def _docker_works() -> bool:
    if not all(shutil.which(tool) for tool in ("docker", "kind", "kubectl", "helm")):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def sh(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, capture_output=True, cwd=REPO, **kw)


@pytest.fixture(scope="module")
def cluster():
    if not _docker_works():
        pytest.skip("e2e needs a Docker engine plus kind, kubectl and helm on PATH")
    name = f"fti-e2e-{uuid.uuid4().hex[:6]}"
    Path("/tmp/fti-data").mkdir(exist_ok=True)
    sh("kind", "create", "cluster", "--name", name, "--config", "kind-config.yaml", "--wait", "120s")
    try:
        for image, dockerfile in IMAGES.items():
            ref = f"ghcr.io/fti-dev/{image}:{TAG}"
            sh("docker", "build", "-f", dockerfile, "-t", ref, ".")
            sh("kind", "load", "docker-image", ref, "--name", name)
        yield name
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", name], capture_output=True, check=False)


def _wait_ready(kind: str, ns: str, name: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        out = subprocess.run(["kubectl", "-n", ns, "get", kind, name, "-o", "json"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            last = json.loads(out.stdout)
            ready = [c for c in last.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
            if ready and ready[0]["status"] == "True":
                return last
        subprocess.run(
            ["kubectl", "-n", ns, "wait", kind, name, "--for=condition=Ready", "--timeout=10s"], capture_output=True, check=False
        )
    raise AssertionError(f"{kind}/{name} not Ready after {timeout}s: {json.dumps(last.get('status'), indent=1)}")


def test_fraud_example_on_kind(cluster: str) -> None:
    sh("kubectl", "create", "namespace", "fraud")
    sh("kubectl", "apply", "-f", "tests/e2e/storage.yaml")
    sh(
        "helm",
        "install",
        "fti-operator",
        "charts/fti-operator",
        "-n",
        "fti-system",
        "--create-namespace",
        "--set",
        f"image.tag={TAG}",
        "--set",
        f"pipelineImages.tag={TAG}",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "pipelineImages.pullPolicy=Never",
        "--set",
        "stores.volumeClaim=fti-data",
        "--set",
        "stores.onlineStore=sqlite:////var/lib/fti/online.db",
        "--wait",
        "--timeout",
        "180s",
    )
    sh("kubectl", "apply", "--server-side", "--validate=strict", "-f", "examples/fraud/")
    for name in ("card-transactions", "card-profiles"):
        _wait_ready("featurepipeline", "fraud", name, 600)
    tp = _wait_ready("trainingpipeline", "fraud", "fraud-model", 900)
    assert tp["status"]["modelVersions"][0]["phase"] == "Validated"
