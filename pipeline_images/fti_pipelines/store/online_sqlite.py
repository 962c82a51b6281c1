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
from operator import itemgetter
from typing import Any, Mapping, Sequence

from .online import (EntityRead, EntityReader, OnlineStore, check_group, check_reads, decode, encode_key_part,
                     latest_per_key, quote, to_arrow)

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


# Kinds sqlite3 already returns as the plain Python value `decode` would give.
_PLAIN = ("int", "float", "string", "date")


def entity_select(store: OnlineStore, reads: Sequence[EntityRead]) -> tuple[str, tuple[tuple[str, str], ...], tuple]:
    """(sql, (key column, kind) per ?N parameter, decoder kind or None per result column).

    Why one statement: each sqlite3 `execute` costs a statement-cache lookup, a cursor and
    a VM run; LEFT JOINing every version's keyed probe onto one constant row reads them
    all in one statement for little more than a single probe, and a version without the
    entity leaves its columns NULL. Each version's first primary-key column is its
    presence slot: NOT NULL in a WITHOUT ROWID table, so NULL means "no row".
    """
    select: list[str] = []
    joins: list[str] = []
    decoders: list[str | None] = []
    params: dict[tuple[str, str], int] = {}
    for i, (r, info, kinds) in enumerate(check_reads(store, reads)):
        alias = f"g{i}"
        pk = info["primaryKey"]
        select.append(f"{alias}.{quote(pk[0])}")
        decoders.append(None)
        for c in r.columns:
            select.append(f"{alias}.{quote(c)}")
            decoders.append(None if kinds[c] in _PLAIN or c in r.micros else kinds[c])
        on = " AND ".join(f"{alias}.{quote(k)} = ?{params.setdefault((k, kinds[k]), len(params) + 1)}" for k in pk)
        joins.append(f"LEFT JOIN {quote(table_name(r.group, r.version))} AS {alias} ON {on}")
    return f"SELECT {', '.join(select)} FROM (SELECT 1) {' '.join(joins)}", tuple(params), tuple(decoders)


def entity_reader_on(con: sqlite3.Connection, store: OnlineStore, reads: Sequence[EntityRead],
                     lock: Any = None) -> EntityReader:
    """`OnlineStore.entity_reader` as one prepared SELECT on `con` (sqlite3 caches it by its text)."""
    sql, params, decoders = entity_select(store, reads)
    execute = con.execute
    decode_at = tuple((i, kind) for i, kind in enumerate(decoders) if kind is not None)
    plain = all(kind in ("int", "string") for _, kind in params)
    if len(params) == 1 and plain and lock is None and not decode_at:
        # The common case (one entity key, the server's own read-only connection), without
        # a Python step more than the statement needs: this is the model server's hot path.
        (key, _), = params

        def read(keys: Mapping[str, Any]) -> Sequence[Any]:
            return execute(sql, (keys[key],)).fetchone()

        return read
    if plain:  # keys already of the stored kind bind as they are (the lookup validated their type)
        pick = itemgetter(*(c for c, _ in params)) if params else (lambda keys: ())
        key_params = (lambda keys: (pick(keys),)) if len(params) == 1 else pick
    else:
        def key_params(keys: Mapping[str, Any]) -> tuple:
            return tuple(encode_key_part(keys[c], kind, c) for c, kind in params)

    def read(keys: Mapping[str, Any]) -> Sequence[Any]:
        if lock is None:
            row = execute(sql, key_params(keys)).fetchone()
        else:
            with lock:
                row = execute(sql, key_params(keys)).fetchone()
        if not decode_at:
            return row
        row = list(row)
        for i, kind in decode_at:
            row[i] = decode(row[i], kind)
        return row

    return read


def create_table(cur: sqlite3.Cursor, name: str, columns: list[dict], primary_key: list[str]) -> None:
    """The table of one version (`name` quoted): the primary key is the B-tree key, one probe per lookup."""
    defs = ", ".join(f"{quote(c['name'])} {SQL_TYPES[c['kind']]}" for c in columns)
    pk = ", ".join(quote(c) for c in primary_key)
    cur.execute(f"CREATE TABLE IF NOT EXISTS {name} ({defs}, PRIMARY KEY ({pk})) WITHOUT ROWID")


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
    def stage(self, group, version, primary_key, event_time, df, *, snapshot=None, unique_events=False,
              replace=False):
        from .online_sqlite_write import SqliteStagedWrite  # the write side, kept apart from the hot reads

        check_group(group, version)
        table = latest_per_key(to_arrow(df), primary_key, event_time, unique_events=unique_events)
        return SqliteStagedWrite(self, group, version, primary_key, event_time, table, snapshot, replace)

    def _ensure_table(self, cur: sqlite3.Cursor, group: str, version: int, primary_key: list[str],
                      event_time: str, columns: list[dict]) -> dict[str, Any]:
        row = cur.execute(f"SELECT info FROM {META} WHERE grp=? AND version=?", (group, version)).fetchone()
        name = quote(table_name(group, version))
        if row is None:
            create_table(cur, name, columns, primary_key)
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
    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        return entity_reader_on(self._con, self, reads, self._lock)

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


__all__ = ["SqliteOnlineStore", "entity_reader_on", "entity_select", "sqlite_path", "table_name"]
