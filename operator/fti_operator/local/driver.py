"""Driver 2: `fti local` — the operator's reconcilers on an in-memory API server.

`fti local apply` stores the manifests in an in-memory API server (memkube.py) and runs the
very reconcilers the Kopf controller runs (`fti_operator.reconcile`), with the same
`Lookups` answers (lookups.py). What a cluster would do with the children they write is
done here by small local stand-ins: Jobs get a pod whose containers run as processes on
this machine (jobs.py + the local kubelet), a KServe InferenceService gets its predictor
started as a local server (kserve.py, a stand-in for KServe's controller). The loop below
alternates the two until nothing changes, so the status `fti local status` prints is the
status the operator would write (docs/architecture.md, "Two drivers").

Nothing under local/ decides status: it only delivers events, as the Kopf driver does.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..api.identity import API_VERSION
from ..config import OperatorConfig
from ..reconcile import Context, Result, feature, inference, training
from .cluster import LocalCluster
from .lookups import ScanLookups
from .memkube import MemKube

STATE_FILE = "state.json"
RECONCILERS: dict[str, Callable[[Context, Mapping[str, Any]], Result]] = {
    "featurepipelines": feature.reconcile,
    "trainingpipelines": training.reconcile,
    "inferenceservices": inference.reconcile,
}
KIND_PLURALS = {
    "FeaturePipeline": "featurepipelines",
    "TrainingPipeline": "trainingpipelines",
    "InferenceService": "inferenceservices",
}
# Reconcile rounds before the loop gives up: each round either runs a pod, starts a server or
# writes something, and the fraud example settles in under ten.
MAX_ROUNDS = 50


class LocalRunError(RuntimeError):
    """A step that failed; the message says which resource and why."""


def load_kube(state_dir: Path) -> MemKube:
    return MemKube.load(_read_state(state_dir).get("kube") or {})


def save_kube(state_dir: Path, kube: MemKube, servers: Mapping[str, Any]) -> None:
    """Atomic (temp file + rename): an interrupted run never leaves a half-written state."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".state-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"kube": kube.dump(), "servers": dict(servers)}, fh, indent=1, sort_keys=True, default=str)
    os.replace(tmp, state_dir / STATE_FILE)


def _read_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / STATE_FILE
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise LocalRunError(f"{path}: not valid JSON ({exc}); move it away to start afresh") from exc


def read_resources(state_dir: Path) -> list[dict[str, Any]]:
    """The fti objects of a state directory, as `kubectl get -o json` lists them (no driver started)."""
    kube = MemKube.load(_read_state(state_dir).get("kube") or {})
    return [obj for plural in RECONCILERS for obj in kube.list(API_VERSION, plural, None)]


def read_servers(state_dir: Path) -> dict[str, Any]:
    """'namespace/name' -> {url, pid, log} of the servers a running `fti local` process started."""
    return dict(_read_state(state_dir).get("servers") or {})


def local_config(state_dir: Path, environ: Mapping[str, str] | None = None) -> OperatorConfig:
    """The operator's configuration with local stores by default (`<state-dir>/store`, SQLite)."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("FTI_ARTIFACT_STORE", f"file://{state_dir / 'store'}")
    env.setdefault("FTI_ONLINE_STORE", f"sqlite:///{state_dir / 'online.db'}")
    # A local directory plays the data volume (`--volume`); there is no PVC to mount or to check.
    env.pop("FTI_STORE_VOLUME_CLAIM", None)
    return OperatorConfig.from_env(env)


@dataclass
class LocalDriver:
    """Reconcile every fti object of the in-memory API server until the local cluster is quiet."""

    state_dir: Path
    progress: Callable[[str], None] = print
    echo_logs: bool = False
    mounts: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config = local_config(self.state_dir)
        self.mounts = {self.config.data_volume_path: self.state_dir / "volume", **self.mounts}
        self.kube = load_kube(self.state_dir)
        self.ctx = Context(self.kube, ScanLookups(self.kube), self.config)
        self.cluster = LocalCluster(self.kube, self.state_dir, self.mounts, echo_logs=self.echo_logs, progress=self.progress)

    # -- objects ---------------------------------------------------------------------------
    def apply(self, manifest: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Store a manifest as `kubectl apply --server-side` would (spec changes bump generation)."""
        body = {k: v for k, v in manifest.items() if k != "status"}
        meta = dict(body["metadata"])
        meta.setdefault("namespace", "default")
        if annotations:
            meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
        body["metadata"] = meta
        # Another field manager than the reconcilers': a user's manifest and the operator's
        # writes never own the same fields.
        return self.kube.apply(body, field_manager="fti-local-apply")

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, KIND_PLURALS[kind], namespace or "default", name)

    def resources(self) -> list[dict[str, Any]]:
        return [obj for plural in RECONCILERS for obj in self.kube.list(API_VERSION, plural, None)]

    # -- the loop --------------------------------------------------------------------------
    def reconcile_all(self) -> int:
        """One pass of every reconciler over every object; returns the writes it made."""
        before = self.kube.writes()
        for plural, reconcile in RECONCILERS.items():
            for body in self.kube.list(API_VERSION, plural, None):
                reconcile(self.ctx, body)
        return self.kube.writes() - before

    def settle(self) -> None:
        """Reconcile and run what the reconcilers asked for until neither has anything to do."""
        for _ in range(MAX_ROUNDS):
            wrote = self.reconcile_all()
            ran = self.cluster.step()
            if not wrote and not ran:
                self.save()
                return
        self.save()
        raise LocalRunError(f"the local cluster did not settle in {MAX_ROUNDS} rounds (a reconcile keeps writing)")

    def save(self) -> None:
        save_kube(self.state_dir, self.kube, self.cluster.servers_state())

    def stop(self) -> None:
        self.cluster.stop_servers()
        self.save()


def now_token(prefix: str = "local") -> str:
    return datetime.now(UTC).strftime(f"{prefix}-%Y%m%dt%H%M%S%f")
