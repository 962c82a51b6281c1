"""Running a pod's containers as local processes: the one local kubelet.

`fti local` and the integration tests' pod runner both execute the very pod templates
the operator renders, so a pipeline behaves the same with and without a cluster. There
is no container runtime: the image only decides *whether* a container may run here and
how its argv is adapted (`ImageMap`); the process runs the container's `command`/`args`
with the environment kubelet would give it (podenv.py). The result comes back as
kubelet reports it: the exit code and the termination message, read from the file the
pipeline contract names in FTI_TERMINATION_LOG (`/dev/termination-log` in a real pod;
see pipeline_images/fti_pipelines/contract.py), at most 4096 bytes, with
`terminationMessagePolicy: FallbackToLogsOnError` honoured.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from .podenv import ConfigSource, ContainerConfigError, DictSource, expand_argv, resolve_env

__all__ = [
    "ContainerConfigError", "ContainerRun", "DictSource", "Handler", "ImageMap", "Launch", "LocalNode",
    "REFERENCE_IMAGES", "RunningContainer", "TERMINATION_LOG_ENV", "UnsupportedImage", "container_launch",
    "exit_code", "image_repository", "mount_path", "mount_paths", "python_image", "termination_message",
]

TERMINATION_LOG_ENV = "FTI_TERMINATION_LOG"  # the pipeline contract's override of /dev/termination-log
TERMINATION_MESSAGE_LIMIT = 4096  # kubelet keeps at most this many bytes of the file ...
FALLBACK_LOG_BYTES = 2048  # ... and with FallbackToLogsOnError at most 2 KiB ...
FALLBACK_LOG_LINES = 80  # ... of the last 80 log lines
FALLBACK_TO_LOGS = "FallbackToLogsOnError"

# The reference images run their command with this interpreter: they install
# fti_pipelines (and the operator) into their Python, and so does the local environment.
REFERENCE_IMAGES = ("fti-feature", "fti-training", "fti-inference", "fti-operator")


class UnsupportedImage(RuntimeError):
    """The container's image has no local equivalent; the message says why."""


# ------------------------------------------------------------------ image map
@dataclass(frozen=True)
class Launch:
    """What to execute for one container; image handlers return a modified copy."""

    argv: list[str]
    env: dict[str, str]
    image: str
    container: Mapping[str, Any] = field(repr=False)  # the container spec (camelCase)
    pod: Mapping[str, Any] = field(repr=False)  # the whole pod (camelCase)

    def with_argv(self, argv: list[str]) -> "Launch":
        return replace(self, argv=list(argv))

    def with_env(self, **extra: str) -> "Launch":
        return replace(self, env={**self.env, **extra})


# A handler returns the Launch to run, or None (or raises UnsupportedImage) to refuse it.
Handler = Callable[[Launch], Optional[Launch]]


def image_repository(image: str) -> str:
    """`registry:5000/repo:tag@sha256:...` -> `registry:5000/repo` (a port is not a tag)."""
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[: name.rfind(":")]
    return name


def _matches(pattern: str, repository: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(repository, pattern)
    return repository == pattern or repository.endswith("/" + pattern)


def python_image(launch: Launch) -> Launch:
    """Reference images: the container's `python` is this interpreter (so this virtualenv)."""
    argv = list(launch.argv)
    if not argv:
        raise UnsupportedImage(f"image {launch.image!r}: a local run needs an explicit command "
                               "(the image's entrypoint is not known here)")
    if os.path.basename(argv[0]) in ("python", "python3"):
        argv[0] = sys.executable
    env = {"PYTHONUNBUFFERED": "1", **launch.env}
    return replace(launch, argv=argv, env=env)


class ImageMap:
    """Ordered (pattern, handler) pairs; the most recently added match wins.

    A pattern is matched with fnmatch against the repository (the image without tag or
    digest); a pattern without wildcards also matches as the last path segments, so
    `fti-training` matches `ghcr.io/acme/fti-training:1.2` but not `acme/my-fti-training`.
    The reference images are mapped by default (`reference=False` for an empty map).
    """

    def __init__(self, reference: bool = True) -> None:
        self._entries: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()
        if reference:
            for name in REFERENCE_IMAGES:
                self.add(name, python_image)

    def add(self, pattern: str, handler: Handler | None = None) -> Callable[[], None]:
        """Map `pattern` to `handler` (default: run argv as written); returns a remover."""
        entry = (pattern, handler or (lambda launch: launch))
        with self._lock:
            self._entries.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)

        return remove

    def lookup(self, image: str) -> Handler | None:
        repository = image_repository(image)
        with self._lock:
            entries = list(reversed(self._entries))
        return next((handler for pattern, handler in entries if _matches(pattern, repository)), None)

    def patterns(self) -> list[str]:
        with self._lock:
            return [pattern for pattern, _ in reversed(self._entries)]

    def resolve(self, launch: Launch) -> Launch:
        """The Launch to run, or UnsupportedImage with the reason."""
        handler = self.lookup(launch.image)
        if handler is None:
            raise UnsupportedImage(f"image {launch.image!r} is not mapped to a local program "
                                   f"(mapped: {', '.join(self.patterns()) or 'nothing'})")
        result = handler(launch)
        if result is None:
            raise UnsupportedImage(f"the local mapping for image {launch.image!r} refused this container")
        if not result.argv:
            raise UnsupportedImage(f"image {launch.image!r}: no command to run (set command/args in the pod spec)")
        return result


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


def container_launch(container: Mapping[str, Any], pod: Mapping[str, Any], source: ConfigSource,
                     images: ImageMap, *, base_env: Mapping[str, str],
                     mounts: Mapping[str, Path] | None = None) -> Launch:
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
        return ContainerRun(code, message, self.log_path, self.started_at, datetime.now(timezone.utc))

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
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


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

    def run(self, container: Mapping[str, Any], pod: Mapping[str, Any], *, timeout: float | None = None,
            echo: bool = False) -> ContainerRun:
        """Run to completion (killed after `timeout` seconds); output also to stderr if `echo`.

        Raises ContainerConfigError or UnsupportedImage before anything runs. A command
        that cannot be executed ends with exit code 128, as a runtime's StartError does.
        """
        launch, term_log, log_path = self.prepare(container, pod)
        started = datetime.now(timezone.utc)
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(launch.argv, env=launch.env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE if echo else log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            except OSError as exc:  # executable not found, say
                log.write(f"cannot start {launch.argv[0]!r}: {exc}\n".encode())
                return ContainerRun(128, f"StartError: {exc}", log_path, started, datetime.now(timezone.utc))
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

    def start(self, container: Mapping[str, Any], pod: Mapping[str, Any],
              extra_args: list[str] | None = None) -> RunningContainer:
        """Start a long-running container (a model server); the caller stops it.

        Raises ContainerConfigError or UnsupportedImage, or OSError when it cannot start.
        """
        launch, term_log, log_path = self.prepare(container, pod)
        started = datetime.now(timezone.utc)
        with open(log_path, "wb") as log:  # the child keeps its own handle
            proc = subprocess.Popen([*launch.argv, *(extra_args or [])], env=launch.env, cwd=self.workdir,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        return RunningContainer(proc, log_path, term_log, container.get("terminationMessagePolicy"), started)
