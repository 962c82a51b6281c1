"""What a cluster does with the children the reconcilers write, on this machine.

Jobs: the local Job controller (jobs.py) creates a pod and the local kubelet (kubelet.py)
runs its containers as processes; the pod's termination message and the Job's conditions
come back in the shapes a cluster writes. KServe InferenceServices: the local stand-in for
KServe's controller (kserve.py) starts the predictor (and transformer) as local servers
and writes KServe's status. CronJobs are not run on their schedule here — `fti local apply`
runs a pipeline when it is applied (docs/architecture.md, "Two drivers").
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from time import monotonic
from typing import Any

from ..api.identity import INFERENCE_SERVICE, JOB_NAME_LABEL, LABEL_COMPONENT, LABEL_KIND, LABEL_RESOURCE
from ..reconcile.kube import Kube
from .jobs import LOG_ANNOTATION, JobController, trigger
from .kserve import LocalKServe, ServerFailed
from .kubelet import LocalNode, RunningContainer
from .memkube import utcnow
from .podenv import decode_secret_data

SERVER_START_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KubeSource:
    """Secrets and ConfigMaps for pods, read from the in-memory API server."""

    def __init__(self, kube: Kube):
        self.kube = kube

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self.kube.get("v1", "secrets", namespace, name)
        return None if obj is None else {**decode_secret_data(obj.get("data")), **(obj.get("stringData") or {})}

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self.kube.get("v1", "configmaps", namespace, name)
        return None if obj is None else dict(obj.get("data") or {})


def wait_ready(url: str, server: RunningContainer, timeout: float) -> None:
    """Poll the server's readiness endpoint until 200, its exit, or the deadline."""
    deadline = monotonic() + timeout
    last = "no answer"
    while monotonic() < deadline:
        if server.poll() is not None:
            raise ServerFailed(
                f"server exited with code {server.process.returncode} before it was ready (log: {server.log_path})"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        with contextlib.suppress(subprocess.TimeoutExpired):  # still running: poll again
            server.process.wait(timeout=0.2)  # a poll interval that also notices an exit at once
    raise ServerFailed(f"{url} not ready after {timeout:.0f}s: {last} (log: {server.log_path})")


def start_model_server(
    node: LocalNode, isvc: Mapping[str, Any], component: str, container: dict[str, Any]
) -> tuple[str, RunningContainer]:
    """Start one component of a KServe InferenceService (its container, as `node` runs
    containers) on a free loopback port; (url, server) once it answers ready, else
    ServerFailed with the reason (the server stopped). KServe's own `--http_port` is the
    one argument added; a transformer's `--predictor_host` comes with `container`."""
    meta = isvc["metadata"]
    port = free_port()
    pod = {
        "metadata": {
            "name": f"{meta['name']}-{component}",
            "namespace": meta.get("namespace", "default"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": {"containers": [container]},
    }
    server = node.start(container, pod, extra_args=["--http_port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/v1/models/{meta['name']}", server, SERVER_START_TIMEOUT)
    except BaseException:  # not ready, or Ctrl-C while waiting: nothing else would stop it
        server.stop(grace=10)
        raise
    return url, server


class LocalCluster:
    def __init__(
        self,
        kube: Kube,
        state_dir: Path,
        mounts: Mapping[str, Path],
        *,
        echo_logs: bool = False,
        progress: Callable[[str], None] = print,
    ):
        self.kube, self.state_dir, self.mounts = kube, state_dir, dict(mounts)
        self.echo_logs, self.progress = echo_logs, progress
        self.serving = False  # start model servers (fti local apply --serve/--predict, fti local serve)
        self.source = KubeSource(kube)
        self.jobs = JobController(kube, self._run_pod)
        self.kserve = LocalKServe(kube, self._start_server, self._stop_server)
        self._servers: dict[str, RunningContainer] = {}

    # -- pods ------------------------------------------------------------------------------
    def _node(self, workdir: Path) -> LocalNode:
        return LocalNode(workdir, source=self.source, mounts=self.mounts)

    def _run_pod(self, pod: dict[str, Any]) -> tuple[int, str, str | None]:
        meta = pod["metadata"]
        workdir = self.state_dir / "pods" / meta.get("namespace", "default") / meta["name"]
        run = self._node(workdir).run_pod(pod, echo=self.echo_logs)
        runs = list(run.runs.values())
        if not runs:  # refused before anything ran (a missing Secret, an image with no local equivalent)
            return 128, f"{run.reason}: {run.message}", None
        failed = next((r for r in runs if not r.succeeded), runs[-1])
        return failed.exit_code, failed.termination_message, str(failed.log_path)

    def log_path(self, job: str) -> str | None:
        for pod in self.kube.list("v1", "pods", None, f"{JOB_NAME_LABEL}={job}"):
            path = (pod["metadata"].get("annotations") or {}).get(LOG_ANNOTATION)
            if path:
                return str(path)
        return None

    # -- servers ---------------------------------------------------------------------------
    def _start_server(self, isvc: dict[str, Any], component: str, container: dict[str, Any]) -> str:
        if not self.serving:
            raise ServerFailed("not served locally: use fti local apply --serve or --predict, or fti local serve")
        if "containers" not in (isvc["spec"].get(component) or {}):
            raise ServerFailed(
                f"{component}: KServe's stock model runtime has no local equivalent; "
                "use spec.online.topology: combined with fti local"
            )
        workdir = self.state_dir / "servers" / isvc["metadata"].get("namespace", "default") / isvc["metadata"]["name"] / component
        url, server = start_model_server(self._node(workdir), isvc, component, container)
        self._servers[url] = server
        return url

    def _stop_server(self, url: str) -> None:
        server = self._servers.pop(url, None)
        if server is not None:
            server.stop(grace=10)

    def servers_state(self) -> dict[str, Any]:
        """'ns/name' -> url and pid of its entry server, for `fti local predict` in another process."""
        out: dict[str, Any] = {}
        for key, revisions in self.kserve.servers().items():
            for components in revisions.values():
                url = components.get("transformer") or components.get("predictor")
                server = self._servers.get(url or "")
                if url and server is not None:
                    out[key] = {"url": url, "pid": server.pid, "log": str(server.log_path)}
        return out

    def server_log_hint(self, name: str) -> str:
        logs = [str(s.log_path) for s in self._servers.values() if f"/{name}/" in str(s.log_path)]
        return f" (log: {logs[-1]})" if logs else ""

    def wait_servers(self) -> None:
        for server in list(self._servers.values()):
            server.process.wait()

    def stop_servers(self) -> None:
        self.kserve.stop_all()
        for url in list(self._servers):
            self._stop_server(url)

    # -- the loop ----------------------------------------------------------------------------
    def run_batch(self, namespace: str, name: str) -> str | None:
        """Start the batch CronJob of InferenceService `name` now (as its schedule would); its Job's name."""
        selector = f"{LABEL_KIND}={INFERENCE_SERVICE.singular},{LABEL_RESOURCE}={name},{LABEL_COMPONENT}=batch"
        for cronjob in self.kube.list("batch/v1", "cronjobs", namespace, selector):
            job = trigger(self.kube, cronjob, utcnow())
            return str(job["metadata"]["name"]) if job else None
        jobs = self.kube.list("batch/v1", "jobs", namespace, selector)
        return str(jobs[-1]["metadata"]["name"]) if jobs else None

    def step(self) -> bool:
        """Run what is pending: a pod per Job that needs one, KServe servers; True if anything happened."""
        ran = self.jobs.step()
        served = self.kserve.step()
        return bool(ran or served)
