"""The default engine of the point-in-time join: numpy on packed keys, values read last.

Three steps per feature group, so that memory follows the keys, not the whole table
(docs/store-layout.md, "Training data at scale"):

1. *Keys*: DuckDB reads only the group's key columns, its event time as an integer and
   each row's identity (file, row number) of the rows that can join - none stamped after
   the newest label, none with a null key.
2. *Lookup*: `asof` packs keys and times into one int64 per row and finds each label's
   row with one argsort and one binary search.
3. *Values*: the selected columns of the matched rows only, streamed one Parquet row
   group at a time with pyarrow (`gather`) and cast to the types DuckDB would give them.

When a group holds more rows than one pass may keep (`partition_rows`), steps 1-2 run
per entity partition - a hash of the key columns, the same on the label and the feature
side, so every label meets all of its entity's rows in exactly one partition. Each
partition re-reads the group's key columns, so the count is the smallest that fits.
The result is the same rows in the same order whatever the partitioning (a test forces
small partitions and compares).

Groups run in parallel threads (numpy and pyarrow release the GIL) while the budget
allows both passes at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .asof import asof_rows, packed_keys
from .gather import gather
from .plan import GroupSource, JoinPlan
from .sql import count_sql, group_keys_sql, partition_sql, spine_sql, types_sql, values_sql

# Feature rows one pass of steps 1-2 holds for one group. Estimated at ~64 bytes each at the
# peak (key, time and row-identity columns, packed keys, argsort, sorted keys); measured on a
# quiet machine: the whole join of 10M labels x 2 groups of 50M rows, both groups in flight,
# peaked at 4.7 GB in two partitions per group and 7.1 GB in one pass (3 % faster): the
# partitions keep the margin under 8 GB (bench/RESULTS.md, "The point-in-time join at 10M
# labels, quiet").
PARTITION_ROWS = 40_000_000

_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}


def join_packed(
    con: duckdb.DuckDBPyConnection,
    plan: JoinPlan,
    params: list,
    *,
    windowed_start: bool,
    windowed_end: bool,
    cast: bool,
    epoch: str,
    filesystem: Any = None,
    partition_rows: int | None = None,
) -> pa.Table | None:
    """The join's rows (see `join.point_in_time_join`), or None when a group's keys cannot
    be packed into int64 or its values not cast to DuckDB's types (the caller falls back)."""
    limit = max(1, partition_rows or PARTITION_ROWS)
    counts = [_count(con, group.files) for group, _ in plan.joins]
    parts = [max(1, -(-int(n) // limit)) for n in counts]
    partitions = {
        f"__fti_p{i}": partition_sql(group.primary_key, _integer(con, plan.spine.files, group.primary_key), n)
        for i, ((group, _), n) in enumerate(zip(plan.joins, parts, strict=True))
        if n > 1
    }
    spine = con.sql(
        spine_sql(
            plan,
            windowed_start=windowed_start,
            windowed_end=windowed_end,
            cast=cast,
            packed=True,
            epoch=epoch,
            partitions=partitions,
        ),
        params=params or None,
    ).to_arrow_table()
    # The newest label time rounded UP to the microsecond (a query parameter is a Python
    # datetime): a superset of the rows that can join; the lookup itself compares nanoseconds.
    top = pc.max(spine["__fti_t"]).as_py() if spine.num_rows else None
    per_us = 1000 if epoch == "epoch_ns" else 1
    newest = None if top is None else datetime.fromtimestamp(0, UTC) + timedelta(microseconds=-(-top // per_us))

    def one_group(i: int) -> dict[str, pa.ChunkedArray] | None:
        group, cols = plan.joins[i]
        cursor = con.cursor()  # one connection per thread; the time zone is per connection
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            rows = _lookup(cursor, spine, group, i, parts[i], newest=newest, cast=cast, epoch=epoch)
            if rows is None:
                return None
            types = cursor.sql(values_sql(group.files, cols)).to_arrow_table().schema
        finally:
            cursor.close()
        return gather(group.files, cols, rows, types, filesystem)

    # numpy's sort and search run on one core each: groups in parallel threads overlap one
    # group's lookup with another's Parquet scan, while their passes fit in the budget.
    in_flight = [min(int(n), limit) for n in counts]
    workers = max(1, min(len(plan.joins), os.cpu_count() or 1))
    if sum(sorted(in_flight)[-workers:]) > 2 * limit:
        workers = 1
    found = _each(one_group, len(plan.joins), workers)
    if any(part is None for part in found):
        return None
    taken = {c: arr for part in found if part is not None for c, arr in part.items()}
    return pa.table({c: taken[c] if c in taken else spine[c] for c in plan.output_columns})


def _each(fn: Callable[[int], Any], n: int, workers: int) -> list[Any]:
    if workers == 1:
        return [fn(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, range(n)))


def _count(con: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> int:
    return int(con.sql(count_sql(files)).fetchall()[0][0])


def _integer(con: duckdb.DuckDBPyConnection, files: tuple[str, ...], keys: tuple[str, ...]) -> list[bool]:
    """Which key columns are integers (on the spine: the feature side casts the same way)."""
    kinds = {str(row[0]): str(row[1]) for row in con.sql(types_sql(files, keys)).fetchall()}
    return [kinds[k] in _INTEGER_TYPES for k in keys]


def _lookup(
    cursor: duckdb.DuckDBPyConnection,
    spine: pa.Table,
    group: GroupSource,
    i: int,
    parts: int,
    *,
    newest: datetime | None,
    cast: bool,
    epoch: str,
) -> np.ndarray | None:
    """Steps 1-2 for one group: each label's feature-row identity (-1: none), or None."""
    keys = list(group.primary_key)
    out = np.full(spine.num_rows, -1, dtype=np.int64)
    integer = None if parts == 1 else _integer(cursor, group.files, group.primary_key)
    for p in range(parts):
        if parts == 1:
            labels, where, partition = spine, None, None
        else:
            where = np.flatnonzero(spine[f"__fti_p{i}"].to_numpy() == p)
            labels = spine.select([*keys, "__fti_t"]).take(where)
            partition = f"{partition_sql(group.primary_key, integer or [], parts)} = {p}"
        sql = group_keys_sql(group, cast=cast, newest="?", epoch=epoch, partition=partition)
        rows = cursor.sql(sql, params=[newest]).to_arrow_table()
        ids = rows["__fti_row"]
        packed = packed_keys([labels[k] for k in keys], labels["__fti_t"], [rows[k] for k in keys], rows["__fti_t"])
        del rows  # the key and time columns: only the packed keys are needed from here
        if packed is None:
            return None
        at = asof_rows(*packed)
        del packed
        hit = at >= 0
        found = np.full(len(at), -1, dtype=np.int64)
        found[hit] = ids.take(pa.array(at[hit])).to_numpy()
        if where is None:
            out = found
        else:
            out[where] = found
    return out


__all__ = ["PARTITION_ROWS", "join_packed"]
