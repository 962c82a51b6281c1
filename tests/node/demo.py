"""``make demo-cluster``: the fraud example on the embedded cluster, the way `make demo`
runs it without one.

Starts the control plane and the real node (tests/node), loads the images `make images`
built, installs the chart, applies examples/fraud, shows ``kubectl get fti -A`` until the
online InferenceService is Ready, prints predictions fetched through its Service, and
tears everything down (also on Ctrl-C). KServe is the test bed's stand-in
(kserve_standin.py). Run as root: ``PYTHONPATH=tests python -m node.demo``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from controlplane.binaries import find_binaries
from controlplane.kserve import install_crd
from support.wait import wait_until

from .fraud import FraudOnNode, image_refs
from .kserve_standin import KServeStandIn
from .node import TestNode

TAG = os.environ.get("FTI_IMAGE_TAG", "dev")
TIMEOUT = float(os.environ.get("FTI_DEMO_TIMEOUT", "2400"))
SAMPLES = [
    {"cc_num": 4000000000000493, "amount": 538.67, "category": "electronics"},
    {"cc_num": 4000000000000493, "amount": 12.40, "category": "grocery"},
    {"cc_num": 4000000000001207, "amount": 1890.00, "category": "travel"},
    {"cc_num": 4000000000001207, "amount": 35.10, "category": "restaurant"},
    {"cc_num": 4000000000000042, "amount": 72.99, "category": "online"},
]


def step(name: str, started: list[float]) -> None:
    now = time.monotonic()
    print(f"[demo-cluster] {name} ({now - started[0]:.1f}s)", flush=True)
    started[0] = now


def main() -> int:
    t0 = time.monotonic()
    clock = [t0]
    workdir = Path(tempfile.mkdtemp(prefix="fti-demo-cluster-"))
    node = TestNode(find_binaries(), workdir)
    standin = fraud = api = None
    try:
        node.start()
        step("control plane + node Ready: " + ", ".join(f"{k} {v:.1f}s" for k, v in node.timings.items()), clock)
        engine = "podman"
        archive = workdir / "images.tar"
        subprocess.run([engine, "save", "--format", "docker-archive", "-m", "-o", str(archive), *image_refs(TAG)], check=True)
        node.containerd.import_archive(archive)
        archive.unlink()
        step(f"loaded {', '.join(image_refs(TAG))}", clock)
        api = node.plane.api_client()
        install_crd(api)
        standin = KServeStandIn(api).start()
        fraud = FraudOnNode(node, TAG)
        fraud.start_redis()
        fraud.storage()
        fraud.install_operator()
        step("helm install fti-operator (operator pod Ready)", clock)
        fraud.apply_example()
        step("kubectl apply --server-side -f examples/fraud/", clock)
        fraud.run_now("featurepipeline", "card-transactions", "card-profiles")
        for name in ("card-transactions", "card-profiles"):
            fraud.wait_ready("featurepipeline", name, timeout=TIMEOUT)
        step("feature pipelines ran (kubectl annotate fti.dev/run=<token>)", clock)
        fraud.train(timeout=TIMEOUT)
        step("training ran", clock)
        last = [""]

        def online_ready():
            table = fraud.kubectl("get", "fti", "-A", check=False).stdout
            if table != last[0]:
                print(f"--- kubectl get fti -A ({time.monotonic() - t0:.0f}s)\n{table}", flush=True)
                last[0] = table
            return fraud.ready("inferenceservice.fti.dev", "fraud-online")

        try:
            wait_until(online_ready, timeout=TIMEOUT, interval=5, description="fraud-online Ready")
        except TimeoutError:
            print(fraud.describe("fraud"))
            raise
        print(fraud.kubectl("get", "fti", "-A").stdout)
        step("fraud-online Ready", clock)
        answer = fraud.predict(SAMPLES)
        for sample, prediction in zip(SAMPLES, answer.get("predictions", []), strict=False):
            print(f"  {sample} -> {prediction}")
        step(f"predictions through the Service; end to end {time.monotonic() - t0:.0f}s", clock)
        return 0
    finally:
        if fraud is not None:
            fraud.close()
        if standin is not None:
            standin.stop()
        if api is not None:
            api.close()
        problems = node.stop()
        # The node's files (containerd's copy of the images: ~3.4 GB) go too, as the test
        # fixture's do, unless asked to keep them.
        if os.environ.get("FTI_KEEP_CONTROLPLANE_DIR"):
            problems.append(f"node files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"[demo-cluster] torn down{': ' + '; '.join(problems) if problems else ''}")


if __name__ == "__main__":
    sys.exit(main())
