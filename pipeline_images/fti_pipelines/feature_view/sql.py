"""The SQL of the point-in-time join: what DuckDB reads, filters and orders.

`spine_sql` reads the label rows (in the output's order for the packed engine),
`group_sql` a feature group's rows that can join, `build_sql` the whole join as one
DuckDB ASOF LEFT JOIN query (the reference engine and the fallback).
"""

from __future__ import annotations

from collections.abc import Iterable

from .plan import GroupSource, JoinPlan

# A feature row's identity in the packed engine: file index * 2**ROW_BITS + row number in
# the file (DuckDB's file_index and file_row_number virtual columns, the row's place in
# the Parquet file as pyarrow reads it).
ROW_BITS = 40


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files_sql(files: Iterable[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def _ts(col: str, cast: bool) -> str:
    # TIMESTAMPTZ_NS, not TIMESTAMPTZ: casting to microseconds would make a feature 700 ns
    # after a label tie with it and join (docs/store-layout.md, "Event-time precision").
    return f"CAST({_q(col)} AS TIMESTAMPTZ_NS)" if cast else _q(col)


def _spine_columns(plan: JoinPlan) -> list[str]:
    """Spine columns to read: keys, event time, spine features, label, and any join key
    a group needs that is an ordinary (non-key) column of the spine."""
    sp = plan.spine
    cols = [*sp.primary_key, sp.event_time, *plan.spine_columns, plan.label]
    cols += [k for group, _ in plan.joins for k in group.primary_key]
    return list(dict.fromkeys(cols))


def _spine_order(plan: JoinPlan, prefix: str = "") -> list[str]:
    sp = plan.spine
    # Ties on (event time, key) are rare (ingestion drops such duplicates); the spine's
    # own columns break them so the row order, and so the content hash, is stable.
    cols = [sp.event_time, *sp.primary_key]
    cols += [c for c in (*plan.spine_columns, plan.label) if c not in cols]
    return [prefix + _q(c) for c in cols]


def partition_sql(keys: Iterable[str], integer: Iterable[bool], parts: int) -> str:
    """The entity partition of a row, in [0, parts): a hash of its key columns. Integer
    columns are hashed as HUGEINT so an INTEGER key on one side meets the same BIGINT on the
    other (the packed lookup matches integers by value); other key types must agree anyway."""
    cols = [f"CAST({_q(k)} AS HUGEINT)" if is_int else _q(k) for k, is_int in zip(keys, integer, strict=True)]
    return f"hash({', '.join(cols)}) % {int(parts)}"


def spine_sql(
    plan: JoinPlan,
    *,
    windowed_start: bool,
    windowed_end: bool,
    cast: bool,
    packed: bool = False,
    epoch: str = "epoch_ns",
    partitions: dict[str, str] | None = None,
) -> str:
    """The label rows in [start, end); `packed` adds the event time as an integer (`__fti_t`,
    `epoch`: epoch_ns, or epoch_us when every source is in microseconds) and orders the rows
    as the output is ordered. `partitions`: extra columns (name -> `partition_sql`)."""
    sp = plan.spine
    select = [f"{_ts(c, cast)} AS {_q(c)}" if c == sp.event_time else _q(c) for c in _spine_columns(plan)]
    if packed:
        select.append(f"{epoch}({_ts(sp.event_time, cast)}) AS __fti_t")
    select += [f"{expr} AS {_q(name)}" for name, expr in (partitions or {}).items()]
    where = []
    if windowed_start:
        where.append(f"{_ts(sp.event_time, cast)} >= ?")
    if windowed_end:
        where.append(f"{_ts(sp.event_time, cast)} < ?")
    return (
        f"SELECT {', '.join(select)} FROM read_parquet({_files_sql(sp.files)})"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + (f" ORDER BY {', '.join(_spine_order(plan))}" if packed else "")
    )


def group_sql(group: GroupSource, cols: tuple[str, ...], *, cast: bool, newest: str) -> str:
    """A group's rows that can join: keys, event time as `__fti_et`, the selected columns;
    none stamped after `newest`."""
    et = _ts(group.event_time, cast)
    sel = [_q(k) for k in group.primary_key]
    sel.append(f"{et} AS __fti_et")
    sel += [_q(c) for c in cols if c not in group.primary_key]
    return f"SELECT {', '.join(sel)} FROM read_parquet({_files_sql(group.files)}) WHERE {_joinable(group, et, newest)}"


def group_keys_sql(group: GroupSource, *, cast: bool, newest: str, epoch: str, partition: str | None = None) -> str:
    """The packed engine's first pass over a group: only what the lookup needs - keys, the
    event time as an integer (`__fti_t`) and the row's identity (`__fti_row`, see ROW_BITS) -
    of the rows that can join, optionally one entity partition (`partition`: a condition).
    The feature values are read afterwards, for the matched rows only (`gather`)."""
    et = _ts(group.event_time, cast)
    sel = [_q(k) for k in group.primary_key]
    sel += [f"{epoch}({et}) AS __fti_t", f"(file_index::BIGINT << {ROW_BITS}) + file_row_number AS __fti_row"]
    where = _joinable(group, et, newest) + (f" AND {partition}" if partition else "")
    return f"SELECT {', '.join(sel)} FROM read_parquet({_files_sql(group.files)}, file_row_number = true) WHERE {where}"


def _joinable(group: GroupSource, et: str, newest: str) -> str:
    # Rows stamped after the newest label can never join: skip them before the sort.
    return " AND ".join([f"{et} <= {newest}"] + [f"{_q(k)} IS NOT NULL" for k in group.primary_key])


def count_sql(files: Iterable[str]) -> str:
    """Rows in the files (DuckDB answers from the Parquet footers)."""
    return f"SELECT count(*) FROM read_parquet({_files_sql(files)})"


def types_sql(files: Iterable[str], cols: Iterable[str]) -> str:
    """The DuckDB types of columns (DESCRIBE: the Parquet footers only)."""
    return f"DESCRIBE SELECT {', '.join(_q(c) for c in cols)} FROM read_parquet({_files_sql(files)})"


def values_sql(files: Iterable[str], cols: Iterable[str]) -> str:
    """No rows, only the Arrow schema DuckDB gives these columns (what `gather` casts to)."""
    return f"SELECT {', '.join(_q(c) for c in cols)} FROM read_parquet({_files_sql(files)}) LIMIT 0"


def build_sql(plan: JoinPlan, *, windowed_start: bool, windowed_end: bool, cast: bool = True) -> str:
    """The join as one DuckDB ASOF LEFT JOIN query (parameters: start and/or end timestamps).

    The reference formulation, and the fallback when the keys cannot be packed (`packed`).
    `cast`: bring every event time to TIMESTAMPTZ_NS (needed when the sources' types differ;
    a join on a cast expression is slower, so it is skipped when they already agree).
    """
    et = _q(plan.spine.event_time)
    ctes = [f"spine AS ({spine_sql(plan, windowed_start=windowed_start, windowed_end=windowed_end, cast=cast)})"]
    joins, picked = [], {}
    for i, (group, cols) in enumerate(plan.joins):
        alias = f"g{i}"
        ctes.append(f"{alias} AS ({group_sql(group, cols, cast=cast, newest=f'(SELECT max({et}) FROM spine)')})")
        on = " AND ".join(f"s.{_q(k)} = {alias}.{_q(k)}" for k in group.primary_key)
        joins.append(f"ASOF LEFT JOIN {alias} ON {on} AND s.{et} >= {alias}.__fti_et")
        for c in cols:
            picked[c] = f"{alias}.{_q(c)}"
    select = [f"{picked[col]} AS {_q(col)}" if col in picked else f"s.{_q(col)}" for col in plan.output_columns]
    return (
        f"WITH {', '.join(ctes)}\nSELECT {', '.join(select)}\nFROM spine s\n"
        + "\n".join(joins)
        + f"\nORDER BY {', '.join(_spine_order(plan, 's.'))}"
    )


__all__ = [
    "ROW_BITS",
    "build_sql",
    "count_sql",
    "group_keys_sql",
    "group_sql",
    "partition_sql",
    "spine_sql",
    "types_sql",
    "values_sql",
]
