"""Run a rendered container spec as a local process: the embedded runner's kubelet.

The embedded runner executes the very pod templates the operator renders, so a
pipeline behaves the same with and without a cluster. A container is run from its
`command`/`args`/`env`; the image only decides *whether* it may run here (reference
images map to the locally installed `fti_pipelines`), and `python` becomes this
interpreter so the local virtualenv is used. The termination message is read from a
file named by FTI_TERMINATION_LOG, as the pipeline contract allows.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

# The kubelet keeps at most this much of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096

# Reference images: run the container's command with this interpreter.
REFERENCE_IMAGES = ("*/fti-feature", "*/fti-training", "*/fti-inference", "*/fti-operator")


class UnsupportedImage(RuntimeError):
    """The container's image has no local equivalent."""


class UnresolvableEnv(RuntimeError):
    """An env var refers to something that does not exist locally (a missing Secret key, say)."""


def image_repository(image: str) -> str:
    """`ghcr.io/x/fti-feature:0.1@sha256:..` -> `ghcr.io/x/fti-feature`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def python_argv(argv: list[str]) -> list[str]:
    """Replace a leading `python`/`python3` with this interpreter."""
    if argv and os.path.basename(argv[0]) in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return argv


@dataclass
class ImageMap:
    """Which images may run locally, and how their argv is adapted."""

    rules: list[tuple[str, Callable[[list[str]], list[str]]]] = field(
        default_factory=lambda: [(pattern, python_argv) for pattern in REFERENCE_IMAGES]
    )

    def add(self, pattern: str, adapt: Callable[[list[str]], list[str]] = lambda argv: argv) -> None:
        self.rules.insert(0, (pattern, adapt))

    def argv(self, container: Mapping[str, Any]) -> list[str]:
        image = container.get("image", "")
        repo = image_repository(image)
        argv = [*container.get("command", []), *container.get("args", [])]
        for pattern, adapt in self.rules:
            if fnmatch.fnmatchcase(repo, pattern):
                if not argv:
                    raise UnsupportedImage(f"container {container.get('name')!r}: image {image!r} has no command to run locally")
                return adapt(argv)
        raise UnsupportedImage(f"container {container.get('name')!r}: image {image!r} has no local equivalent")


_MAP_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_ref(pod_meta: Mapping[str, Any], path: str, env_name: str) -> str:
    """The downward API subset a local pod has: metadata name/namespace/uid, labels, annotations."""
    match = _MAP_FIELD.match(path)
    if match:
        return str((pod_meta.get(match.group(1)) or {}).get(match.group(2), ""))
    key = path.split(".", 1)[1] if path.startswith("metadata.") else None
    if key not in ("name", "namespace", "uid"):
        raise UnresolvableEnv(f"env {env_name}: fieldRef {path!r} is not available locally")
    return str(pod_meta.get(key, ""))


def resolve_env(
    container: Mapping[str, Any],
    pod_meta: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, str]] | None = None,
    config_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """The container's env as plain strings, with valueFrom resolved."""
    env: dict[str, str] = {}
    sources = {"secretKeyRef": secrets or {}, "configMapKeyRef": config_maps or {}}
    for var in container.get("env", []) or []:
        name = var["name"]
        if "value" in var:
            env[name] = str(var["value"])
            continue
        value_from = var.get("valueFrom") or {}
        if "fieldRef" in value_from:
            env[name] = field_ref(pod_meta, value_from["fieldRef"]["fieldPath"], name)
            continue
        for kind, store in sources.items():
            if kind in value_from:
                ref = value_from[kind]
                try:
                    env[name] = store[ref["name"]][ref["key"]]
                except KeyError:
                    if ref.get("optional"):
                        break
                    raise UnresolvableEnv(f"env {name}: {kind} {ref['name']}/{ref['key']} not found") from None
                break
        else:
            if value_from:
                raise UnresolvableEnv(f"env {name}: unsupported valueFrom {sorted(value_from)}")
    return env


def mount_paths(env: dict[str, str], mounts: Mapping[str, Path]) -> dict[str, str]:
    """Rewrite file:// URIs under a mounted path to the local directory standing in for it.

    In a cluster a volume puts data at a path (the chart's PVC at /var/lib/fti, say);
    locally a directory plays that volume, so manifests stay unchanged.
    """
    for src, dst in mounts.items():
        prefix = f"file://{src.rstrip('/')}/"
        target = f"file://{str(dst).rstrip('/')}/"
        env = {k: v.replace(prefix, target) for k, v in env.items()}
    return env


@dataclass
class ContainerRun:
    exit_code: int
    termination_message: str
    log_path: Path
    started_at: datetime
    finished_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


@dataclass
class LocalNode:
    """What a pod gets on this machine: a work directory, which images run, env, secrets, volumes."""

    workdir: Path
    image_map: ImageMap = field(default_factory=ImageMap)
    base_env: Mapping[str, str] | None = None  # None: this process's environment
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    mounts: Mapping[str, Path] = field(default_factory=dict)

    def prepare(self, container: Mapping[str, Any], pod_meta: Mapping[str, Any]) -> tuple[list[str], dict[str, str], Path, Path]:
        """argv, env, termination-log path and log path for one container."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = self.image_map.argv(container)
        env = dict(os.environ if self.base_env is None else self.base_env)
        env.update(mount_paths(resolve_env(container, pod_meta, self.secrets), self.mounts))
        name = container.get("name", "main")
        term_log = self.workdir / f"{name}.termination-log"
        term_log.unlink(missing_ok=True)
        env["FTI_TERMINATION_LOG"] = str(term_log)
        env.setdefault("TMPDIR", tempfile.gettempdir())
        return argv, env, term_log, self.workdir / f"{name}.log"

    def run(self, container: Mapping[str, Any], pod_meta: Mapping[str, Any], *, timeout: float | None = None,
            echo: bool = False) -> ContainerRun:
        """Run to completion; stdout/stderr go to `<workdir>/<container>.log` (and the terminal if `echo`)."""
        argv, env, term_log, log_path = self.prepare(container, pod_meta)
        started = datetime.now(timezone.utc)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, env=env, cwd=self.workdir, stdout=subprocess.PIPE if echo else log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            if echo:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    sys.stderr.buffer.write(line)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        message = read_termination_message(term_log)
        if not message and code != 0:
            # terminationMessagePolicy FallbackToLogsOnError: the tail of the log stands in.
            message = log_path.read_bytes()[-2048:].decode("utf-8", "replace")
        return ContainerRun(code, message, log_path, started, datetime.now(timezone.utc))

    def start(self, container: Mapping[str, Any], pod_meta: Mapping[str, Any],
              extra_args: list[str] | None = None) -> tuple[subprocess.Popen, Path]:
        """Start a long-running container (a model server); the caller stops it."""
        argv, env, _, log_path = self.prepare(container, pod_meta)
        with open(log_path, "wb") as log:  # the child keeps its own handle
            proc = subprocess.Popen([*argv, *(extra_args or [])], env=env, cwd=self.workdir, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log_path


def read_termination_message(path: Path) -> str:
    try:
        return path.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
