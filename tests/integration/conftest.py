"""Integration tests run against a real control plane (tests/controlplane, docs/contributing.md).

The fixtures and hooks are imported here (rather than via ``pytest_plugins``,
which pytest only honours in the rootdir conftest) so this directory works on
its own: ``pytest tests/integration``.
"""

import os
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

# tests/ is on sys.path (pytest.ini `pythonpath`), never the repo root: its `operator/`
# directory must not shadow the standard library's `operator`.
from controlplane.fixtures import *  # noqa: F403  (fixtures + hooks)
from controlplane.processes import ManagedProcess
from support.metrics import scrape
from support.wait import wait_until

# ---- the operator as a process, as the chart runs it ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """The operator process, started (again) with the same environment."""

    def __init__(self, env: dict[str, str], logs: Path, health: int, metrics: int = 0):
        self.env, self.logs, self.health, self.proc = env, logs, health, None
        self.metrics, self.starts = metrics, 0

    def start(self) -> None:
        self.starts += 1
        self.proc = ManagedProcess(
            f"fti-operator-{self.starts}",
            [sys.executable, "-m", "fti_operator"],
            self.logs / f"operator-{self.starts}.log",
            env=self.env,
        ).start()
        wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.health}/healthz", timeout=2).status == 200,
            timeout=60,
            ignore=(OSError,),
            description="operator liveness endpoint",
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when a node dies."""
        assert self.proc is not None
        self.proc._signal_group(9)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=30)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the operator's /metrics (0 when the labelled series does not exist yet).
        A counter restarts at 0 with the process: compare values taken between two restarts."""
        return sum(scrape(self.metrics).values(name, **labels))

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.logs.glob("operator-*.log")))


@pytest.fixture(scope="module")
def op(control_plane, fti_crds, operator_kubeconfig, tmp_path_factory, pod_runner):
    store = tmp_path_factory.mktemp("rollout-store")
    health, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env.update(
        KUBECONFIG=str(operator_kubeconfig),
        FTI_ARTIFACT_STORE=f"file://{store}/artifacts",
        FTI_ONLINE_STORE=f"sqlite:///{store}/online.db",
        FTI_METRICS_PORT=str(metrics),
        FTI_HEALTH_PORT=str(health),
        FTI_PEERING="",
        FTI_IMAGE_TAG="test",
        FTI_JOB_TTL_SECONDS="3600",
        FTI_LOG_LEVEL="INFO",
    )
    operator = Operator(env, tmp_path_factory.mktemp("operator-logs"), health, metrics)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
