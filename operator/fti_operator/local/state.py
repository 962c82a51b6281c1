"""The embedded runner's state: every applied resource with its status, in one JSON file.

It stands in for the API server: the status written here has the same shape as the
status the operator writes in a cluster, so `fti local status -o json` reads like
`kubectl get -o json`. Writes are atomic (temp file + rename) so an interrupted run
never leaves a half-written state.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

STATE_FILE = "state.json"


def resource_key(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or 'default'}/{name}"


@dataclass
class LocalState:
    path: Path
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> "LocalState":
        path = state_dir / STATE_FILE
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc}); move it away to start afresh") from exc
        return cls(path, data.get("resources", {}), data.get("servers", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump({"resources": self.resources, "servers": self.servers}, fh, indent=2, sort_keys=True, default=str)
        os.replace(tmp, self.path)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.resources.get(resource_key(kind, namespace, name))

    def put(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Store the manifest (spec and metadata), keeping the status it already had."""
        meta = manifest["metadata"]
        key = resource_key(manifest["kind"], meta.get("namespace"), meta["name"])
        old = self.resources.get(key) or {}
        generation = (old.get("metadata") or {}).get("generation", 0)
        if old.get("spec") != manifest.get("spec"):
            generation += 1
        entry = {**manifest, "metadata": {**meta, "generation": max(generation, 1)}, "status": old.get("status") or {}}
        self.resources[key] = entry
        return entry

    def set_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        self.resources[resource_key(kind, namespace, name)]["status"] = status

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.resources.values() if r.get("kind") == kind)
