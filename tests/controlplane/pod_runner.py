"""The tests' stand-in for kubelet and a container runtime.

``PodRunner`` registers one Node (``fti-runner``), watches Pods in all
namespaces, and for every unscheduled pod starts a ``PodWorker`` that binds it
to that node and runs its containers as local processes (see pod_worker.py).
The real Job, CronJob and garbage-collector controllers then take it from there.

Images map to local programs, and env, argv and termination messages are
resolved, by the product's local kubelet (fti_operator/local/kubelet.py), so the
tests run pods exactly as ``fti local`` does; the runner adds a shell image and
reads Secrets/ConfigMaps from the API server (``ApiSource``). Each container's
combined stdout/stderr is kept under ``runner.root/logs`` and read with
``runner.logs(namespace, pod, container)``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from fti_operator.local.kubelet import Handler, ImageMap, Launch
from fti_operator.local.podenv import decode_secret_data
from support.wait import wait_until

from .pod_status import now
from .pod_worker import PodWorker

log = logging.getLogger(__name__)

NODE_NAME = "fti-runner"
WATCH_TIMEOUT = 30  # seconds; re-list afterwards so a silently dead watch heals
SHELL_IMAGE = "fti.dev/test/shell"


def shell_image(launch: Launch) -> Launch:
    """``fti.dev/test/shell``: like a busybox image whose entrypoint is ``sh -c``."""
    if launch.container.get("command"):
        return launch  # an explicit command (e.g. ["sh", "-c", ...]) runs as written
    return launch.with_argv(["sh", "-c", *launch.argv])


def default_image_map() -> ImageMap:
    """The reference images (run with this interpreter) plus the tests' shell image."""
    images = ImageMap()
    images.add(SHELL_IMAGE, shell_image)
    return images


class ApiSource:
    """Secrets and ConfigMaps as kubelet reads them: from the API server (``core`` is a CoreV1Api)."""

    def __init__(self, core) -> None:
        self.core = core

    @staticmethod
    def _read(read, namespace: str, name: str):
        try:
            return read(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._read(self.core.read_namespaced_secret, namespace, name)
        return None if obj is None else decode_secret_data(obj.data)

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._read(self.core.read_namespaced_config_map, namespace, name)
        return None if obj is None else dict(obj.data or {})


class PodRunner:
    """Start with ``start()``, stop with ``stop()`` (kills every pod process)."""

    def __init__(self, api_client: client.ApiClient, root: Path | None = None, images: ImageMap | None = None) -> None:
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.root = Path(root or tempfile.mkdtemp(prefix="fti-pod-runner-"))
        self.images = images or default_image_map()
        self.source = ApiSource(self.core)
        self.node_name = NODE_NAME
        self._workers: dict[str, PodWorker] = {}  # by pod uid
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch_loop, name="pod-runner-watch", daemon=True)
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ API
    def add_image(self, pattern: str, handler: Handler):
        """Map an image (repository pattern, see ImageMap) to a handler; returns a remover."""
        return self.images.add(pattern, handler)

    @contextlib.contextmanager
    def mapped_image(self, pattern: str, handler: Handler):
        """``with runner.mapped_image("acme/*", handler):`` -- a mapping for one block/test."""
        remove = self.add_image(pattern, handler)
        try:
            yield
        finally:
            remove()

    def log_dir(self, namespace: str, pod: str) -> Path:
        path = self.root / "logs" / namespace / pod
        path.mkdir(parents=True, exist_ok=True)
        return path

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        """Combined stdout/stderr of a pod's container (all attempts); the first container by default."""
        directory = self.root / "logs" / namespace / pod
        if container is None:
            files = sorted(directory.glob("*.log"))
            if not files:
                return ""
            path = files[0] if len(files) == 1 else self._first_container_log(namespace, pod, files)
        else:
            path = directory / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _first_container_log(self, namespace: str, pod: str, files: list[Path]) -> Path:
        try:
            first = self.core.read_namespaced_pod(pod, namespace).spec.containers[0].name
            return files[0].parent / f"{first}.log"
        except ApiException:
            return files[0]

    def dump(self, namespace: str) -> str:
        """Every log of every pod in ``namespace``, for a failing test's report."""
        return "\n".join(
            f"===== {path.parent.name}/{path.stem} =====\n{path.read_text(errors='replace')}"
            for path in sorted((self.root / "logs" / namespace).glob("*/*.log"))
        )

    # -------------------------------------------------------------- lifecycle
    def start(self) -> PodRunner:
        self._register_node()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.stop(shutdown=True)
        for worker in workers:
            worker.join(timeout=30)
        # The watch thread may sit in a long-poll for up to WATCH_TIMEOUT; it is a
        # daemon that ignores every event once _stopping is set, so do not wait it out.
        self._thread.join(timeout=1)

    def bind(self, pod: dict) -> None:
        """What the scheduler would do: bind the pod to the runner's node."""
        meta = pod["metadata"]
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=meta["name"], uid=meta["uid"]),
            target=client.V1ObjectReference(kind="Node", name=self.node_name, api_version="v1"),
        )
        # The response is a Status, which the generated client cannot deserialise
        # as a V1Binding; skip deserialisation.
        self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body, _preload_content=False)

    def _register_node(self) -> None:
        node = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=self.node_name,
                labels={"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux", "fti.dev/test-runner": "true"},
            ),
        )
        try:
            self.core.create_node(node)
        except ApiException as exc:
            if exc.status != 409:
                raise
        # Node status is ignored on create; a kubelet reports it through nodes/status.
        status = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fti pod runner is ready",
                    "lastHeartbeatTime": now(),
                    "lastTransitionTime": now(),
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.node_name}],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "fti pod runner",
                "kernelVersion": "",
                "containerRuntimeVersion": "fti-runner://1",
                "kubeletVersion": "",
                "kubeProxyVersion": "",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        }
        self.core.patch_node_status(self.node_name, {"status": status}, _content_type="application/merge-patch+json")

    # ------------------------------------------------------------------ watch
    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                pods = self.core.list_pod_for_all_namespaces()
                for pod in pods.items:
                    self._handle(self.api.sanitize_for_serialization(pod))
                stream = watch.Watch()
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=pods.metadata.resource_version,
                    timeout_seconds=WATCH_TIMEOUT,
                    _request_timeout=WATCH_TIMEOUT + 5,
                ):
                    if self._stopping.is_set():
                        stream.stop()
                        break
                    obj = self.api.sanitize_for_serialization(event["object"])
                    if event["type"] == "DELETED":
                        self._forget(obj)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._handle(obj)
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: our resourceVersion expired, re-list
                    log.warning("pod runner watch failed: %s", exc)
                    self._stopping.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - keep the runner alive; the re-list recovers
                log.warning("pod runner watch error: %r", exc)
                self._stopping.wait(1.0)

    def _handle(self, pod: dict) -> None:
        if self._stopping.is_set():
            return
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if meta.get("deletionTimestamp"):
            if worker is not None and not worker.finished.is_set():
                worker.stop(pod)
            elif spec.get("nodeName") == self.node_name:
                # Nothing runs any more; confirm the deletion as kubelet would.
                PodWorker(self, pod)._confirm_deletion()
            return
        if worker is not None or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return  # already running here, or finished
        node = spec.get("nodeName")
        if node and node != self.node_name:
            return  # bound to some other node: not ours
        if not node and spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return  # another scheduler's pod is not ours to bind
        # A pod that names our node itself skips binding, as with kubelet.
        worker = PodWorker(self, pod, bind=not node)
        with self._lock:
            self._workers[uid] = worker
        worker.start()

    def _forget(self, pod: dict) -> None:
        with self._lock:
            worker = self._workers.pop(pod["metadata"]["uid"], None)
        if worker is not None and not worker.finished.is_set():
            worker.stop(pod)

    def wait_for_phase(self, namespace: str, pod: str, phases=("Succeeded", "Failed"), timeout: float = 60) -> client.V1Pod:
        """Poll until the pod reaches one of ``phases``; returns the pod."""

        def reached():
            obj = self.core.read_namespaced_pod(pod, namespace)
            return obj if obj.status.phase in phases else None

        return wait_until(reached, timeout=timeout, description=f"pod {namespace}/{pod} in {phases}")
