"""The SQLite backend's entity readers: one prepared SELECT per entity, the model server's hot path.

`OnlineStore.get` builds its SQL and decoders on every call (it serves any group,
any columns, any number of keys); a model server asks the same question millions of
times. `entity_reader_on` prepares, once, one SELECT that reads an entity from every
feature-group version the model needs (sqlite3 caches the compiled statement by its
text); the layout it reads is schema.py's.

`SqliteReaders` runs such readers on a read-only connection of its own (what
`SqliteOnlineStore.prepared_readers` gives a model server): in WAL mode readers never
block the feature pipeline's writes, see only committed data, and do not queue behind
the store's write lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from ..base import CompleteReader, EntityRead, EntityReader, OnlineStore, check_reads
from ..codec import decode, encode_key_part, quote
from .schema import sqlite_path, table_name

MMAP_BYTES = 1 << 30  # address space, not memory: only pages actually read are mapped in

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


def complete_select(store: OnlineStore, reads: Sequence[EntityRead]) -> str | None:
    """The SELECT of `complete_reader_on`, or None when the reads are not its shape.

    Why a second statement: an inner join over every version's keyed probe answers the
    usual case (the entity in every version) without presence slots, and each result
    column is a cost of its own per call (sqlite3 makes a Python object of every one);
    a version without the entity means no row at all. Its shape: every version keyed by
    the same one column of kind int or string (bound as it is), no column to decode.
    """
    select: list[str] = []
    where: list[str] = []
    key: str | None = None
    for i, (r, info, kinds) in enumerate(check_reads(store, reads)):
        alias, pk = f"g{i}", info["primaryKey"]
        if len(pk) != 1 or (key is not None and pk[0] != key) or kinds[pk[0]] not in ("int", "string"):
            return None
        key = pk[0]
        if any(kinds[c] not in _PLAIN and c not in r.micros for c in r.columns):
            return None
        select += (f"{alias}.{quote(c)}" for c in r.columns)
        where.append(f"{alias}.{quote(key)} = ?1")
    if not where:
        return None
    tables = ", ".join(f"{quote(table_name(r.group, r.version))} AS g{i}" for i, r in enumerate(reads))
    return f"SELECT {', '.join(select)} FROM {tables} WHERE {' AND '.join(where)}"


def complete_reader_on(con: sqlite3.Connection, store: OnlineStore, reads: Sequence[EntityRead]) -> CompleteReader | None:
    """`EntityReaders.complete_reader` as one prepared SELECT on `con`, or None (`complete_select`).

    The thread that built it (the server's event loop) reuses a cursor of its own, as
    `entity_reader_on`'s one-key reader does, and for the same reasons.
    """
    sql = complete_select(store, reads)
    if sql is None:
        return None
    execute = con.execute
    run = con.cursor().execute
    owner = threading.get_ident()
    ident = threading.get_ident

    def read_complete(key: Any) -> Sequence[Any] | None:
        if ident() == owner:
            return run(sql, (key,)).fetchone()
        return execute(sql, (key,)).fetchone()

    return read_complete


def entity_reader_on(con: sqlite3.Connection, store: OnlineStore, reads: Sequence[EntityRead], lock: Any = None) -> EntityReader:
    """`OnlineStore.entity_reader` as one prepared SELECT on `con` (sqlite3 caches it by its text)."""
    sql, params, decoders = entity_select(store, reads)
    execute = con.execute
    decode_at = tuple((i, kind) for i, kind in enumerate(decoders) if kind is not None)
    plain = all(kind in ("int", "string") for _, kind in params)
    if len(params) == 1 and plain and lock is None and not decode_at:
        # The common case (one entity key, the server's own read-only connection), without
        # a Python step more than the statement needs: this is the model server's hot path.
        # `con.execute` makes (and registers, and frees) a cursor per call; the thread that
        # built the reader (the server's event loop) reuses one of its own instead. A cursor
        # must not be shared between threads, so any other thread takes `con.execute`.
        # The statement returns one row: fetchone steps it to its end, which resets it,
        # so the reused cursor holds no read snapshot between calls.
        ((key, _),) = params
        run = con.cursor().execute
        owner = threading.get_ident()
        ident = threading.get_ident

        def read_one(keys: Mapping[str, Any]) -> Sequence[Any]:
            if ident() == owner:
                return run(sql, (keys[key],)).fetchone()
            return execute(sql, (keys[key],)).fetchone()

        return read_one
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


class SqliteReaders:
    """Prepared entity readers on one read-only connection to the store's database file."""

    def __init__(self, store: OnlineStore):
        self.store = store
        path = sqlite_path(store.uri)
        self._con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, cached_statements=256)
        # Pages straight from the OS page cache: without it each lookup that misses SQLite's
        # 2 MiB page cache pays a pread syscall per page, and in WAL
        # mode every committed write empties that cache anyway. The store never shrinks
        # its file (no VACUUM), which is what makes a memory map unsafe.
        self._con.execute(f"PRAGMA mmap_size={MMAP_BYTES}")

    def close(self) -> None:
        self._con.close()

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        """`OnlineStore.entity_reader`'s contract, answered by one SELECT per entity."""
        return entity_reader_on(self._con, self.store, reads)

    def complete_reader(self, reads: Sequence[EntityRead]) -> CompleteReader | None:
        """`EntityReaders.complete_reader`: one inner-joined SELECT per entity, when the reads allow it."""
        return complete_reader_on(self._con, self.store, reads)
