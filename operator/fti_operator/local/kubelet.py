"""Running a pod's containers as local processes: the one local kubelet.

`fti local` (driver 2, docs/architecture.md "Two drivers") and the integration tests'
pod runner both execute the very pods the operator's Jobs make, so a pipeline behaves
the same with and without a cluster, and the tests exercise this code. There is no
container runtime: the image only decides *whether* a container may run here and how
its argv is adapted (`ImageMap`, images.py); the process runs the container's
`command`/`args` with the environment kubelet would give it (podenv.py). The result
comes back as kubelet reports it: the exit code and the termination message, read from
the file the pipeline contract names in FTI_TERMINATION_LOG (`/dev/termination-log` in
a real pod; docs/pipeline-contract.md), at most 4096 bytes, with
`terminationMessagePolicy: FallbackToLogsOnError` honoured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .images import REFERENCE_IMAGES, Handler, ImageMap, Launch, UnsupportedImage, image_repository, python_image
from .podenv import ConfigSource, ContainerConfigError, DictSource, expand_argv, resolve_env

__all__ = [
    "REFERENCE_IMAGES",
    "TERMINATION_LOG_ENV",
    "ConfigSource",
    "ContainerConfigError",
    "ContainerRun",
    "DictSource",
    "Handler",
    "ImageMap",
    "Launch",
    "LocalNode",
    "PodRun",
    "RunningContainer",
    "UnsupportedImage",
    "container_launch",
    "exit_code",
    "image_repository",
    "mount_path",
    "mount_paths",
    "python_image",
    "termination_message",
]

TERMINATION_LOG_ENV = "FTI_TERMINATION_LOG"  # the pipeline contract's override of /dev/termination-log
TERMINATION_MESSAGE_LIMIT = 4096  # kubelet keeps at most this many bytes of the file ...
FALLBACK_LOG_BYTES = 2048  # ... and with FallbackToLogsOnError at most 2 KiB ...
FALLBACK_LOG_LINES = 80  # ... of the last 80 log lines
FALLBACK_TO_LOGS = "FallbackToLogsOnError"


# --------------------------------------------------------------- one container
def mount_path(value: str, mounts: Mapping[str, Path]) -> str:
    """Rewrite file:// URIs under a mounted path to the local directory standing in for it.

    In a cluster a volume puts data at a path (the chart's PVC at /var/lib/fti, say);
    locally a directory plays that volume, so manifests stay unchanged.
    """
    for src, dst in mounts.items():
        value = value.replace(f"file://{src.rstrip('/')}/", f"file://{str(dst).rstrip('/')}/")
    return value


def mount_paths(values: Mapping[str, str], mounts: Mapping[str, Path]) -> dict[str, str]:
    """`mount_path` applied to every value."""
    return {k: mount_path(v, mounts) for k, v in values.items()}


def container_launch(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    source: ConfigSource,
    images: ImageMap,
    *,
    base_env: Mapping[str, str],
    mounts: Mapping[str, Path] | None = None,
) -> Launch:
    """Resolve env and argv as kubelet does, then let the image map adapt (or refuse) them.

    `base_env` plays the image's own environment (the container's env overrides it).
    Raises ContainerConfigError (a missing Secret/ConfigMap/key; kubelet retries) or
    UnsupportedImage.
    """
    env = resolve_env(container, pod, source)
    argv = expand_argv(container, env)
    if mounts:
        env = mount_paths(env, mounts)
        argv = [mount_path(a, mounts) for a in argv]
    launch = Launch(argv, {**base_env, **env}, str(container.get("image", "")), container, pod)
    return images.resolve(launch)


def exit_code(returncode: int) -> int:
    """Popen reports a signal as a negative number; runtimes report 128 + signal."""
    return 128 - returncode if returncode < 0 else returncode


def termination_message(message_file: Path, log_file: Path | None, code: int, policy: str | None) -> str:
    """What kubelet puts in `state.terminated.message`.

    The first 4096 bytes of the termination-log file; when that is empty, the container
    failed and its policy is FallbackToLogsOnError, the last 80 lines of its log, at
    most 2 KiB.
    """
    try:
        with open(message_file, "rb") as f:
            message = f.read(TERMINATION_MESSAGE_LIMIT).decode("utf-8", "replace")
    except FileNotFoundError:
        message = ""
    if not message and code != 0 and policy == FALLBACK_TO_LOGS and log_file is not None:
        try:
            lines = Path(log_file).read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
            message = b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode("utf-8", "replace")
        except FileNotFoundError:
            pass
    return message


@dataclass
class ContainerRun:
    """A finished container, as kubelet reports it in `state.terminated`."""

    exit_code: int
    termination_message: str
    log_path: Path
    started_at: datetime
    finished_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    @property
    def reason(self) -> str:
        return "Completed" if self.exit_code == 0 else "Error"


@dataclass
class RunningContainer:
    """A started container (a model server, say); `stop()` or `wait()` ends it."""

    process: subprocess.Popen
    log_path: Path
    termination_log: Path
    policy: str | None
    started_at: datetime

    @property
    def pid(self) -> int:
        return self.process.pid

    def _finished(self) -> ContainerRun:
        code = exit_code(self.process.returncode)
        message = termination_message(self.termination_log, self.log_path, code, self.policy)
        return ContainerRun(code, message, self.log_path, self.started_at, datetime.now(UTC))

    def poll(self) -> ContainerRun | None:
        """The result once the process has exited, else None."""
        return None if self.process.poll() is None else self._finished()

    def wait(self, timeout: float | None = None) -> ContainerRun:
        """Wait for the exit (subprocess.TimeoutExpired after `timeout`)."""
        self.process.wait(timeout)
        return self._finished()

    def stop(self, grace: float = 10.0) -> ContainerRun:
        """SIGTERM the container's process group, SIGKILL it after `grace` seconds, as kubelet does
        (grace 0: SIGKILL at once)."""
        if self.process.poll() is None and grace > 0:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        self._signal(signal.SIGKILL)  # the leader after grace 0, or children that outlived it
        self.process.wait()
        return self._finished()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


@dataclass
class LocalNode:
    """What a pod gets on this machine: a work directory, which images run, env sources, volumes.

    Each container gets `<workdir>/<container>.log` (stdout and stderr) and a
    termination-log file whose path it finds in FTI_TERMINATION_LOG.
    """

    workdir: Path
    image_map: ImageMap = field(default_factory=ImageMap)
    source: ConfigSource = field(default_factory=DictSource)
    base_env: Mapping[str, str] | None = None  # None: this process's environment
    mounts: Mapping[str, Path] = field(default_factory=dict)

    def prepare(self, container: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[Launch, Path, Path]:
        """The Launch, termination-log path and log path for one container.

        `pod` is a pod object, or just its metadata (name, namespace, labels, ...).
        """
        pod = pod if "metadata" in pod else {"metadata": dict(pod)}
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = dict(os.environ if self.base_env is None else self.base_env)
        base.setdefault("TMPDIR", tempfile.gettempdir())
        launch = container_launch(container, pod, self.source, self.image_map, base_env=base, mounts=self.mounts)
        name = container.get("name", "main")
        term_log = self.workdir / f"{name}.termination-log"
        term_log.unlink(missing_ok=True)
        return launch.with_env(**{TERMINATION_LOG_ENV: str(term_log)}), term_log, self.workdir / f"{name}.log"

    def run(
        self, container: Mapping[str, Any], pod: Mapping[str, Any], *, timeout: float | None = None, echo: bool = False
    ) -> ContainerRun:
        """Run to completion (killed after `timeout` seconds); output also to stderr if `echo`.

        Raises ContainerConfigError or UnsupportedImage before anything runs. A command
        that cannot be executed ends with exit code 128, as a runtime's StartError does.
        """
        launch, term_log, log_path = self.prepare(container, pod)
        started = datetime.now(UTC)
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(
                    launch.argv,
                    env=launch.env,
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if echo else log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:  # executable not found, say
                log.write(f"cannot start {launch.argv[0]!r}: {exc}\n".encode())
                return ContainerRun(128, f"StartError: {exc}", log_path, started, datetime.now(UTC))
            if echo:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    sys.stderr.buffer.write(line)
        running = RunningContainer(proc, log_path, term_log, container.get("terminationMessagePolicy"), started)
        try:
            return running.wait(timeout)
        except subprocess.TimeoutExpired:
            return running.stop(grace=0)

    def start(
        self, container: Mapping[str, Any], pod: Mapping[str, Any], extra_args: list[str] | None = None
    ) -> RunningContainer:
        """Start a long-running container (a model server); the caller stops it.

        Raises ContainerConfigError or UnsupportedImage, or OSError when it cannot start.
        """
        launch, term_log, log_path = self.prepare(container, pod)
        started = datetime.now(UTC)
        with open(log_path, "wb") as log:  # the child keeps its own handle
            proc = subprocess.Popen(
                [*launch.argv, *(extra_args or [])],
                env=launch.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return RunningContainer(proc, log_path, term_log, container.get("terminationMessagePolicy"), started)

    def run_pod(self, pod: Mapping[str, Any], *, timeout: float | None = None, echo: bool = False) -> PodRun:
        """Run a pod to completion as kubelet runs a `restartPolicy: Never` pod.

        Init containers one after another (the first failure ends the pod), then the
        containers, all at once when there are several. Nothing runs when a container's
        env cannot be resolved (phase Pending, reason CreateContainerConfigError: kubelet
        would wait for the Secret/ConfigMap) or its image has no local equivalent (phase
        Failed, reason UnsupportedImage).
        """
        spec = pod.get("spec") or {}
        init, main = list(spec.get("initContainers") or []), list(spec["containers"])
        result = PodRun([c["name"] for c in init], [c["name"] for c in main], datetime.now(UTC))
        try:
            for container in init + main:  # refuse before anything runs, as kubelet does per container
                self.prepare(container, pod)
        except ContainerConfigError as exc:
            return result.not_started("Pending", "CreateContainerConfigError", str(exc))
        except UnsupportedImage as exc:
            return result.not_started("Failed", "UnsupportedImage", str(exc))
        for container in init:
            run = result.runs[container["name"]] = self.run(container, pod, timeout=timeout, echo=echo)
            if not run.succeeded:
                return result.finish()
        if len(main) == 1:
            result.runs[main[0]["name"]] = self.run(main[0], pod, timeout=timeout, echo=echo)
            return result.finish()
        running = {}
        for container in main:
            try:
                running[container["name"]] = self.start(container, pod)
            except OSError as exc:
                now, log_path = datetime.now(UTC), self.workdir / f"{container['name']}.log"
                result.runs[container["name"]] = ContainerRun(128, f"StartError: {exc}", log_path, now, now)
        for name, container in running.items():
            try:
                result.runs[name] = container.wait(timeout)
            except subprocess.TimeoutExpired:
                result.runs[name] = container.stop(grace=0)
        return result.finish()


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRun:
    """A pod run by `LocalNode.run_pod`; `status()` is what kubelet would write to `pods/status`."""

    init_containers: list[str]
    containers: list[str]
    started_at: datetime
    runs: dict[str, ContainerRun] = field(default_factory=dict)  # by container name, those that ran
    phase: str = "Running"
    reason: str = ""
    message: str = ""

    def not_started(self, phase: str, reason: str, message: str) -> PodRun:
        self.phase, self.reason, self.message = phase, reason, message
        return self

    def finish(self) -> PodRun:
        ran = [self.runs[n] for n in self.init_containers + self.containers if n in self.runs]
        ok = len(ran) == len(self.init_containers) + len(self.containers) and all(r.succeeded for r in ran)
        self.phase = "Succeeded" if ok else "Failed"
        return self

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    def _container_status(self, name: str) -> dict[str, Any]:
        run = self.runs.get(name)
        if run is not None:
            terminated = {
                "exitCode": run.exit_code,
                "reason": run.reason,
                "startedAt": _iso(run.started_at),
                "finishedAt": _iso(run.finished_at),
            }
            if run.termination_message:
                terminated["message"] = run.termination_message
            state: dict[str, Any] = {"terminated": terminated}
        else:
            waiting = {"reason": self.reason or "PodInitializing"}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        return {"name": name, "ready": False, "restartCount": 0, "started": False, "state": state, "lastState": {}}

    def status(self) -> dict[str, Any]:
        """The pod's `status`: phase, reason/message, and per container `state.terminated`
        (exitCode, reason Completed/Error, message, startedAt, finishedAt) or `state.waiting`."""
        status: dict[str, Any] = {
            "phase": self.phase,
            "startTime": _iso(self.started_at),
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "containerStatuses": [self._container_status(n) for n in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [self._container_status(n) for n in self.init_containers]
        if self.reason:
            status["reason"], status["message"] = self.reason, self.message
        return status
