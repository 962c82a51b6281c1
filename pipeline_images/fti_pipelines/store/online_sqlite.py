"""SQLite backend of the online store: one file, one table per feature-group version.

Why this shape: a table per (group, version) with the primary key as its SQLite
PRIMARY KEY (WITHOUT ROWID) makes a lookup one B-tree probe and keeps versions side by
side; writes are one `executemany` UPSERT in one transaction in WAL mode, so readers
(the model server) never block on a materialisation and never see half of it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any


from .online import (OnlineStore, check_group, column_kinds, decode, latest_per_key, now_rfc3339, quote,
                     storage_values, to_arrow)

SQL_TYPES = {"int": "INTEGER", "float": "REAL", "bool": "INTEGER", "string": "TEXT", "timestamp": "INTEGER", "date": "TEXT"}
META = "fti_online_versions"
CHUNK = 500  # keys per lookup query, well under SQLite's bound-parameter limit


def sqlite_path(uri: str) -> str:
    rest = uri[len("sqlite:"):]
    if not rest.startswith("///"):
        raise ValueError(f"online store URI {uri!r}: expected sqlite:///absolute/path.db")
    return "/" + rest.lstrip("/")


def table_name(group: str, version: int) -> str:
    return f"fg__{group}__v{version}"


class SqliteOnlineStore(OnlineStore):
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
        self._info_cache: dict[tuple[str, int], dict] = {}

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
    def write(self, group, version, primary_key, event_time, df, *, snapshot=None, unique_events=False) -> int:
        check_group(group, version)
        table = latest_per_key(to_arrow(df), primary_key, event_time, unique_events=unique_events)
        known = self.version_info(group, version)
        kinds = column_kinds(table, {c["name"]: c["kind"] for c in known["columns"]} if known else None)
        columns = [{"name": n, "kind": k} for n, k in kinds.items()]
        name = quote(table_name(group, version))
        names = table.column_names
        col_sql = ", ".join(quote(c) for c in names)
        marks = ", ".join("?" for _ in names)
        updates = ", ".join(f"{quote(c)}=excluded.{quote(c)}" for c in names if c not in primary_key)
        et = quote(event_time)
        upsert = (f"INSERT INTO {name} ({col_sql}) VALUES ({marks}) ON CONFLICT({', '.join(quote(c) for c in primary_key)}) "
                  f"DO UPDATE SET {updates} WHERE excluded.{et} >= {name}.{et}")
        # Arrow converts each column to Python objects in C; zip makes the row tuples lazily.
        rows = zip(*(storage_values(table.column(c), kinds[c]).to_pylist() for c in names))
        with self._lock:
            cur = self._con.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                info = self._ensure_table(cur, group, version, primary_key, event_time, columns)
                before = self._con.total_changes
                cur.executemany(upsert, rows)
                written = self._con.total_changes - before
                info["rows"] = cur.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                info["updatedAt"] = now_rfc3339()
                if snapshot is not None:
                    info["snapshot"] = snapshot
                cur.execute(f"INSERT OR REPLACE INTO {META} (grp, version, info) VALUES (?, ?, ?)",
                            (group, version, json.dumps(info)))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        self._info_cache[(group, version)] = info
        return written

    def _ensure_table(self, cur: sqlite3.Cursor, group: str, version: int, primary_key: list[str],
                      event_time: str, columns: list[dict]) -> dict[str, Any]:
        row = cur.execute(f"SELECT info FROM {META} WHERE grp=? AND version=?", (group, version)).fetchone()
        name = quote(table_name(group, version))
        if row is None:
            defs = ", ".join(f"{quote(c['name'])} {SQL_TYPES[c['kind']]}" for c in columns)
            pk = ", ".join(quote(c) for c in primary_key)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {name} ({defs}, PRIMARY KEY ({pk})) WITHOUT ROWID")
            return {"primaryKey": list(primary_key), "eventTime": event_time, "columns": columns, "rows": 0}
        info = json.loads(row[0])
        if info["primaryKey"] != list(primary_key) or info["eventTime"] != event_time:
            raise ValueError(f"online feature group {group} v{version} is keyed by {info['primaryKey']} / "
                             f"{info['eventTime']}, not {list(primary_key)} / {event_time}; bump the version")
        stored = {c["name"]: c["kind"] for c in info["columns"]}
        for col in columns:
            if col["name"] not in stored:  # additive column: older rows read it as null
                cur.execute(f"ALTER TABLE {name} ADD COLUMN {quote(col['name'])} {SQL_TYPES[col['kind']]}")
                info["columns"].append(col)
            elif stored[col["name"]] != col["kind"]:
                raise ValueError(f"online feature group {group} v{version}: column {col['name']!r} is "
                                 f"{stored[col['name']]}, the new rows have {col['kind']}; bump the version")
        return info

    def drop_version(self, group: str, version: int) -> None:
        check_group(group, version)
        with self._lock:
            cur = self._con.cursor()
            cur.execute("BEGIN IMMEDIATE")
            cur.execute(f"DROP TABLE IF EXISTS {quote(table_name(group, version))}")
            cur.execute(f"DELETE FROM {META} WHERE grp=? AND version=?", (group, version))
            cur.execute("COMMIT")
        self._info_cache.pop((group, version), None)

    # -- reads --------------------------------------------------------------------------
    def _read_many(self, info, wanted, keys, kinds, group, version):
        pk = info["primaryKey"]
        fetch = list(dict.fromkeys([*pk, *wanted]))
        encoded = [self._key_tuple(k, info) for k in keys]
        name = quote(table_name(group, version))
        found: dict[tuple, dict] = {}
        key_sql = "(" + ", ".join(quote(c) for c in pk) + ")"
        row_marks = "(" + ", ".join("?" for _ in pk) + ")"
        with self._lock:
            for start in range(0, len(encoded), CHUNK):
                chunk = list(dict.fromkeys(encoded[start:start + CHUNK]))
                sql = (f"SELECT {', '.join(quote(c) for c in fetch)} FROM {name} WHERE {key_sql} IN "
                       f"(VALUES {', '.join(row_marks for _ in chunk)})")
                try:
                    rows = self._con.execute(sql, [p for k in chunk for p in k]).fetchall()
                except sqlite3.OperationalError:
                    if self._info(group, version, refresh=True) is None:  # dropped by another process
                        return [None] * len(keys)
                    raise
                for row in rows:
                    found[tuple(row[: len(pk)])] = dict(zip(fetch, row))
        out: list[dict | None] = []
        for key in encoded:
            row = found.get(key)
            out.append(None if row is None else {c: decode(row[c], kinds[c]) for c in wanted})
        return out

    def close(self) -> None:
        with self._lock:
            self._con.close()


__all__ = ["SqliteOnlineStore", "sqlite_path", "table_name"]
