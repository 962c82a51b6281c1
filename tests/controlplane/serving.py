"""KServe's controller with real model servers, for one namespace of the test control plane.

`kserve.py` writes the status KServe would and runs nothing: enough for the rollout logic,
not for a test that sends requests. `ServingKServe` runs the product's own local stand-in
for KServe's controller (fti_operator/local/kserve.py, what `fti local` uses) against the
control plane: each revision of a `serving.kserve.io` InferenceService in its namespace gets
its predictor (and transformer) container started as a local process by the local kubelet
— with the pod runner's image map and its Secrets/ConfigMaps from the API server, so a
server runs exactly as the pod runner runs a pipeline pod — and the status, canary traffic
included, is written back in KServe's shapes. It reconciles in a background thread, as a
controller would, until `stop()`, which SIGTERMs every server (flushing their logs).
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path
from typing import Any

from fti_operator.controller.kube_http import KubeHttp
from fti_operator.local.cluster import SERVER_START_TIMEOUT, start_model_server
from fti_operator.local.kserve import API_VERSION, PLURAL, LocalKServe
from fti_operator.local.kubelet import LocalNode, RunningContainer

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 0.5  # seconds between two passes over the namespace's InferenceServices


class ServingKServe:
    """`with ServingKServe(k8s, pod_runner, namespace, workdir) as kserve:` -- see the module docstring."""

    def __init__(self, k8s, pod_runner, namespace: str, workdir: Path) -> None:
        self.kube = KubeHttp(k8s)
        self.runner, self.namespace, self.workdir = pod_runner, namespace, Path(workdir)
        self.kserve = LocalKServe(self.kube, self._start, self._stop)
        self._servers: dict[str, RunningContainer] = {}
        self._started = itertools.count(1)  # a work directory (logs) per server started
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"kserve-{namespace}", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> ServingKServe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=SERVER_START_TIMEOUT + 30)
        self.kserve.stop_all()
        for url in list(self._servers):
            self._stop(url)

    def urls(self, name: str) -> dict[str, dict[str, str]]:
        """KServe revision name -> component -> url of every running server of `name`."""
        return self.kserve.servers().get(f"{self.namespace}/{name}", {})

    def logs(self) -> str:
        """Every server's log, for a failing test's message."""
        return "\n".join(
            f"===== {s.log_path} =====\n{s.log_path.read_text(errors='replace')[-4000:]}" for s in self._servers.values()
        )

    # -- the controller loop ----------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for isvc in self.kube.list(API_VERSION, PLURAL, self.namespace):
                    self.kserve.reconcile(isvc)
            except Exception as exc:  # noqa: BLE001 - a controller retries; the test sees `error`
                log.warning("KServe stand-in: %r", exc)
                self.error = exc
            self._stopping.wait(RECONCILE_INTERVAL)

    # -- servers, as the pod runner runs containers ------------------------------------------
    def _start(self, isvc: dict[str, Any], component: str, container: dict[str, Any]) -> str:
        workdir = self.workdir / isvc["metadata"]["name"] / f"{component}-{next(self._started)}"
        node = LocalNode(workdir, image_map=self.runner.images, source=self.runner.source)
        url, server = start_model_server(node, isvc, component, container)
        self._servers[url] = server
        return url

    def _stop(self, url: str) -> None:
        server = self._servers.pop(url, None)
        if server is not None:
            server.stop(grace=30)  # SIGTERM: the server flushes its prediction log, then exits
