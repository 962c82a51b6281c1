"""The write side of the SQLite online store: one staged transaction per write.

Why this shape: the rows are converted to Python values when the write is staged, and
inserted by `load()` on a connection of its own inside one `BEGIN IMMEDIATE` transaction
that stays open until `commit()`: the feature pipeline inserts them while the batch is
being validated and publishes them after the offline commit (WAL readers never see them
before; a rollback throws them away). Three ways in, fastest first:

- a version's first load: plain INSERTs into the table created in the same transaction
  (rows are unique per key, so no conflict handling is needed);
- a replacing load (`replace=True`, a `full` ingestion): plain INSERTs into a fresh table
  that is swapped in at commit (DROP + RENAME in the transaction), so keys absent from the
  new data disappear and readers switch from the old table to the new one atomically;
- otherwise an UPSERT per row that keeps the stored row when it is newer.

Rows go in ordered by key (latest_per_key sorts them), so B-tree inserts are appends.
"""

from __future__ import annotations

import json
import sqlite3
from itertools import chain
from typing import Any

import pyarrow as pa

from ..base import OnlineStore, StagedWrite
from ..codec import column_kinds, now_rfc3339, quote, storage_values
from .schema import META, create_table, ensure_table, table_name

WRITE_CACHE_KIB = 512 * 1024  # page cache of a write's connection
ROWS_PER_INSERT = 200  # rows per INSERT statement (fewer if the columns would pass the parameter limit)


def python_values(column: pa.ChunkedArray) -> list[Any]:
    """The column as Python values: through numpy for numbers without nulls (~3x faster than
    Arrow's to_pylist, the same ints and floats), else to_pylist."""
    if not column.null_count and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return column.to_numpy().tolist()
    return column.to_pylist()


def insert_rows(cur: sqlite3.Cursor, head: str, tail: str, columns: list[list[Any]]) -> None:
    """`head VALUES (...), (...), ... tail` over `columns` (one list of values per column),
    up to ROWS_PER_INSERT rows per statement.

    Why not one executemany row at a time: sqlite3 releases and re-takes the GIL around
    every statement it steps, and each re-take can wait a switch interval (5 ms) for a
    thread that holds the GIL - pandera's, in the feature pipeline - so one row per statement
    is orders of magnitude slower next to such a thread; much bigger statements are slower
    again (bench/RESULTS.md, "Feature store").
    Keys are unique in the rows (latest per key), so rows of one statement never conflict.
    """
    n, width = len(columns[0]), len(columns)
    per = max(1, min(ROWS_PER_INSERT, cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    row = "(" + ", ".join("?" * width) + ")"

    def params(lo: int, hi: int) -> tuple[Any, ...]:  # row-major values of rows lo..hi
        return tuple(chain.from_iterable(zip(*[c[lo:hi] for c in columns], strict=False)))

    whole = n - n % per
    if whole:
        cur.executemany(f"{head} VALUES {', '.join([row] * per)}{tail}", (params(lo, lo + per) for lo in range(0, whole, per)))
    if whole < n:
        cur.execute(f"{head} VALUES {', '.join([row] * (n - whole))}{tail}", params(whole, n))


class SqliteStagedWrite(StagedWrite):
    """`table` (already one row per key) as Python values now, inserted by `load()` inside a
    transaction that `commit()` ends; see the module docstring."""

    def __init__(
        self,
        store: OnlineStore,
        path: str,
        group: str,
        version: int,
        primary_key: list[str],
        event_time: str,
        table: pa.Table,
        snapshot: int | None,
        replace: bool,
    ):
        """`store` is told the committed metadata (its cache); `path` is its database file."""
        self._store, self._path, self._group, self._version = store, path, group, version
        self._primary_key, self._event_time, self._schema = primary_key, event_time, table.schema
        self._snapshot, self._replace, self._done = snapshot, replace, False
        self._con: sqlite3.Connection | None = None
        self._n = table.num_rows
        # An all-null column converts to Nones whatever kind the store gives it, so the
        # values do not depend on the stored version: they are made here, without the database.
        kinds = column_kinds(table)
        self._values = [python_values(storage_values(table.column(c), kinds[c])) for c in table.column_names]

    def load(self) -> None:
        """Insert the rows, invisibly: the transaction stays open until commit or abort.

        Apart from the constructor so a caller can choose when the database work happens
        (the feature pipeline runs both in a thread while it validates)."""
        if self._con is not None or self._done:
            return
        group, version, primary_key = self._group, self._version, self._primary_key
        # A connection of its own: its open transaction is invisible to every reader, the
        # store's own connection included, and it may be committed from another thread.
        con = self._con = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            con.execute("PRAGMA synchronous=NORMAL")
            # a bulk load that outgrows the default 2 MB page cache spills pages to the WAL
            # mid-transaction; the cache grows only as the transaction needs it
            con.execute(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
            cur = con.cursor()
            cur.execute("BEGIN IMMEDIATE")
            row = cur.execute(f"SELECT info FROM {META} WHERE grp=? AND version=?", (group, version)).fetchone()
            known = json.loads(row[0]) if row else None
            if known is None:  # a table without metadata is invisible to readers: never build on it
                cur.execute(f"DROP TABLE IF EXISTS {quote(table_name(group, version))}")
            kinds = column_kinds(self._schema.empty_table(), {c["name"]: c["kind"] for c in known["columns"]} if known else None)
            columns = [{"name": n, "kind": k} for n, k in kinds.items()]
            # checks key, event time and kinds against the stored version; adds new columns
            self._info = ensure_table(cur, group, version, primary_key, self._event_time, columns)
            self._final = quote(table_name(group, version))
            self._swap: str | None = None
            target = self._final
            if self._replace and known is not None:
                self._swap = quote(table_name(group, version) + "__staged")
                cur.execute(f"DROP TABLE IF EXISTS {self._swap}")
                create_table(cur, self._swap, self._info["columns"], primary_key)
                target = self._swap
            fresh = known is None or self._swap is not None
            names = self._schema.names
            head = f"INSERT INTO {target} ({', '.join(quote(c) for c in names)})"
            tail = ""
            if not fresh:
                et = quote(self._event_time)
                updates = ", ".join(f"{quote(c)}=excluded.{quote(c)}" for c in names if c not in primary_key)
                tail = f" ON CONFLICT({', '.join(quote(c) for c in primary_key)}) DO " + (
                    f"UPDATE SET {updates} WHERE excluded.{et} >= {target}.{et}" if updates else "NOTHING"
                )
            before = con.total_changes
            insert_rows(cur, head, tail, self._values)
            self._written = con.total_changes - before
            self._rows = self._n if fresh else None
            self._values = []
        except BaseException:
            self.abort()
            raise

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("this staged write was already committed or aborted")
        self.load()
        assert self._con is not None
        cur = self._con.cursor()
        try:
            if self._swap is not None:
                cur.execute(f"DROP TABLE {self._final}")
                cur.execute(f"ALTER TABLE {self._swap} RENAME TO {self._final}")
            info: dict[str, Any] = self._info
            info["rows"] = (
                self._rows if self._rows is not None else cur.execute(f"SELECT count(*) FROM {self._final}").fetchone()[0]
            )
            info["updatedAt"] = now_rfc3339()
            if self._snapshot is not None:
                info["snapshot"] = self._snapshot
            cur.execute(
                f"INSERT OR REPLACE INTO {META} (grp, version, info) VALUES (?, ?, ?)",
                (self._group, self._version, json.dumps(info)),
            )
            cur.execute("COMMIT")
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._con.close()
        self._store.remember_info(self._group, self._version, info)
        return self._written

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._values = []
        if self._con is None:
            return
        try:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
        finally:
            self._con.close()
