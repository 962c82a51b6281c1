"""The SQLite backend's layout: one file, a metadata table, one table per feature-group version.

Why this shape: a table per (group, version) with the primary key as its SQLite PRIMARY
KEY (WITHOUT ROWID) makes a lookup one B-tree probe and keeps versions side by side. The
layout has this one owner; the store, its staged write and its entity reader build their
SQL from these names (docs/stores.md).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..codec import quote

SQL_TYPES = {"int": "INTEGER", "float": "REAL", "bool": "INTEGER", "string": "TEXT", "timestamp": "INTEGER", "date": "TEXT"}
META = "fti_online_versions"


def sqlite_path(uri: str) -> str:
    rest = uri[len("sqlite:") :]
    if not rest.startswith("///"):
        raise ValueError(f"online store URI {uri!r}: expected sqlite:///absolute/path.db")
    return "/" + rest.lstrip("/")


def table_name(group: str, version: int) -> str:
    return f"fg__{group}__v{version}"


def create_table(cur: sqlite3.Cursor, name: str, columns: list[dict], primary_key: list[str]) -> None:
    """The table of one version (`name` quoted): the primary key is the B-tree key, one probe per lookup."""
    defs = ", ".join(f"{quote(c['name'])} {SQL_TYPES[c['kind']]}" for c in columns)
    pk = ", ".join(quote(c) for c in primary_key)
    cur.execute(f"CREATE TABLE IF NOT EXISTS {name} ({defs}, PRIMARY KEY ({pk})) WITHOUT ROWID")


def ensure_table(
    cur: sqlite3.Cursor, group: str, version: int, primary_key: list[str], event_time: str, columns: list[dict]
) -> dict[str, Any]:
    """The version's metadata (not yet saved), its table created or given the new columns;
    ValueError when the key, event time or a column's kind differs from what is stored."""
    row = cur.execute(f"SELECT info FROM {META} WHERE grp=? AND version=?", (group, version)).fetchone()
    name = quote(table_name(group, version))
    if row is None:
        create_table(cur, name, columns, primary_key)
        return {"primaryKey": list(primary_key), "eventTime": event_time, "columns": columns, "rows": 0}
    info = json.loads(row[0])
    if info["primaryKey"] != list(primary_key) or info["eventTime"] != event_time:
        raise ValueError(
            f"online feature group {group} v{version} is keyed by {info['primaryKey']} / "
            f"{info['eventTime']}, not {list(primary_key)} / {event_time}; bump the version"
        )
    stored = {c["name"]: c["kind"] for c in info["columns"]}
    for col in columns:
        if col["name"] not in stored:  # additive column: older rows read it as null
            cur.execute(f"ALTER TABLE {name} ADD COLUMN {quote(col['name'])} {SQL_TYPES[col['kind']]}")
            info["columns"].append(col)
        elif stored[col["name"]] != col["kind"]:
            raise ValueError(
                f"online feature group {group} v{version}: column {col['name']!r} is "
                f"{stored[col['name']]}, the new rows have {col['kind']}; bump the version"
            )
    return info
