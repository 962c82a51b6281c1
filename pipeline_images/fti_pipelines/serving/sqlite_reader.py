"""The model server's SQLite entity reader, on its own read-only connection.

`OnlineStore.get` builds its SQL and decoders on every call (it serves any group,
any columns, any number of keys); a model server asks the same question millions of
times. `SqliteReaders.entity_reader` prepares, once, one SELECT that reads an entity
from every feature-group version the model needs (store/online_sqlite.py builds it, so
the storage layout has one owner; sqlite3 caches the compiled statement by its text).
It runs on a read-only connection of its own: in WAL mode readers never block the
feature pipeline's writes, see only committed data, and do not queue behind the
store's write lock.

Any other backend (Redis) is read through the store's own `entity_reader`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..store.online import EntityRead, EntityReader

MMAP_BYTES = 1 << 30  # address space, not memory: only pages actually read are mapped in


class SqliteReaders:
    """Prepared entity readers on one read-only connection to the store's database file."""

    def __init__(self, store: Any):
        from ..store.online_sqlite import sqlite_path

        self.store = store
        path = sqlite_path(store.uri)
        self._con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, cached_statements=256)
        # Pages straight from the OS page cache: without it each lookup that misses SQLite's
        # 2 MiB page cache pays a pread syscall per page (~1.3 µs each on a VM), and in WAL
        # mode every committed write empties that cache anyway. The store never shrinks
        # its file (no VACUUM), which is what makes a memory map unsafe.
        self._con.execute(f"PRAGMA mmap_size={MMAP_BYTES}")

    def close(self) -> None:
        self._con.close()

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        """`OnlineStore.entity_reader`'s contract, answered by one SELECT per entity."""
        from ..store.online_sqlite import entity_reader_on

        return entity_reader_on(self._con, self.store, reads)


def readers_for(store: Any) -> SqliteReaders | None:
    """Prepared readers when the store is the SQLite backend, else None (use the store's entity_reader)."""
    uri = getattr(store, "uri", "") or ""
    if not uri.startswith("sqlite:"):
        return None
    return SqliteReaders(store)
