"""A prepared single-key reader for the SQLite online store (the model server's hot path).

`OnlineStore.get` builds its SQL and decoders on every call (it serves any group,
any columns, any number of keys); a model server asks the same question millions of
times. This reader prepares, per (group, version, columns), one keyed SELECT (sqlite3
caches the compiled statement by its text) and the value decoders, once, on its own
read-only connection (WAL: readers never block the feature pipeline's writes and see
only committed data). Table names and value decoding come from the store's own
module, so the storage layout has one owner; the equality with `store.get` is tested.

Any other backend (Redis) is read through `store.get`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from ..store.online import decode, encode_key_part, quote

Reader = Callable[[tuple], "dict | None"]


def _plain(kind: str) -> bool:
    return kind in ("int", "float", "string")


class SqliteReaders:
    """Prepared readers on one read-only connection to the store's database file."""

    def __init__(self, store: Any):
        from ..store.online_sqlite import sqlite_path

        self.store = store
        path = sqlite_path(store.uri)
        self._con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, cached_statements=256)

    def close(self) -> None:
        self._con.close()

    def reader(self, group: str, version: int, columns: list[str], raw: tuple[str, ...] = ()) -> Reader:
        """A `get(key) -> dict | None` for these columns; `raw` columns come back as stored (no decoding)."""
        from ..store.online_sqlite import table_name

        info = self.store.version_info(group, version)
        if info is None:
            raise LookupError(f"feature group {group} v{version} is not in the online store")
        kinds = {c["name"]: c["kind"] for c in info["columns"]}
        missing = [c for c in columns if c not in kinds]
        if missing:
            raise KeyError(f"column(s) {missing} not in online feature group {group} v{version}")
        pk = list(info["primaryKey"])
        sql = (f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table_name(group, version))} "
               f"WHERE {' AND '.join(f'{quote(k)} = ?' for k in pk)}")
        names = tuple(columns)
        # None = SQLite already returns the plain Python value (int/float/str, or a raw column).
        decoders = tuple(None if (_plain(kinds[c]) or c in raw) else kinds[c] for c in columns)
        plain = all(d is None for d in decoders)
        key_kinds = tuple(kinds[k] for k in pk)
        plain_keys = all(k in ("int", "string") for k in key_kinds)
        execute = self._con.execute

        def read(key: tuple) -> dict | None:
            if not plain_keys:
                key = tuple(encode_key_part(v, kind, c) for v, kind, c in zip(key, key_kinds, pk))
            row = execute(sql, key).fetchone()
            if row is None:
                return None
            if plain:
                return dict(zip(names, row))
            return {n: v if k is None else decode(v, k) for n, v, k in zip(names, row, decoders)}

        return read


def readers_for(store: Any) -> SqliteReaders | None:
    """Prepared readers when the store is the SQLite backend, else None (use store.get)."""
    uri = getattr(store, "uri", "") or ""
    if not uri.startswith("sqlite:"):
        return None
    return SqliteReaders(store)
