"""The offline feature store: feature groups as Parquet per (name, version) in the artifact store.

Layout under the artifact-store root:

  features/<group>/v<version>/snapshots/<000001>/   one committed, immutable directory per write
      part-*.parquet                               the rows this write added (or the whole data)
      manifest.json                                files of the version's data as of this snapshot,
                                                   schema, watermark, row count, mode, run id

The current state of a version is its newest committed snapshot. A write stages a new
snapshot directory and commits it atomically (ArtifactStore.commit_dir), so a run that
dies half-way leaves nothing visible and readers keep the previous snapshot. Two runs
racing for the same snapshot number: the second gets ConcurrentWrite and writes nothing.
Nothing is ever deleted: a full ingestion is a new snapshot that lists only its own files.
On a local filesystem the losing writer of a race is detected by the atomic rename; object
stores have no create-if-absent through fsspec, so there the scheduler must run one writer
per feature-group version at a time (the operator's CronJobs use concurrencyPolicy Forbid).
Every incremental run adds one Parquet file per core; there is no compaction yet.

Incremental ingestion keeps rows whose event time is >= the stored watermark (rows at the
watermark are kept so a late row with the same timestamp is not lost), drops duplicates on
primary key + event time within the batch (the later input row wins) and against the
stored rows at the watermark (the only stored rows a new row can duplicate).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..contract import PipelineError
from . import schema as schemas
from .artifacts import ArtifactExists, ArtifactStore

ROOT = "features"
SNAPSHOTS = "snapshots"
Mode = Literal["incremental", "full"]
PART_ROWS = 250_000  # below this a batch is one file


class ConcurrentWrite(PipelineError):
    def __init__(self, group: str, version: int, snapshot: str):
        super().__init__(
            "ConcurrentWrite",
            f"another run committed snapshot {snapshot} of {group} v{version} first; "
            "nothing was written, rerun to ingest against the new state",
            snapshot=snapshot,
        )


class _Refused(Exception):
    """The commit gate (validation) refused the batch."""


@dataclass
class Batch:
    """The rows one ingestion will write, after watermark filtering, dedup and schema checks."""

    group: str
    version: int
    mode: Mode
    table: pa.Table  # the rows to write (canonical types, recorded column order)
    schema: dict[str, Any]  # the version's schema after this write
    parent: dict[str, Any] | None  # manifest of the snapshot this write builds on
    rows_in: int
    rows_skipped: int = 0  # older than the watermark (already ingested)
    rows_duplicate: int = 0  # same primary key + event time as another row
    added_columns: list[str] = field(default_factory=list)

    @property
    def snapshot_id(self) -> str:
        return f"{(self.parent['snapshot'] if self.parent else 0) + 1:06d}"


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    return pd.Timestamp(value).tz_convert("UTC").isoformat().replace("+00:00", "Z")


class FeatureStore:
    def __init__(self, artifact_store: ArtifactStore):
        self.store = artifact_store

    # -- reading ----------------------------------------------------------------------------
    def groups(self) -> list[str]:
        return self.store.list(ROOT)

    def versions(self, name: str) -> list[int]:
        return sorted(
            int(entry[1:])
            for entry in self.store.list(ROOT, name)
            if entry.startswith("v") and entry[1:].isdigit() and self.store.committed(ROOT, name, entry, SNAPSHOTS)
        )

    def snapshot(self, name: str, version: int) -> dict[str, Any] | None:
        """The manifest of the current (newest committed) snapshot, or None if never written."""
        committed = self.store.committed(ROOT, name, f"v{version}", SNAPSHOTS)
        if not committed:
            return None
        return self.store.read_json(ROOT, name, f"v{version}", SNAPSHOTS, committed[-1], "manifest.json")

    def schema(self, name: str, version: int) -> dict[str, Any] | None:
        snap = self.snapshot(name, version)
        return None if snap is None else snap["schema"]

    def watermark(self, name: str, version: int) -> datetime | None:
        snap = self.snapshot(name, version)
        if snap is None or snap["watermark"] is None:
            return None
        return pd.Timestamp(snap["watermark"]).to_pydatetime()

    def _files(self, name: str, version: int, snap: dict[str, Any] | None) -> list[str]:
        if snap is None:
            return []
        return [self.store.path(ROOT, name, f"v{version}", f) for f in snap["files"]]

    def parquet_files(self, name: str, version: int) -> list[str]:
        """URIs of the Parquet files of the version's current data (for DuckDB read_parquet)."""
        return [self.store.url_of(p) for p in self._files(name, version, self.snapshot(name, version))]

    def table(self, name: str, version: int, columns: list[str] | None = None, snap: dict[str, Any] | None = None) -> pa.Table:
        snap = snap or self.snapshot(name, version)
        if snap is None:
            raise PipelineError(
                "FeatureGroupNotFound",
                f"feature group {name} v{version} has no committed data",
                featureGroup=name,
                version=version,
            )
        schema = pa.schema([pa.field(c["name"], schemas.arrow_type(c["dtype"])) for c in snap["schema"]["columns"]])
        files = self._files(name, version, snap)
        if not files:
            return schema.empty_table().select(columns or schema.names)
        return ds.dataset(files, schema=schema, format="parquet", filesystem=self.store.fs).to_table(columns=columns)

    def read(self, name: str, version: int, columns: list[str] | None = None) -> pd.DataFrame:
        return self.table(name, version, columns).to_pandas()

    # -- writing ----------------------------------------------------------------------------
    def prepare(
        self,
        name: str,
        version: int,
        data: pa.Table | pd.DataFrame,
        *,
        primary_key: list[str],
        event_time: str,
        mode: Mode = "incremental",
    ) -> Batch:
        """Check and shape a batch for writing; raises PipelineError naming the column on bad input."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        missing = [c for c in [*primary_key, event_time] if c not in table.column_names]
        if missing:
            raise PipelineError(
                "MissingColumn",
                f"column(s) {missing} (primaryKey/eventTime) not in the data; columns are {table.column_names}",
                columns=missing,
            )
        table = schemas.canonicalize(table)
        et_type = table.schema.field(event_time).type
        if not pa.types.is_timestamp(et_type):
            raise PipelineError(
                "InvalidColumnType",
                f"eventTime column {event_time!r} has type {et_type}; it must be a timestamp",
                column=event_time,
            )
        parent = self.snapshot(name, version)
        table, schema, added = schemas.conform(table, parent["schema"] if parent else None, primary_key, event_time)
        rows_in = table.num_rows
        rows_skipped = 0
        if mode == "incremental" and parent and parent["watermark"] is not None:
            mark = pa.scalar(pd.Timestamp(parent["watermark"]).to_pydatetime(), schemas.UTC_US)
            et = table.column(event_time)
            # null event times stay in the batch: validation must see (and reject) them
            keep = pc.or_kleene(pc.greater_equal(et, mark), pc.is_null(et))
            table = table.filter(keep)
            rows_skipped = rows_in - table.num_rows
        table, dup_in_batch = _dedup(table, primary_key, event_time)
        dup_stored = 0
        if mode == "incremental" and parent and parent["watermark"] is not None and table.num_rows:
            table, dup_stored = self._drop_stored(name, version, parent, table, primary_key, event_time)
        return Batch(name, version, mode, table, schema, parent, rows_in, rows_skipped, dup_in_batch + dup_stored, added)

    def _drop_stored(
        self, name: str, version: int, parent: dict[str, Any], table: pa.Table, primary_key: list[str], event_time: str
    ) -> tuple[pa.Table, int]:
        mark = pd.Timestamp(parent["watermark"]).to_pydatetime()
        stored = self.table(name, version, columns=[*primary_key, event_time], snap=parent)
        stored = stored.filter(pc.equal(stored.column(event_time), pa.scalar(mark, schemas.UTC_US)))
        if not stored.num_rows:
            return table, 0
        keys = [*primary_key, event_time]
        marked = table.append_column("__fti_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        joined = marked.join(
            stored.append_column("__fti_seen", pa.array([True] * stored.num_rows)), keys=keys, join_type="left outer"
        )
        fresh = joined.filter(pc.is_null(joined.column("__fti_seen"))).column("__fti_row")
        out = table.take(np.sort(fresh.to_numpy()))  # keep input order
        return out, table.num_rows - out.num_rows

    def commit(self, batch: Batch, *, run_id: str | None = None, gate: Callable[[], bool] | None = None) -> dict[str, Any] | None:
        """Write the batch as a new committed snapshot; returns the new manifest.

        `gate` (the validation) runs while the Parquet files are written into the invisible
        staging directory; if it returns False nothing is published and None is returned.
        Overlapping the two saves the time of the shorter one (Arrow's writer releases the GIL).
        """
        name, version = batch.group, batch.version
        parent = batch.parent
        vdir = (ROOT, name, f"v{version}")
        snap_id = batch.snapshot_id
        rel = posixpath.join(SNAPSHOTS, snap_id)
        et = batch.schema["eventTime"]
        files: list[str] = []
        rows = batch.table.num_rows
        watermark = None
        if batch.mode == "incremental" and parent:
            files = list(parent["files"])
            rows += parent["rows"]
            watermark = parent["watermark"]
        batch_max = pc.max(batch.table.column(et)).as_py() if batch.table.num_rows else None
        if batch_max is not None and (watermark is None or pd.Timestamp(batch_max) > pd.Timestamp(watermark)):
            watermark = _ts(batch_max)
        try:
            with self.store.commit_dir(*vdir, SNAPSHOTS, snap_id) as staging:
                if batch.added_columns and files:
                    # additive column: rewrite the version's data so one snapshot has one schema
                    old = self.table(name, version, snap=parent)
                    for col in batch.added_columns:
                        old = old.append_column(col, pa.nulls(old.num_rows, batch.table.schema.field(col).type))
                    pq.write_table(
                        old.select(batch.table.column_names), posixpath.join(staging, "base.parquet"), filesystem=self.store.fs
                    )
                    files = [posixpath.join(rel, "base.parquet")]
                if batch.table.num_rows or not files:
                    with ThreadPoolExecutor(1) as pool:
                        writing = pool.submit(self._write_parts, batch.table, staging)
                        passed = gate() if gate else True
                        names = writing.result()
                    files.extend(posixpath.join(rel, n) for n in names)
                else:
                    passed = gate() if gate else True
                if not passed:
                    raise _Refused  # leaves commit_dir by an exception: the staging is discarded
                manifest = {
                    "group": name,
                    "version": version,
                    "snapshot": int(snap_id),
                    "parent": parent["snapshot"] if parent else None,
                    "mode": batch.mode,
                    "runId": run_id,
                    "files": files,
                    "rows": rows,
                    "rowsAdded": batch.table.num_rows,
                    "watermark": watermark,
                    "schema": batch.schema,
                    "addedColumns": batch.added_columns,
                    "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
                with self.store.fs.open(posixpath.join(staging, "manifest.json"), "wb") as fh:
                    fh.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
        except ArtifactExists:
            raise ConcurrentWrite(name, version, snap_id) from None
        except _Refused:
            return None
        return manifest

    def _write_parts(self, table: pa.Table, staging: str) -> list[str]:
        """Write the batch as Parquet; big batches as one file per core, written in parallel
        (pyarrow's Parquet writer is single-threaded per file and releases the GIL)."""
        parts = max(1, min(os.cpu_count() or 1, table.num_rows // PART_ROWS))
        step = -(-table.num_rows // parts) if table.num_rows else 0
        names = [f"part-{i}.parquet" for i in range(parts)]

        def write(i: int) -> None:
            chunk = table.slice(i * step, step) if parts > 1 else table
            pq.write_table(chunk, posixpath.join(staging, names[i]), filesystem=self.store.fs)

        if parts == 1:
            write(0)
        else:
            with ThreadPoolExecutor(parts) as pool:
                list(pool.map(write, range(parts)))
        return names

    def ingest(
        self,
        name: str,
        version: int,
        data: pa.Table | pd.DataFrame,
        *,
        primary_key: list[str],
        event_time: str,
        mode: Mode = "incremental",
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """prepare + commit, without validation (the feature pipeline validates in between)."""
        batch = self.prepare(name, version, data, primary_key=primary_key, event_time=event_time, mode=mode)
        if batch.mode == "incremental" and batch.parent and not batch.table.num_rows and not batch.added_columns:
            return dict(batch.parent, rowsAdded=0, unchanged=True)
        manifest = self.commit(batch, run_id=run_id)
        assert manifest is not None  # only a gate refuses a commit, and there is none here
        return manifest

    def latest_per_key(self, name: str, version: int) -> pa.Table:
        """The newest row per primary key of the current data (what the online store holds)."""
        snap = self.snapshot(name, version)
        table = self.table(name, version, snap=snap)
        assert snap is not None  # table() raised FeatureGroupNotFound otherwise
        from .online import latest_per_key

        # ingestion guarantees one row per key + event time
        return latest_per_key(table, snap["schema"]["primaryKey"], snap["schema"]["eventTime"], unique_events=True)


def all_distinct(values: np.ndarray) -> bool:
    """No value repeats. Sorting and comparing neighbours costs ~5x less CPU than a hash set
    (pandas' is_unique) on 1M 64-bit hashes: numpy's sort of integers is vectorised."""
    ordered = np.sort(values)
    return not bool(np.any(ordered[1:] == ordered[:-1]))


def _dedup(table: pa.Table, primary_key: list[str], event_time: str) -> tuple[pa.Table, int]:
    """Drop rows repeating primary key + event time (the later input row wins).

    The common case has no duplicates: if the 64-bit hashes of (key, event time) are all
    distinct the rows are too (exact), which costs one vectorised pass instead of a
    grouped aggregation. Only when hashes repeat does the group-by pick the survivors.
    """
    if table.num_rows < 2:
        return table, 0
    keys = [*primary_key, event_time]
    cols = ", ".join(f'"{c}"' for c in keys)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register(
            "k",
            pa.table({**{c: table.column(c) for c in keys}, "__fti_row": pa.array(np.arange(table.num_rows, dtype=np.int64))}),
        )
        hashes = con.sql(f"SELECT hash({cols}) AS h FROM k").to_arrow_table().column("h").to_numpy()
        if all_distinct(hashes):
            return table, 0
        idx = con.sql(f"SELECT max(__fti_row) AS i FROM k GROUP BY {cols} ORDER BY i").to_arrow_table().column("i")
    finally:
        con.close()
    if len(idx) == table.num_rows:
        return table, 0
    return table.take(idx), table.num_rows - len(idx)
