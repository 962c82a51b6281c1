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

Incremental ingestion adds every row of the batch, late ones included (event time before
the stored watermark: a card transaction delivered hours late is still a transaction), and
drops duplicates on primary key + event time within the batch (the later input row wins)
and against the stored rows (a source that re-sends what it sent before writes nothing
twice). Only the stored rows at or after the batch's earliest event time are read for that,
so a batch of new rows costs what it did when only the watermark's rows were compared.
With an allowed lateness, rows more than that before the watermark are set aside
(`Batch.too_late`) for the pipeline to quarantine: kept, never dropped (docs/store-layout.md).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..contract import PipelineError
from . import schema as schemas
from .artifacts import ArtifactExists, ArtifactStore
from .dedup import dedup

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
    rows_late: int = 0  # written although older than the watermark
    rows_duplicate: int = 0  # same primary key + event time as another row (or a stored one)
    added_columns: list[str] = field(default_factory=list)
    too_late: pa.Table | None = None  # beyond the allowed lateness: to quarantine, not to write
    cutoff: str | None = None  # the oldest event time still ingested (watermark - allowed lateness)

    @property
    def rows_too_late(self) -> int:
        return self.too_late.num_rows if self.too_late is not None else 0

    @property
    def snapshot_id(self) -> str:
        return f"{(self.parent['snapshot'] if self.parent else 0) + 1:06d}"


def _at(value: Any, table: pa.Table, column: str) -> pa.Scalar:
    """`value` (an ISO time or a timestamp) as a scalar of `column`'s type, nanoseconds kept."""
    dtype = table.schema.field(column).type
    return pa.scalar(pd.Timestamp(value).tz_convert("UTC").as_unit(dtype.unit).value, pa.int64()).cast(dtype)


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
        return pd.Timestamp(snap["watermark"])  # a datetime that keeps nanoseconds

    def _files(self, name: str, version: int, snap: dict[str, Any] | None) -> list[str]:
        if snap is None:
            return []
        return [self.store.path(ROOT, name, f"v{version}", f) for f in snap["files"]]

    def parquet_files(self, name: str, version: int) -> list[str]:
        """URIs of the Parquet files of the version's current data (for DuckDB read_parquet)."""
        return [self.store.url_of(p) for p in self._files(name, version, self.snapshot(name, version))]

    def table(
        self,
        name: str,
        version: int,
        columns: list[str] | None = None,
        snap: dict[str, Any] | None = None,
        where: ds.Expression | None = None,
    ) -> pa.Table:
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
        dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=self.store.fs)
        return dataset.to_table(columns=columns, filter=where)

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
        allowed_lateness: timedelta | None = None,
    ) -> Batch:
        """Check and shape a batch for writing; raises PipelineError naming the column on bad input.

        `allowed_lateness` (incremental only): rows whose event time is more than this before
        the watermark go to `Batch.too_late` instead of the store; None ingests every late row."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        missing = [c for c in [*primary_key, event_time] if c not in table.column_names]
        if missing:
            raise PipelineError(
                "MissingColumn",
                f"column(s) {missing} (primaryKey/eventTime) not in the data; columns are {table.column_names}",
                columns=missing,
            )
        table = schemas.canonicalize(table, event_time)
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
        incremental = mode == "incremental" and parent is not None and parent["watermark"] is not None
        too_late, cutoff = None, None
        if incremental and allowed_lateness is not None:
            assert parent is not None
            oldest = pd.Timestamp(parent["watermark"]) - pd.Timedelta(allowed_lateness)
            cutoff = _ts(oldest)
            # null event times stay in the batch: validation must see (and reject) them
            beyond = pc.fill_null(pc.less(table.column(event_time), _at(oldest, table, event_time)), False)
            if pc.any(beyond).as_py():
                too_late, table = table.filter(beyond), table.filter(pc.invert(beyond))
        table, dup_in_batch = dedup(table, primary_key, event_time)
        dup_stored = rows_late = 0
        if incremental and table.num_rows:
            assert parent is not None
            table, dup_stored = self._drop_stored(name, version, parent, table, primary_key, event_time)
            mark = _at(parent["watermark"], table, event_time)
            rows_late = pc.sum(pc.fill_null(pc.less(table.column(event_time), mark), False).cast(pa.int64())).as_py() or 0
        return Batch(
            name,
            version,
            mode,
            table,
            schema,
            parent,
            rows_in,
            rows_late=rows_late,
            rows_duplicate=dup_in_batch + dup_stored,
            added_columns=added,
            too_late=too_late,
            cutoff=cutoff,
        )

    def _drop_stored(
        self, name: str, version: int, parent: dict[str, Any], table: pa.Table, primary_key: list[str], event_time: str
    ) -> tuple[pa.Table, int]:
        """Drop the batch's rows already stored (same primary key + event time).

        A stored row can only match a batch row at the same event time, so only the stored
        rows at or after the batch's earliest event time are read: for a batch of new rows
        that is the rows at the watermark, for a batch of late rows the span it reaches back."""
        earliest = pc.min(table.column(event_time))
        if not earliest.is_valid or pc.greater(earliest, _at(parent["watermark"], table, event_time)).as_py():
            return table, 0  # nothing stored at or after the batch's first event
        since = ds.field(event_time) >= earliest
        stored = self.table(name, version, columns=[*primary_key, event_time], snap=parent, where=since)
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
