"""Point-in-time-correct training data (docs/store-layout.md).

Training data is one row per labelled event of the label's feature group (the
*spine*): every other feature group of the view (`plan.plan_join`) is joined as of the
label's time on its primary key and `feature.event_time <= label.event_time`, so the
value joined is the latest one at or before the label's time - never a later one (no
leakage). A label whose entity has no feature row at or before its time keeps its row,
with nulls. Rows come out in the spine's order (event time, keys, own columns), so the
dataset hash is reproducible.

Two engines, same rows in the same order: by default (`packed`) DuckDB reads and
filters the Parquet files, the as-of lookup runs in numpy on packed int64 keys
(`asof`: far less CPU than DuckDB's ASOF JOIN, bench/RESULTS.md "Training data") and
only the matched rows' values are read, per entity partition when a group is larger
than one pass may hold; one DuckDB ASOF LEFT JOIN query (`sql.build_sql`) is the
reference and the fallback for keys that cannot be packed.

Columns from the label's own feature group (same name and version) come from the
spine row itself: they were computed as of that event.

The join reads the committed Parquet files of each version straight from the
artifact store; for non-local stores the store's fsspec filesystem is registered
with DuckDB (and handed to pyarrow for the values), so any ArtifactStore URI works
with no code change.

Training datasets are versioned and reproducible (`datasets.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from ..contract import PipelineError
from .packed import join_packed
from .plan import GroupSource, JoinPlan, plan_join, resolve_sources, source_from_files
from .sql import build_sql, types_sql


def connect(filesystem: Any = None, *, threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC that can read the artifact store's files."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if filesystem is not None:
        protocol = filesystem.protocol if isinstance(filesystem.protocol, str) else filesystem.protocol[0]
        if protocol not in ("file", "local"):
            # Object stores go through the store's own fsspec filesystem (and its credentials).
            con.register_filesystem(filesystem)
    return con


def event_time_types(con: duckdb.DuckDBPyConnection, plan: JoinPlan) -> dict[str, str]:
    """The DuckDB type of each source's event-time column (from the Parquet footers only)."""
    out = {}
    for group in [plan.spine, *(g for g, _ in plan.joins)]:
        rows = con.sql(types_sql(group.files, [group.event_time])).fetchall()
        out[group.key] = str(rows[0][1])
    return out


def point_in_time_join(
    plan: JoinPlan,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    filesystem: Any = None,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: str = "auto",
    partition_rows: int | None = None,
) -> pa.Table:
    """Run the join: exactly one output row per label row in [start, end), ordered by the
    label's event time, keys and own columns.

    `engine`: "packed" (numpy lookup on packed keys), "duckdb" (one ASOF JOIN query) or
    "auto" (packed, falling back to duckdb when the keys cannot be packed). Both give
    the same rows in the same order. `partition_rows`: the most feature rows of one group
    the packed engine holds in one pass (default `packed.PARTITION_ROWS`); more are split
    by entity (tests force small partitions).
    """
    if engine not in ("auto", "packed", "duckdb"):
        raise ValueError(f"engine must be auto, packed or duckdb, not {engine!r}")
    params = [p for p in (start, end) if p is not None]
    window = {"windowed_start": start is not None, "windowed_end": end is not None}
    own = con is None
    con = con or connect(filesystem)
    try:
        types = event_time_types(con, plan)
        # no cast when every event time already is the same zoned type (TIMESTAMPTZ_NS as
        # ingested, or TIMESTAMP WITH TIME ZONE in versions from before nanoseconds)
        kinds = set(types.values())
        cast = len(kinds) > 1 or not any(z in next(iter(kinds)) for z in ("TIME ZONE", "TIMESTAMPTZ"))
        if engine != "duckdb":
            # times as integers in the finest unit any source has: nanoseconds as ingested,
            # microseconds only when every source is in microseconds (versions from before)
            epoch = "epoch_ns" if any("_NS" in t for t in kinds) else "epoch_us"
            table = join_packed(
                con, plan, params, cast=cast, epoch=epoch, filesystem=filesystem, partition_rows=partition_rows, **window
            )
            if table is not None:
                return table
            if engine == "packed":
                raise PipelineError("TrainingDataJoinFailed", "point-in-time join: the entity keys cannot be packed into int64")
        return con.sql(build_sql(plan, cast=cast, **window), params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise PipelineError("TrainingDataJoinFailed", f"point-in-time join of feature view failed: {exc}") from exc
    finally:
        if own:
            con.close()


__all__ = [
    "GroupSource",
    "JoinPlan",
    "build_sql",
    "connect",
    "event_time_types",
    "plan_join",
    "point_in_time_join",
    "resolve_sources",
    "source_from_files",
]
