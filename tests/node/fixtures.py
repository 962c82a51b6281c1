"""pytest fixtures for the real node (tests/node/README.md); tests/e2e/conftest.py imports them.

- ``node`` (session): a ``TestNode`` — the control plane bound to the node's bridge
  address, containerd, kube-scheduler, kubelet and kube-proxy, the Node Ready. Skipped
  with the reason when this machine cannot run it (not root, containerd/runc/CNI/nft
  missing, binaries not built), unless ``FTI_REQUIRE_NODE=1``, which fails instead.
- ``node_images`` (session): ``load(*refs)`` copies images from the local engine
  (podman/docker, built by ``make images``) into the node's containerd.
- ``base_image`` (session): the local base image (images/base.sh), loaded into the
  node; a small image with python3 for tests that need just a process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from controlplane.binaries import MissingBinaries, find_binaries
from controlplane.fixtures import _report

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "FTI_REQUIRE_NODE"
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-scheduler")


def _unavailable(request, reason: str):
    if os.environ.get(REQUIRE_ENV, "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{REQUIRE_ENV}=1 but the node is unavailable: {reason}", pytrace=False)
    pytest.skip(f"the real node is unavailable: {reason}")


def image_engine() -> str | None:
    for engine in ("podman", "docker"):
        if shutil.which(engine):
            return engine
    return None


@pytest.fixture(scope="session")
def node(request):
    from .node import NodeUnavailable, TestNode

    try:
        binaries = find_binaries()
    except MissingBinaries as exc:
        _unavailable(request, str(exc))
    missing = [b for b in NODE_BINARIES if not os.access(binaries.bin_dir / b, os.X_OK)]
    if missing:
        _unavailable(request, f"{', '.join(missing)} not built in {binaries.bin_dir}: run `make controlplane`")
    workdir = Path(tempfile.mkdtemp(prefix="fti-node-"))
    test_node = TestNode(binaries, workdir)
    try:
        try:
            test_node.start()
        except NodeUnavailable as exc:
            _unavailable(request, str(exc))
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in test_node.timings.items())
        _report(request, f"node Ready: {steps} (kubeconfig {test_node.plane.kubeconfig})")
        yield test_node
    finally:
        problems = test_node.stop()
        if problems:
            _report(request, "node stop left: " + "; ".join(problems))
        if os.environ.get("FTI_KEEP_CONTROLPLANE_DIR"):
            _report(request, f"node files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def node_images(request, node):
    """``load(*refs)``: copy images from the local engine into the node (once per ref)."""
    engine = image_engine()
    loaded: set[str] = set()

    def load(*refs: str) -> None:
        todo = [r for r in refs if r not in loaded]
        if not todo:
            return
        if engine is None:
            _unavailable(request, "no podman or docker to take images from (make images)")
        absent = [
            r
            for r in todo
            if subprocess.run(
                [engine, "image", "exists" if engine == "podman" else "inspect", r], capture_output=True, check=False
            ).returncode
            != 0
        ]
        if absent:
            _unavailable(request, f"images not built: {', '.join(absent)} (make images)")
        t0 = time.monotonic()
        with tempfile.NamedTemporaryFile(suffix=".tar", dir=node.workdir) as archive:
            save = [engine, "save", "-o", archive.name]
            if engine == "podman":
                save += ["--format", "docker-archive", "-m"]
            subprocess.run([*save, *todo], check=True, capture_output=True)
            node.containerd.import_archive(Path(archive.name))
        loaded.update(todo)
        _report(request, f"node: loaded {', '.join(todo)} in {time.monotonic() - t0:.1f}s")

    return load


@pytest.fixture(scope="session")
def base_image(request, node_images):
    engine = image_engine()
    if engine != "podman":
        _unavailable(request, "the local base image is built with podman (apt-get install podman debootstrap)")
    out = subprocess.run(["bash", str(REPO / "images" / "base.sh"), engine], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        _unavailable(request, f"images/base.sh failed: {out.stderr[-2000:]}")
    ref = out.stdout.strip().splitlines()[-1]
    node_images(ref)
    return ref


@pytest.fixture(scope="session")
def kserve_standin(node):
    """KServe's CRD plus the RawDeployment stand-in (kserve_standin.py) reconciling it."""
    from controlplane.kserve import install_crd

    from .kserve_standin import KServeStandIn

    api = node.plane.api_client()
    install_crd(api)
    standin = KServeStandIn(api).start()
    try:
        yield standin
    finally:
        standin.stop()
        api.close()
