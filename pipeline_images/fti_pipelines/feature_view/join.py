"""Feature views and point-in-time-correct training data (docs/store-layout.md).

A feature view selects columns from feature groups at pinned versions plus a label.
Training data is one row per labelled event of the label's feature group (the
*spine*): every other feature group is joined as of the label's time on its primary
key and `feature.event_time <= label.event_time`, so the value joined is the latest one
at or before the label's time — never a later one (no leakage). A label whose entity
has no feature row at or before its time keeps its row, with nulls. Rows come out in
the spine's order (event time, keys, own columns), so the dataset hash is reproducible.

Two engines, same rows in the same order: by default DuckDB reads and filters the
Parquet files and the as-of lookup runs in numpy on packed int64 keys (`asof`: far less
CPU than DuckDB's ASOF JOIN, bench/RESULTS.md "Training data"); one DuckDB ASOF LEFT JOIN query
(`build_sql`) is the reference and the fallback for keys that cannot be packed.

Columns from the label's own feature group (same name and version) come from the
spine row itself: they were computed as of that event.

The join reads the committed Parquet files of each version straight from the
artifact store; for non-local stores the store's fsspec filesystem is registered
with DuckDB, so any ArtifactStore URI works with no code change.

Training datasets are versioned and reproducible (`training_datasets.py`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fti_operator.api import FeatureViewSpec

from ..contract import PipelineError
from .asof import asof_indices

# Names of internal helper columns; user columns matching this are refused.
_INTERNAL = re.compile(r"^__fti_")


@dataclass(frozen=True)
class GroupSource:
    """One feature-group version as the join needs it: files, keys, event time, schema."""

    name: str
    version: int
    files: tuple[str, ...]
    primary_key: tuple[str, ...]
    event_time: str
    columns: dict[str, str] = field(default_factory=dict)  # column -> dtype (as recorded)

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class JoinPlan:
    """What the join selects: the spine, the joined groups and the output column order."""

    spine: GroupSource
    label: str
    spine_columns: tuple[str, ...]  # feature/extra columns read from the spine row
    joins: tuple[tuple[GroupSource, tuple[str, ...]], ...]  # (group, columns) joined ASOF
    feature_columns: tuple[str, ...]  # model input order (the feature view's order)
    extra_columns: tuple[str, ...]  # carried along, not model inputs (e.g. the sensitive column)

    @property
    def output_columns(self) -> list[str]:
        keys = [*self.spine.primary_key, self.spine.event_time]
        rest = [c for c in (*self.feature_columns, *self.extra_columns) if c not in keys]
        return [*keys, *rest, self.label]

    @property
    def entity_keys(self) -> list[str]:
        """Union of the primary-key columns an online lookup needs (in first-seen order)."""
        keys: list[str] = []
        for group, _ in self.joins:
            keys += [k for k in group.primary_key if k not in keys]
        if self.spine_columns:
            keys += [k for k in self.spine.primary_key if k not in keys]
        return keys or list(self.spine.primary_key)


def _schema_columns(schema: dict[str, Any]) -> dict[str, str]:
    """Accepts {"columns": {name: dtype}} or {"columns": [{"name", "dtype"}]}."""
    cols = schema.get("columns") or {}
    if isinstance(cols, dict):
        return {str(k): str(v) for k, v in cols.items()}
    return {str(c["name"]): str(c.get("dtype", c.get("type", ""))) for c in cols}


def resolve_sources(spec: FeatureViewSpec, feature_store: Any) -> dict[str, GroupSource]:
    """Every feature-group version the view reads, checked against the store.

    Raises PipelineError naming the field when a version is not in the store.
    """
    out: dict[str, GroupSource] = {}
    refs = [("featureView.label.featureGroup", spec.label.feature_group)]
    refs += [(f"featureView.features[{i}].featureGroup", f.feature_group) for i, f in enumerate(spec.features)]
    for path, ref in refs:
        if ref.key in out:
            continue
        versions = list(feature_store.versions(ref.name))
        if ref.version not in versions:
            have = ", ".join(f"v{v}" for v in versions) or "none"
            raise PipelineError(
                "FeatureGroupNotFound",
                f"{path}: feature group {ref.name} version {ref.version} is not in the feature store (versions: {have})",
                featureGroup=ref.name,
                version=ref.version,
            )
        schema = feature_store.schema(ref.name, ref.version)
        files = tuple(feature_store.parquet_files(ref.name, ref.version))
        if not files:
            raise PipelineError(
                "FeatureGroupEmpty",
                f"{path}: feature group {ref.name} version {ref.version} has no data yet",
                featureGroup=ref.name,
                version=ref.version,
            )
        out[ref.key] = GroupSource(
            name=ref.name,
            version=ref.version,
            files=files,
            primary_key=tuple(schema.get("primaryKey") or schema.get("primary_key") or ()),
            event_time=str(schema.get("eventTime") or schema.get("event_time")),
            columns=_schema_columns(schema),
        )
    return out


def plan_join(spec: FeatureViewSpec, sources: dict[str, GroupSource], extra_columns: Iterable[tuple[str, str]] = ()) -> JoinPlan:
    """Check the view against the recorded schemas and decide where each column comes from.

    `extra_columns` are (field path, column) pairs to carry along (e.g. the bias gate's
    sensitive column): taken from the first group of the view that has the column.
    """
    spine = sources[spec.label.feature_group.key]
    _need(spine, spec.label.column, "featureView.label.column")
    if spec.label.column in spec.feature_columns:
        raise PipelineError(
            "InvalidFeatureView", f"featureView.label.column: {spec.label.column!r} is also selected as a feature (label leakage)"
        )
    spine_cols: list[str] = []
    per_group: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for i, sel in enumerate(spec.features):
        group = sources[sel.feature_group.key]
        for col in sel.columns:
            _need(group, col, f"featureView.features[{i}].columns")
            if col in seen and seen[col] != group.key:
                raise PipelineError(
                    "InvalidFeatureView",
                    f"featureView.features[{i}].columns: {col!r} is selected from both {seen[col]} and {group.key}; "
                    "column names must be unique in a feature view",
                )
            seen[col] = group.key
        if group.key == spine.key:
            spine_cols += [c for c in sel.columns if c not in spine_cols]
        else:
            missing = [k for k in group.primary_key if k not in spine.columns]
            if missing:
                raise PipelineError(
                    "InvalidFeatureView",
                    f"featureView.features[{i}].featureGroup: {group.key} is keyed by {list(group.primary_key)}, "
                    f"but the label feature group {spine.key} has no column {', '.join(map(repr, missing))} to join on",
                )
            per_group.setdefault(group.key, [])
            per_group[group.key] += [c for c in sel.columns if c not in per_group[group.key]]

    extras: list[str] = []
    for path, col in extra_columns:
        if col in seen or col in extras or col == spec.label.column:
            continue
        holder = next((g for g in [spine] + [sources[s.feature_group.key] for s in spec.features] if col in g.columns), None)
        if holder is None:
            raise PipelineError(
                "UnknownColumn",
                f"{path}: {col!r} is not a column of any feature group in the view "
                f"({', '.join(g.key for g in sources.values())})",
                column=col,
            )
        extras.append(col)
        if holder.key == spine.key:
            spine_cols.append(col)
        else:
            per_group.setdefault(holder.key, []).append(col)

    for col in [*seen, *extras]:
        if _INTERNAL.match(col):
            raise PipelineError("InvalidFeatureView", f"column {col!r}: names starting with __fti_ are reserved")
    joins = tuple((sources[k], tuple(cols)) for k, cols in per_group.items())
    return JoinPlan(
        spine=spine,
        label=spec.label.column,
        spine_columns=tuple(spine_cols),
        joins=joins,
        feature_columns=tuple(spec.feature_columns),
        extra_columns=tuple(extras),
    )


def _need(group: GroupSource, column: str, path: str) -> None:
    if group.columns and column not in group.columns:
        raise PipelineError(
            "UnknownColumn",
            f"{path}: {column!r} is not a column of feature group {group.name} version {group.version} "
            f"(columns: {', '.join(sorted(group.columns))})",
            column=column,
            featureGroup=group.name,
            version=group.version,
        )


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


def _spine_sql(
    plan: JoinPlan, *, windowed_start: bool, windowed_end: bool, cast: bool, packed: bool = False, epoch: str = "epoch_ns"
) -> str:
    """The label rows in [start, end); `packed` adds the event time as an integer (`__fti_t`,
    `epoch`: epoch_ns, or epoch_us when every source is in microseconds) and orders the rows as the output is ordered."""
    sp = plan.spine
    select = [f"{_ts(c, cast)} AS {_q(c)}" if c == sp.event_time else _q(c) for c in _spine_columns(plan)]
    if packed:
        select.append(f"{epoch}({_ts(sp.event_time, cast)}) AS __fti_t")
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


def _group_sql(
    group: GroupSource, cols: tuple[str, ...], *, cast: bool, newest: str, packed: bool = False, epoch: str = "epoch_ns"
) -> str:
    """A group's rows that can join: keys, event time (as `__fti_et`, or epoch nanoseconds
    `__fti_t` when `packed`), the selected columns; none stamped after `newest`."""
    et = _ts(group.event_time, cast)
    sel = [_q(k) for k in group.primary_key]
    sel.append(f"{epoch}({et}) AS __fti_t" if packed else f"{et} AS __fti_et")
    sel += [_q(c) for c in cols if c not in group.primary_key]
    # Rows stamped after the newest label can never join: skip them before the sort.
    where = [f"{et} <= {newest}"] + [f"{_q(k)} IS NOT NULL" for k in group.primary_key]
    return f"SELECT {', '.join(sel)} FROM read_parquet({_files_sql(group.files)}) WHERE {' AND '.join(where)}"


def build_sql(plan: JoinPlan, *, windowed_start: bool, windowed_end: bool, cast: bool = True) -> str:
    """The join as one DuckDB ASOF LEFT JOIN query (parameters: start and/or end timestamps).

    The reference formulation, and the fallback when the keys cannot be packed (`asof`).
    `cast`: bring every event time to TIMESTAMPTZ_NS (needed when the sources' types differ;
    a join on a cast expression is slower, so it is skipped when they already agree).
    """
    et = _q(plan.spine.event_time)
    ctes = [f"spine AS ({_spine_sql(plan, windowed_start=windowed_start, windowed_end=windowed_end, cast=cast)})"]
    joins, picked = [], {}
    for i, (group, cols) in enumerate(plan.joins):
        alias = f"g{i}"
        ctes.append(f"{alias} AS ({_group_sql(group, cols, cast=cast, newest=f'(SELECT max({et}) FROM spine)')})")
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


def _join_packed(
    con: duckdb.DuckDBPyConnection,
    plan: JoinPlan,
    params: list,
    *,
    windowed_start: bool,
    windowed_end: bool,
    cast: bool,
    epoch: str,
) -> pa.Table | None:
    """DuckDB reads and filters, numpy finds each label's feature row (`asof`), Arrow takes
    the values. None when a group's keys cannot be packed into int64."""
    spine = con.sql(
        _spine_sql(plan, windowed_start=windowed_start, windowed_end=windowed_end, cast=cast, packed=True, epoch=epoch),
        params=params or None,
    ).to_arrow_table()
    # The newest label time rounded UP to the microsecond (a query parameter is a Python
    # datetime): a superset of the rows that can join; the lookup itself compares nanoseconds.
    top = pc.max(spine["__fti_t"]).as_py() if spine.num_rows else None
    per_us = 1000 if epoch == "epoch_ns" else 1
    newest = None if top is None else datetime.fromtimestamp(0, UTC) + timedelta(microseconds=-(-top // per_us))

    def lookup(join: tuple[GroupSource, tuple[str, ...]]) -> dict[str, pa.ChunkedArray] | None:
        group, cols = join
        cursor = con.cursor()  # one connection per thread; the time zone is per connection
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            sql = _group_sql(group, cols, cast=cast, newest="?", packed=True, epoch=epoch)
            rows = cursor.sql(sql, params=[newest]).to_arrow_table()
        finally:
            cursor.close()
        index = asof_indices(spine, rows, list(group.primary_key), "__fti_t")
        return None if index is None else {c: rows[c].take(index) for c in cols}

    # numpy's sort and search run on one core each: groups in parallel threads (they
    # release the GIL) overlap one group's lookup with another's Parquet scan or lookup.
    workers = max(1, min(len(plan.joins), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lookup, plan.joins))
    found = [part for part in parts if part is not None]
    if len(found) < len(parts):
        return None
    taken = {c: arr for part in found for c, arr in part.items()}
    return pa.table({c: taken[c] if c in taken else spine[c] for c in plan.output_columns})


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
        rows = con.sql(f"DESCRIBE SELECT {_q(group.event_time)} FROM read_parquet({_files_sql(group.files)})").fetchall()
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
) -> pa.Table:
    """Run the join: exactly one output row per label row in [start, end), ordered by the
    label's event time, keys and own columns.

    `engine`: "packed" (numpy lookup on packed keys), "duckdb" (one ASOF JOIN query) or
    "auto" (packed, falling back to duckdb when the keys cannot be packed). Both give
    the same rows in the same order.
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
            table = _join_packed(con, plan, params, cast=cast, epoch=epoch, **window)
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


def source_from_files(
    name: str,
    version: int,
    files: Iterable[str],
    primary_key: Iterable[str],
    event_time: str,
    columns: dict[str, str] | None = None,
) -> GroupSource:
    """A GroupSource for Parquet files outside a FeatureStore (benchmarks, tests)."""
    return GroupSource(
        name=name,
        version=version,
        files=tuple(files),
        primary_key=tuple(primary_key),
        event_time=event_time,
        columns=dict(columns or {}),
    )


__all__ = [
    "GroupSource",
    "JoinPlan",
    "build_sql",
    "connect",
    "plan_join",
    "point_in_time_join",
    "resolve_sources",
    "source_from_files",
]
