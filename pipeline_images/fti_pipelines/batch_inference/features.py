"""Feature tables for batch scoring, built once per run in DuckDB and joined chunk by chunk.

Per feature group the model reads, the offline Parquet of that version (the files of
its current snapshot, `FeatureStore.parquet_files`) is loaded into a DuckDB table in
a temporary on-disk database with a memory limit, so its size is bounded by the
feature data, never by the number of entities scored, and DuckDB spills if needed:

- as of one time (the run time, or `latest`): one row per key, the newest at or before
  that time -> an equality LEFT JOIN per chunk;
- per-row times (the input carries the event-time column): every row up to the run
  time, joined with an ASOF LEFT JOIN (`feature.event_time <= row time`), so a
  backfill gets point-in-time-correct features for each row.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from ..contract import PipelineError
from ..feature_view.join import connect
from ..serving.plan import GroupPlan

ROW = "__fti_row"
AS_OF = "__fti_as_of"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class GroupTable:
    group: GroupPlan
    table: str  # DuckDB table name
    found: str  # alias of the "row was found" flag column in the join result
    per_row: bool


class FeatureTables:
    """DuckDB tables of the feature groups; `join(chunk)` returns the looked-up columns per input row."""

    def __init__(self, filesystem: Any = None, *, memory_limit: str = "1GB", threads: int | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="fti-batch-")
        self.con = connect(filesystem, threads=threads, memory_limit=memory_limit)
        # An on-disk temp directory lets DuckDB spill instead of growing without bound.
        self.con.execute(f"SET temp_directory = '{os.path.join(self._dir.name, 'spill')}'")
        self.con.execute("SET preserve_insertion_order = false")
        self.tables: list[GroupTable] = []

    def close(self) -> None:
        self.con.close()
        self._dir.cleanup()

    def add(self, group: GroupPlan, files: list[str], *, as_of: datetime | None, per_row: bool) -> GroupTable:
        if not files:
            raise PipelineError(
                "FeaturesNotMaterialized",
                f"feature group {group.name} v{group.version} has no committed offline data",
                featureGroup=group.name,
                version=group.version,
            )
        if not group.event_time:
            raise PipelineError(
                "InvalidModelCard",
                f"model.json: feature group {group.name} v{group.version} has no eventTime; point-in-time lookup needs it",
            )
        i = len(self.tables)
        name = f"fg_{i}"
        keys = ", ".join(q(k) for k in group.primary_key)
        cols = ", ".join(q(c) for c in group.columns)
        et = q(group.event_time)
        where = f"WHERE {et} <= $as_of" if as_of is not None else ""
        source = "read_parquet($files, union_by_name = true)"
        if per_row:
            sql = f"CREATE TABLE {name} AS SELECT {keys}, {et} AS {AS_OF}, {cols}, TRUE AS __found FROM {source} {where}"
        else:
            sql = (
                f"CREATE TABLE {name} AS SELECT {keys}, {cols}, TRUE AS __found FROM {source} {where} "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {et} DESC) = 1"
            )
        params: dict[str, Any] = {"files": files}
        if as_of is not None:
            params["as_of"] = as_of
        try:
            self.con.execute(sql, params)
        except duckdb.Error as exc:
            raise PipelineError(
                "FeatureReadFailed",
                f"reading feature group {group.name} v{group.version} failed: {exc}",
                featureGroup=group.name,
                version=group.version,
            ) from exc
        table = GroupTable(group, name, f"__found_{i}", per_row)
        self.tables.append(table)
        return table

    def join(
        self,
        chunk: pa.Table,
        key_map: dict[str, str] | None = None,
        time_column: str | None = None,
        run_time: datetime | None = None,
    ) -> pa.Table:
        """Looked-up columns for each chunk row, in chunk order; `__found_<i>` is null where no feature row matched."""
        key_map = key_map or {}
        self.con.register("chunk", chunk.append_column(ROW, pa.array(range(chunk.num_rows), pa.int64())))
        try:
            selects = [f"c.{ROW}"]
            joins = []
            for i, t in enumerate(self.tables):
                alias = f"g{i}"
                on = " AND ".join(f"c.{q(key_map.get(k, k))} = {alias}.{q(k)}" for k in t.group.primary_key)
                if t.per_row:
                    row_time = f"c.{q(time_column)}" if time_column else "$run_time"
                    joins.append(f"ASOF LEFT JOIN {t.table} {alias} ON {on} AND {alias}.{AS_OF} <= {row_time}")
                else:
                    joins.append(f"LEFT JOIN {t.table} {alias} ON {on}")
                selects += [f"{alias}.{q(c)} AS {q(f'{t.table}.{c}')}" for c in t.group.columns]
                selects.append(f"{alias}.__found AS {t.found}")
            sql = f"SELECT {', '.join(selects)} FROM chunk c {' '.join(joins)} ORDER BY c.{ROW}"
            params = {"run_time": run_time} if "$run_time" in sql else None
            return self.con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise PipelineError("FeatureJoinFailed", f"joining features to the input failed: {exc}") from exc
        finally:
            self.con.unregister("chunk")
