"""The write side of the SQLite online store: one staged transaction per write.

Why this shape: a write runs on a connection of its own inside one `BEGIN IMMEDIATE`
transaction that stays open until `commit()`, so the rows can be inserted while the
feature pipeline is still validating the batch (WAL readers never see them) and thrown
away by a rollback if it fails. Three ways in, fastest first:

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
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .online import StagedWrite, column_kinds, now_rfc3339, quote, storage_values

if TYPE_CHECKING:
    from .online_sqlite import SqliteOnlineStore


class SqliteStagedWrite(StagedWrite):
    """Inserts `table` (already one row per key) on `con`, whose transaction is open; see the module docstring."""

    def __init__(self, store: "SqliteOnlineStore", con: sqlite3.Connection, group: str, version: int,
                 primary_key: list[str], event_time: str, table: pa.Table, snapshot: int | None, replace: bool):
        from .online_sqlite import META, create_table, table_name

        self._store, self._con, self._group, self._version = store, con, group, version
        self._snapshot, self._done = snapshot, False
        self._meta = META
        cur = con.cursor()
        try:
            row = cur.execute(f"SELECT info FROM {META} WHERE grp=? AND version=?", (group, version)).fetchone()
            known = json.loads(row[0]) if row else None
            if known is None:  # a table without metadata is invisible to readers: never build on it
                cur.execute(f"DROP TABLE IF EXISTS {quote(table_name(group, version))}")
            kinds = column_kinds(table, {c["name"]: c["kind"] for c in known["columns"]} if known else None)
            columns = [{"name": n, "kind": k} for n, k in kinds.items()]
            # checks key, event time and kinds against the stored version; adds new columns
            self._info = store._ensure_table(cur, group, version, primary_key, event_time, columns)
            self._final = quote(table_name(group, version))
            self._swap: str | None = None
            target = self._final
            if replace and known is not None:
                self._swap = quote(table_name(group, version) + "__staged")
                cur.execute(f"DROP TABLE IF EXISTS {self._swap}")
                create_table(cur, self._swap, self._info["columns"], primary_key)
                target = self._swap
            fresh = known is None or self._swap is not None
            names = table.column_names
            sql = f"INSERT INTO {target} ({', '.join(quote(c) for c in names)}) VALUES ({', '.join('?' for _ in names)})"
            if not fresh:
                et = quote(event_time)
                updates = ", ".join(f"{quote(c)}=excluded.{quote(c)}" for c in names if c not in primary_key)
                sql += (f" ON CONFLICT({', '.join(quote(c) for c in primary_key)}) DO "
                        + (f"UPDATE SET {updates} WHERE excluded.{et} >= {target}.{et}" if updates else "NOTHING"))
            # Arrow converts each column to Python objects in C; zip makes the row tuples lazily.
            rows = zip(*(storage_values(table.column(c), kinds[c]).to_pylist() for c in names))
            before = con.total_changes
            cur.executemany(sql, rows)
            self._written = con.total_changes - before
            self._rows = table.num_rows if fresh else None
        except BaseException:
            self.abort()
            raise

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("this staged write was already committed or aborted")
        cur = self._con.cursor()
        try:
            if self._swap is not None:
                cur.execute(f"DROP TABLE {self._final}")
                cur.execute(f"ALTER TABLE {self._swap} RENAME TO {self._final}")
            info: dict[str, Any] = self._info
            info["rows"] = self._rows if self._rows is not None else \
                cur.execute(f"SELECT count(*) FROM {self._final}").fetchone()[0]
            info["updatedAt"] = now_rfc3339()
            if self._snapshot is not None:
                info["snapshot"] = self._snapshot
            cur.execute(f"INSERT OR REPLACE INTO {self._meta} (grp, version, info) VALUES (?, ?, ?)",
                        (self._group, self._version, json.dumps(info)))
            cur.execute("COMMIT")
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._con.close()
        self._store._info_cache[(self._group, self._version)] = info
        return self._written

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
        finally:
            self._con.close()
