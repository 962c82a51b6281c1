"""Duplicates on primary key + event time within one batch: the rule of every write to a
feature-group version (docs/store-layout.md); the later input row wins."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa


def all_distinct(values: np.ndarray) -> bool:
    """No value repeats. Sorting and comparing neighbours costs ~5x less CPU than a hash set
    (pandas' is_unique) on 1M 64-bit hashes: numpy's sort of integers is vectorised."""
    ordered = np.sort(values)
    return not bool(np.any(ordered[1:] == ordered[:-1]))


def dedup(table: pa.Table, primary_key: list[str], event_time: str) -> tuple[pa.Table, int]:
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
