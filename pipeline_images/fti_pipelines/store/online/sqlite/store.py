"""SQLite backend of the online store: one file, one table per feature-group version.

Why this shape: a table per (group, version) with the primary key as its SQLite
PRIMARY KEY (WITHOUT ROWID) makes a lookup one B-tree probe and keeps versions side by
side (schema.py); a write is one transaction in WAL mode (write.py), so readers (the
model server) never block on a materialisation and never see half of it; a model
server reads an entity in one prepared statement (reader.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence

from ..base import EntityRead, EntityReader, OnlineStore, check_group
from ..codec import decode, quote
from ..latest import latest_per_key, to_arrow
from .reader import SqliteReaders, entity_reader_on
from .schema import META, sqlite_path, table_name
from .write import SqliteStagedWrite

CHUNK = 500  # keys per lookup query, well under SQLite's bound-parameter limit


class SqliteOnlineStore(OnlineStore):
    # "database is locked" past the busy timeout, or a file that cannot be opened (yet):
    # both pass once the other writer finishes or the volume is there.
    transient_errors = (*OnlineStore.transient_errors, sqlite3.OperationalError)

    def __init__(self, uri: str):
        self.uri = uri
        self.path = sqlite_path(uri)
        self._lock = threading.RLock()  # one connection shared by a threaded model server
        self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
        self._con.execute(
            f"CREATE TABLE IF NOT EXISTS {META} (grp TEXT NOT NULL, version INTEGER NOT NULL, info TEXT NOT NULL, "
            "PRIMARY KEY (grp, version))"
        )

    # -- metadata -----------------------------------------------------------------------
    def version_info(self, group: str, version: int) -> dict | None:
        check_group(group, version)
        with self._lock:
            row = self._con.execute(f"SELECT info FROM {META} WHERE grp=? AND version=?", (group, version)).fetchone()
        return json.loads(row[0]) if row else None

    def versions(self, group: str | None = None) -> list[tuple[str, int]]:
        with self._lock:
            rows = self._con.execute(f"SELECT grp, version FROM {META} ORDER BY grp, version").fetchall()
        return [(g, v) for g, v in rows if group is None or g == group]

    # -- writes -------------------------------------------------------------------------
    def stage(self, group, version, primary_key, event_time, df, *, snapshot=None, unique_events=False, replace=False):
        check_group(group, version)
        table = latest_per_key(to_arrow(df), primary_key, event_time, unique_events=unique_events)
        return SqliteStagedWrite(self, self.path, group, version, primary_key, event_time, table, snapshot, replace)

    def drop_version(self, group: str, version: int) -> int:
        check_group(group, version)
        name = quote(table_name(group, version))
        with self._lock:
            cur = self._con.cursor()
            cur.execute("BEGIN IMMEDIATE")
            exists = cur.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table_name(group, version),))
            rows = cur.execute(f"SELECT count(*) FROM {name}").fetchone()[0] if exists.fetchone() else 0
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"DELETE FROM {META} WHERE grp=? AND version=?", (group, version))
            cur.execute("COMMIT")
        self.forget_info(group, version)
        return int(rows)

    # -- reads --------------------------------------------------------------------------
    def prepared_readers(self) -> SqliteReaders:
        """Readers on a read-only connection of their own (reader.py says why)."""
        return SqliteReaders(self)

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        return entity_reader_on(self._con, self, reads, self._lock)

    def _read_many(self, info, wanted, keys, kinds, group, version):
        pk = info["primaryKey"]
        fetch = list(dict.fromkeys([*pk, *wanted]))
        encoded = [self.key_tuple(k, info) for k in keys]
        name = quote(table_name(group, version))
        found: dict[tuple, dict] = {}
        key_sql = "(" + ", ".join(quote(c) for c in pk) + ")"
        row_marks = "(" + ", ".join("?" for _ in pk) + ")"
        with self._lock:
            for start in range(0, len(encoded), CHUNK):
                chunk = list(dict.fromkeys(encoded[start : start + CHUNK]))
                sql = (
                    f"SELECT {', '.join(quote(c) for c in fetch)} FROM {name} WHERE {key_sql} IN "
                    f"(VALUES {', '.join(row_marks for _ in chunk)})"
                )
                try:
                    rows = self._con.execute(sql, [p for k in chunk for p in k]).fetchall()
                except sqlite3.OperationalError:
                    if self.cached_info(group, version, refresh=True) is None:  # dropped by another process
                        return [None] * len(keys)
                    raise
                for row in rows:
                    found[tuple(row[: len(pk)])] = dict(zip(fetch, row, strict=False))
        out: list[dict | None] = []
        for key in encoded:
            row = found.get(key)
            out.append(None if row is None else {c: decode(row[c], kinds[c]) for c in wanted})
        return out

    def close(self) -> None:
        with self._lock:
            self._con.close()
