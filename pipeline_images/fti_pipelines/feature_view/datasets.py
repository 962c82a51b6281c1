"""Versioned, reproducible training datasets in the artifact store.

Layout: `training_datasets/<view>/<view version>/<dataset version>/` holding
`data.parquet` (the point-in-time-correct rows) and `dataset.json` (content hash,
row count, columns, window, the feature-group versions and files it was read from).
A version directory is written once through `ArtifactStore.commit_dir`, so it is
immutable and appears atomically.

The content hash covers the column names and types and every value in row order, so
the same inputs give the same hash. Building a dataset whose hash matches an
existing version of the same view reuses that version instead of writing a copy:
re-running a training on unchanged features trains on the same dataset version.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fti_operator.api import FeatureViewSpec

from ..store.artifacts import ArtifactExists, ArtifactStore
from .join import JoinPlan, plan_join, point_in_time_join, resolve_sources

ROOT = "training_datasets"
DATA_FILE = "data.parquet"
META_FILE = "dataset.json"


@dataclass
class TrainingDataset:
    """A committed training dataset version and its rows."""

    view: str
    view_version: int
    version: int
    hash: str
    uri: str
    rows: int
    plan: JoinPlan
    frame: pd.DataFrame
    reused: bool = False

    @property
    def ref(self) -> dict[str, Any]:
        return {"version": self.version, "hash": self.hash, "uri": self.uri, "rows": self.rows}


def content_hash(table: pa.Table) -> str:
    """sha256 over the schema (names, types) and every value in row order.

    Independent of how the table is chunked and of Parquet writer metadata, so a
    rebuilt dataset with the same content has the same hash.
    """
    h = hashlib.sha256()
    h.update(json.dumps([[f.name, str(f.type)] for f in table.schema]).encode())
    frame = table.to_pandas(types_mapper=pd.ArrowDtype) if table.num_rows else None
    if frame is not None:
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()


class TrainingDatasets:
    """Create and read training dataset versions of feature views."""

    def __init__(self, store: ArtifactStore):
        self.store = store

    def versions(self, view: str, view_version: int) -> list[int]:
        return sorted(int(n) for n in self.store.committed(ROOT, view, view_version) if n.isdigit())

    def metadata(self, view: str, view_version: int, version: int) -> dict[str, Any]:
        return self.store.read_json(ROOT, view, view_version, version, META_FILE)

    def read(self, view: str, view_version: int, version: int) -> pd.DataFrame:
        if not self.store.is_committed(ROOT, view, view_version, version):
            raise FileNotFoundError(f"training dataset {view} v{view_version} #{version} is not in {self.store.uri}")
        data = self.store.read_bytes(ROOT, view, view_version, version, DATA_FILE)
        return pq.read_table(io.BytesIO(data)).to_pandas()

    def create(
        self,
        spec: FeatureViewSpec,
        feature_store: Any,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        extra_columns: list[tuple[str, str]] | None = None,
    ) -> TrainingDataset:
        """Join, hash, and commit a new version (or reuse the version with the same hash)."""
        sources = resolve_sources(spec, feature_store)
        plan = plan_join(spec, sources, extra_columns or [])
        table = point_in_time_join(plan, start=start, end=end, filesystem=self.store.fs)
        table = table.replace_schema_metadata(None)
        digest = content_hash(table)
        frame = table.to_pandas()
        for version in reversed(self.versions(spec.name, spec.version)):
            meta = self.metadata(spec.name, spec.version, version)
            if meta.get("hash") == digest:
                return self._dataset(spec, version, digest, table.num_rows, plan, frame, reused=True)
        meta = {
            "featureView": spec.wire(),
            "hash": digest,
            "rows": table.num_rows,
            "columns": [{"name": f.name, "dtype": str(f.type)} for f in table.schema],
            "label": plan.label,
            "featureColumns": list(plan.feature_columns),
            "extraColumns": list(plan.extra_columns),
            "entityKeys": list(plan.spine.primary_key),
            "eventTime": plan.spine.event_time,
            "window": {"start": _iso(start), "end": _iso(end)},
            "sources": [
                {"name": g.name, "version": g.version, "files": list(g.files)} for g in [plan.spine, *(g for g, _ in plan.joins)]
            ],
            "createdAt": _iso(datetime.now(UTC)),
        }
        # Another writer may take the next version number first: then try the one after.
        for _ in range(20):
            version = (max(self.versions(spec.name, spec.version), default=0)) + 1
            try:
                with self.store.commit_dir(ROOT, spec.name, spec.version, version) as staging:
                    with self.store.fs.open(posixpath.join(staging, DATA_FILE), "wb") as fh:
                        pq.write_table(table, fh, compression="zstd")
                    with self.store.fs.open(posixpath.join(staging, META_FILE), "wb") as fh:
                        fh.write(json.dumps({**meta, "version": version}, indent=2, sort_keys=True).encode())
            except ArtifactExists:
                self.store.invalidate()
                continue
            return self._dataset(spec, version, digest, table.num_rows, plan, frame)
        raise RuntimeError(f"could not allocate a training dataset version for {spec.name} v{spec.version}")

    def _dataset(
        self,
        spec: FeatureViewSpec,
        version: int,
        digest: str,
        rows: int,
        plan: JoinPlan,
        frame: pd.DataFrame,
        reused: bool = False,
    ) -> TrainingDataset:
        return TrainingDataset(
            view=spec.name,
            view_version=spec.version,
            version=version,
            hash=digest,
            uri=self.store.url(ROOT, spec.name, spec.version, version),
            rows=rows,
            plan=plan,
            frame=frame,
            reused=reused,
        )


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["TrainingDataset", "TrainingDatasets", "content_hash"]
