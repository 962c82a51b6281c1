"""The model registry: immutable model versions in the artifact store (docs/store-layout.md).

Layout of one version, written once through `ArtifactStore.commit_dir`:

    models/<name>/<version>/model/model.joblib   the fitted sklearn Pipeline, alone in its
                                                 folder so KServe's stock sklearn runtime loads it
    models/<name>/<version>/model/monitoring-profile.json
                                                 the training profile monitoring compares the
                                                 prediction log with (docs/monitoring.md); the
                                                 sklearn runtime loads only the .joblib file
    models/<name>/<version>/model.json           the model card: verdict, metrics, gates, bias,
                                                 feature view, training dataset, input schema
    models/<name>/<version>/report/              evaluation plots (PNG) and report.html/.md
    models/<name>/<version>/_COMMITTED           written last by the artifact store
    models/<name>/_versions/<version>.json       the version's claim: the run that owns it

Version numbers belong to the registry: `allocate` claims the next free number for a run
by creating its claim file exclusively (`ArtifactStore.create_exclusive`: a hard link on
file://, a conditional PUT on s3://), and records the run in it (the owning resource's uid,
its spec hash, the Job). The same run asking again gets its own version back (a retried
pod); any other run, a re-created TrainingPipeline's included, gets a number above every
claimed or registered one, so no run ever receives another run's model.

The saved pipeline takes plain ordered rows: columns by position in the feature
view's order (`card["featureView"]["columns"]`), which is what that runtime hands it.
A version that exists is never overwritten (`ArtifactExists`), so a served storage
URI always holds the same model (KServe does not reload a model replaced in place).
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import joblib

from .store.artifacts import ArtifactExists, ArtifactStore

ROOT = "models"
MODEL_DIR = "model"
MODEL_FILE = "model.joblib"
PROFILE_FILE = "monitoring-profile.json"
CARD_FILE = "model.json"
REPORT_DIR = "report"
CLAIMS_DIR = "_versions"
VERDICTS = ("Validated", "Rejected")
REQUIRED_CARD_KEYS = ("verdict", "metrics", "featureView", "trainingDataset", "inputSchema")


class ModelNotFound(LookupError):
    """No committed version of that model."""


@dataclass(frozen=True)
class RunOwner:
    """The run a model version is allocated to (recorded in the version's claim)."""

    namespace: str
    resource: str  # the TrainingPipeline's name
    resource_uid: str | None  # its metadata.uid: a re-created TrainingPipeline is another owner
    spec_hash: str
    job: str  # the run id (the Job's name)

    def same_run(self, claim: dict[str, Any] | None) -> bool:
        """True if `claim` was made by this very run (a retried pod of the same Job).

        Without a uid nothing identifies the run across retries, so it is never the same run."""
        run = (claim or {}).get("run") or {}
        return bool(self.resource_uid) and run.get("resourceUid") == self.resource_uid and run.get("job") == self.job

    def wire(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "namespace": d["namespace"],
            "resource": d["resource"],
            "resourceUid": d["resource_uid"],
            "specHash": d["spec_hash"],
            "job": d["job"],
        }


class ModelRegistry:
    """Register, list and load model versions under `models/` of an artifact store."""

    def __init__(self, store: ArtifactStore):
        self.store = store

    def storage_uri(self, name: str, version: int) -> str:
        """URI of the version's model/ folder: what a KServe predictor's storageUri gets."""
        return self.store.url(ROOT, name, int(version), MODEL_DIR)

    def profile_uri(self, name: str, version: int) -> str:
        """URI of the version's training profile: `<storageUri>/monitoring-profile.json`."""
        return self.store.url(ROOT, name, int(version), MODEL_DIR, PROFILE_FILE)

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

    def claims(self, name: str) -> dict[int, dict[str, Any]]:
        """Every claimed version of `name` and its claim (the run that owns it)."""
        out = {}
        for fname in self.store.list(ROOT, name, CLAIMS_DIR):
            stem = fname.removesuffix(".json")
            if fname.endswith(".json") and stem.isdigit():
                out[int(stem)] = self.store.read_json(ROOT, name, CLAIMS_DIR, fname)
        return out

    def claim(self, name: str, version: int) -> dict[str, Any] | None:
        try:
            return self.store.read_json(ROOT, name, CLAIMS_DIR, f"{int(version)}.json")
        except FileNotFoundError:
            return None

    def allocate(self, name: str, owner: RunOwner, requested: int | None = None) -> int:
        """The version `owner`'s run registers: its own claim if it has one, else a new claim.

        A new claim takes `requested` (the number the operator expects) when it is above
        every claimed and registered version, else the next number above them; a claim lost
        to a concurrent run moves on to the next number.
        """
        self.store.invalidate()
        claims = self.claims(name)
        for version in sorted(claims):
            if owner.same_run(claims[version]):
                return version
        taken = set(claims) | set(self.versions(name))
        version = max(int(requested or 1), max(taken, default=0) + 1)
        while True:
            claim = {"version": version, "run": owner.wire(), "claimedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
            if self.store.create_exclusive(ROOT, name, CLAIMS_DIR, f"{version}.json", json.dumps(claim, sort_keys=True).encode()):
                return version
            self.store.invalidate()
            if owner.same_run(self.claim(name, version)):  # this run's other attempt won: still ours
                return version
            version += 1

    def latest_validated(self, name: str) -> int | None:
        for version in reversed(self.versions(name)):
            if self.card(name, version).get("verdict") == "Validated":
                return version
        return None

    def register(
        self,
        name: str,
        version: int,
        pipeline: Any,
        card: dict[str, Any],
        report_files: dict[str, bytes] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write a new version atomically; returns the card as stored (with storageUri, and
        profileUri when a monitoring `profile` is given).

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
        if profile is not None:
            stored["profileUri"] = self.profile_uri(name, version)
        buf = io.BytesIO()
        joblib.dump(pipeline, buf, compress=3)
        fs = self.store.fs
        with self.store.commit_dir(ROOT, name, version, metadata={"verdict": stored["verdict"]}) as staging:
            _write(fs, posixpath.join(staging, MODEL_DIR, MODEL_FILE), buf.getvalue())
            if profile is not None:
                _write(fs, posixpath.join(staging, MODEL_DIR, PROFILE_FILE), json.dumps(profile, default=_json_default).encode())
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
