"""The model registry: immutable model versions in the artifact store (docs/store-layout.md).

Layout of one version, written once through `ArtifactStore.commit_dir`:

    models/<name>/<version>/model/model.joblib   the fitted sklearn Pipeline, alone in its
                                                 folder so KServe's stock sklearn runtime loads it
    models/<name>/<version>/model.json           the model card: verdict, metrics, gates, bias,
                                                 feature view, training dataset, input schema
    models/<name>/<version>/report/              evaluation plots (PNG) and report.html/.md
    models/<name>/<version>/_COMMITTED           written last by the artifact store

The saved pipeline takes plain ordered rows: columns by position in the feature
view's order (`card["featureView"]["columns"]`), which is what that runtime hands it.
A version that exists is never overwritten (`ArtifactExists`), so a served storage
URI always holds the same model (KServe does not reload a model replaced in place).
"""

from __future__ import annotations

import io
import json
import posixpath
from typing import Any

import joblib

from .store.artifacts import ArtifactExists, ArtifactStore

ROOT = "models"
MODEL_DIR = "model"
MODEL_FILE = "model.joblib"
CARD_FILE = "model.json"
REPORT_DIR = "report"
VERDICTS = ("Validated", "Rejected")
REQUIRED_CARD_KEYS = ("verdict", "metrics", "featureView", "trainingDataset", "inputSchema")


class ModelNotFound(LookupError):
    """No committed version of that model."""


class ModelRegistry:
    """Register, list and load model versions under `models/` of an artifact store."""

    def __init__(self, store: ArtifactStore):
        self.store = store

    def storage_uri(self, name: str, version: int) -> str:
        """URI of the version's model/ folder: what a KServe predictor's storageUri gets."""
        return self.store.url(ROOT, name, int(version), MODEL_DIR)

    def report_uri(self, name: str, version: int) -> str:
        return self.store.url(ROOT, name, int(version), REPORT_DIR)

    def versions(self, name: str) -> list[int]:
        """Committed versions, ascending (versions being written are not listed)."""
        return sorted(int(n) for n in self.store.committed(ROOT, name) if n.isdigit())

    def exists(self, name: str, version: int) -> bool:
        return self.store.is_committed(ROOT, name, int(version))

    def card(self, name: str, version: int) -> dict[str, Any]:
        if not self.exists(name, version):
            raise ModelNotFound(f"model {name} version {version} is not in the registry at {self.store.uri}")
        return self.store.read_json(ROOT, name, int(version), CARD_FILE)

    def load(self, name: str, version: int) -> tuple[Any, dict[str, Any]]:
        """The fitted pipeline and its card."""
        card = self.card(name, version)
        pipeline = joblib.load(io.BytesIO(self.store.read_bytes(ROOT, name, int(version), MODEL_DIR, MODEL_FILE)))
        return pipeline, card

    def latest_validated(self, name: str) -> int | None:
        for version in reversed(self.versions(name)):
            if self.card(name, version).get("verdict") == "Validated":
                return version
        return None

    def register(
        self, name: str, version: int, pipeline: Any, card: dict[str, Any], report_files: dict[str, bytes] | None = None
    ) -> dict[str, Any]:
        """Write a new version atomically; returns the card as stored (with storageUri).

        Raises ArtifactExists if the version is already committed.
        """
        version = int(version)
        if version < 1:
            raise ValueError(f"model version must be a positive integer, got {version}")
        if card.get("verdict") not in VERDICTS:
            raise ValueError(f"card verdict must be one of {VERDICTS}, got {card.get('verdict')!r}")
        missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
        if missing:
            raise ValueError(f"model card lacks {', '.join(missing)}")
        if self.exists(name, version):
            raise ArtifactExists(self.store.url(ROOT, name, version))
        for fname in report_files or {}:
            if "/" in fname or fname.startswith("."):
                raise ValueError(f"report file name {fname!r} must be a plain file name")
        stored = {
            **card,
            "name": name,
            "version": version,
            "storageUri": self.storage_uri(name, version),
            "reportUri": self.report_uri(name, version),
        }
        buf = io.BytesIO()
        joblib.dump(pipeline, buf, compress=3)
        fs = self.store.fs
        with self.store.commit_dir(ROOT, name, version, metadata={"verdict": stored["verdict"]}) as staging:
            _write(fs, posixpath.join(staging, MODEL_DIR, MODEL_FILE), buf.getvalue())
            _write(
                fs,
                posixpath.join(staging, CARD_FILE),
                json.dumps(stored, indent=2, sort_keys=True, default=_json_default).encode(),
            )
            for fname, data in (report_files or {}).items():
                _write(fs, posixpath.join(staging, REPORT_DIR, fname), data)
        return stored


def _write(fs: Any, path: str, data: bytes) -> None:
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as fh:
        fh.write(data)


def _json_default(value: Any) -> Any:
    # numpy scalars and similar: the card must be plain JSON.
    if hasattr(value, "item"):
        return value.item()
    return str(value)


__all__ = ["ArtifactExists", "ModelNotFound", "ModelRegistry"]
