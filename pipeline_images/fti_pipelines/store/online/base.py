"""The abstract online store: the interface every backend implements (docs/stores.md).

An online store keeps the latest row per primary key per feature-group version; a
backend is picked by the URI scheme (registry.py). The semantics every backend shares:

- `write(group, version, primary_key, event_time, df)` upserts the latest row per key of
  `df` (pandas or Arrow): a row replaces the stored one only if its event time is not
  older, so replaying or re-materialising is idempotent and late rows never win.
  `replace=True` makes `df` the version's whole data (a `full` ingestion): keys absent
  from it are removed. `stage(...)` is the same write in two phases (see StagedWrite).
- Keys carry the feature-group version: v1 and v2 of a group are served side by side.
- Reads return plain Python scalars (codec.py), so a result is JSON-ready for a model server.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import pandas as pd
import pyarrow as pa

from .codec import encode_key_part, rfc3339_micros

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# A group name scoped by its namespace (tenancy.py): `<namespace>.<group>`.
SCOPED_IDENTIFIER = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.[a-z][a-z0-9_]{0,62}$")


def check_group(group: str, version: int) -> None:
    if not IDENTIFIER.match(str(group)) and not SCOPED_IDENTIFIER.match(str(group)):
        raise ValueError(f"feature group name {group!r} must match {IDENTIFIER.pattern}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"feature group version {version!r} must be a positive integer")


class EntityRead(NamedTuple):
    """One feature-group version an entity reader reads: `columns`, of which `micros` are
    timestamps wanted as int epoch microseconds (e.g. the event time, for a freshness metric)."""

    group: str
    version: int
    columns: tuple[str, ...]
    micros: tuple[str, ...] = ()


EntityReader = Callable[[Mapping[str, Any]], Sequence[Any]]
# read(key value) -> every read's columns, flat (no presence slots; `micros` as an entity
# reader gives them), or None when the entity lacks a row in any of the versions.
CompleteReader = Callable[[Any], Sequence[Any] | None]


def check_reads(store: OnlineStore, reads: Sequence[EntityRead]) -> list[tuple[EntityRead, dict, dict[str, str]]]:
    """(read, version info, kinds) per read; LookupError / KeyError / ValueError name what is wrong."""
    out = []
    for r in reads:
        check_group(r.group, r.version)
        info = store.cached_info(r.group, r.version, refresh=True)
        if info is None:
            raise LookupError(f"feature group {r.group} v{r.version} is not in the online store")
        store.select_columns(info, list(r.columns))
        kinds = {c["name"]: c["kind"] for c in info["columns"]}
        bad = [c for c in r.micros if c not in r.columns or kinds[c] != "timestamp"]
        if bad:
            raise ValueError(f"{r.group} v{r.version}: micros column(s) {bad} must be read timestamp columns")
        out.append((r, info, kinds))
    return out


class StagedWrite(abc.ABC):
    """An online write that is prepared but not visible: `commit()` publishes it whole, `abort()`
    (or leaving the `with` block without committing) discards it.

    Why two phases: the feature pipeline prepares the online rows (latest per key, encoding,
    for SQLite the inserts themselves inside an open transaction) while the batch is being
    validated and its Parquet files written, and publishes them only once the offline
    snapshot is committed; a batch that fails validation never reaches the online store.
    """

    @abc.abstractmethod
    def commit(self) -> int:
        """Publish; returns the number of rows inserted or replaced."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard; a no-op after commit."""

    def load(self) -> None:  # noqa: B027 - an optional hook: most backends have nothing to do early
        """Do the part of the write that stays invisible until commit, now (commit does it
        otherwise); a no-op where nothing can be written invisibly (a Redis upsert)."""

    def __enter__(self) -> StagedWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class EntityReaders(Protocol):
    """A source of entity readers on a connection of its own (see `OnlineStore.prepared_readers`)."""

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader: ...

    def complete_reader(self, reads: Sequence[EntityRead]) -> CompleteReader | None:
        """A reader of the entity's columns when it is in every version (`CompleteReader`),
        keyed by its one key column's value; None where the reads or the backend have none."""
        ...

    def close(self) -> None: ...


class OnlineStore(abc.ABC):
    """The methods every backend implements (see the module docstring for the semantics).

    A backend subclasses this, implements the abstract methods and is entered in the
    registry's table under its URI scheme(s); docs/stores.md lists the tests it must pass.
    """

    uri: str

    # The exceptions that mean "the store is unreachable or busy right now, try again":
    # a model server that meets one while loading stays up, not ready, and retries from
    # readiness instead of failing the revision. A backend adds its client's own.
    transient_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    def write(
        self,
        group: str,
        version: int,
        primary_key: list[str],
        event_time: str,
        df: pd.DataFrame | pa.Table,
        *,
        snapshot: int | None = None,
        unique_events: bool = False,
        replace: bool = False,
    ) -> int:
        """Upsert the latest row per key; returns the number of rows inserted or replaced.

        `snapshot` records which offline snapshot this materialises; `unique_events` promises
        that key + event time is unique in `df` (a deduplicated batch), which is faster;
        `replace` says `df` is the version's whole data: keys absent from it are removed.
        """
        with self.stage(
            group, version, primary_key, event_time, df, snapshot=snapshot, unique_events=unique_events, replace=replace
        ) as staged:
            return staged.commit()

    @abc.abstractmethod
    def stage(
        self,
        group: str,
        version: int,
        primary_key: list[str],
        event_time: str,
        df: pd.DataFrame | pa.Table,
        *,
        snapshot: int | None = None,
        unique_events: bool = False,
        replace: bool = False,
    ) -> StagedWrite:
        """`write`, prepared but not visible until the returned StagedWrite is committed."""

    def get(self, group: str, version: int, key: tuple, columns: list[str] | None = None) -> dict | None:
        """The stored row of one key, or None."""
        return self.get_many(group, version, [key], columns)[0]

    def get_many(self, group: str, version: int, keys: list[tuple], columns: list[str] | None = None) -> list[dict | None]:
        """The stored rows of `keys`, in order, None where a key has none (or the version is absent)."""
        check_group(group, version)
        info, wanted = self._resolve(group, version, columns)
        if info is None:
            return [None] * len(keys)
        return self._read_many(info, wanted, keys, {c["name"]: c["kind"] for c in info["columns"]}, group, version)

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        """A reader of one entity across feature-group versions: a model server's hot path.

        `read(keys)` takes the entity's key values by key column name (each version picks
        its primary key from them) and returns one flat sequence: per read, in order, a
        presence slot (None when the entity has no row in that version, else not None)
        then the read's columns, `micros` ones as int epoch microseconds, the others as
        `get` returns them; all None when absent. Metadata is resolved once, here.
        Backends override this to read every version in one statement or round trip;
        this default calls `get` per version.
        """
        plans = [
            (
                r.group,
                r.version,
                tuple(info["primaryKey"]),
                list(r.columns),
                tuple(i for i, c in enumerate(r.columns) if c in r.micros),
            )
            for r, info, _ in check_reads(self, reads)
        ]

        def read(keys: Mapping[str, Any]) -> list[Any]:
            flat: list[Any] = []
            for group, version, pk, columns, micros in plans:
                row = self.get(group, version, tuple(keys[c] for c in pk), columns)
                if row is None:
                    flat.extend([None] * (len(columns) + 1))
                    continue
                values = [row[c] for c in columns]
                for i in micros:
                    values[i] = rfc3339_micros(values[i])
                flat.append(True)
                flat.extend(values)
            return flat

        return read

    def complete_reader(self, reads: Sequence[EntityRead]) -> CompleteReader | None:
        """A `CompleteReader` of `reads`, or None (the default): the model server then uses
        `entity_reader` alone. A backend offers one (on its prepared readers) where it can
        answer "the entity in every version" more cheaply than with presence slots."""
        return None

    def prepared_readers(self) -> EntityReaders | None:
        """Entity readers a model server keeps for its whole life, on a connection of their
        own, where the backend has a faster way than `entity_reader` on the store itself;
        None (the default) means use the store's `entity_reader`. The caller closes them."""
        return None

    @abc.abstractmethod
    def _read_many(
        self, info: dict, wanted: list[str], keys: list[tuple], kinds: dict[str, str], group: str, version: int
    ) -> list[dict | None]:
        """The backend's read of resolved columns for `keys` (the version exists)."""

    @abc.abstractmethod
    def version_info(self, group: str, version: int) -> dict | None:
        """{rows, primaryKey, columns, eventTime, updatedAt, snapshot} or None if never written."""

    def has_version(self, group: str, version: int) -> bool:
        return self.version_info(group, version) is not None

    @abc.abstractmethod
    def drop_version(self, group: str, version: int) -> int:
        """Delete the version's data and metadata; returns the entities deleted (0 when it
        was not there: dropping twice is harmless). The version's readers then find it absent."""

    @abc.abstractmethod
    def versions(self, group: str | None = None) -> list[tuple[str, int]]:
        """(group, version) pairs present in the store."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cached_info(self, group: str, version: int, refresh: bool = False) -> dict | None:
        """Version metadata, cached: a model server reads it on every lookup."""
        cache: dict = self.__dict__.setdefault("_info_cache", {})
        cached = None if refresh else cache.get((group, version))
        if cached is None:
            cached = self.version_info(group, version)
            if cached is None:
                cache.pop((group, version), None)
            else:
                cache[(group, version)] = cached
        return cached

    def _resolve(self, group: str, version: int, columns: list[str] | None) -> tuple[dict | None, list[str]]:
        """(info, columns to return); re-reads the metadata once when a column is unknown,
        since a feature pipeline in another process may have added it since we cached."""
        info = self.cached_info(group, version)
        if info is None:
            return None, []
        try:
            return info, self.select_columns(info, columns)
        except KeyError:
            info = self.cached_info(group, version, refresh=True)
            if info is None:
                return None, []
            return info, self.select_columns(info, columns)

    def remember_info(self, group: str, version: int, info: dict) -> None:
        """Cache a version's metadata a write of this process just committed."""
        self.__dict__.setdefault("_info_cache", {})[(group, version)] = info

    def forget_info(self, group: str, version: int) -> None:
        """Drop a version's cached metadata (changed or dropped): the next read re-reads it."""
        self.__dict__.setdefault("_info_cache", {}).pop((group, version), None)

    @staticmethod
    def select_columns(info: dict, columns: list[str] | None) -> list[str]:
        stored = [c["name"] for c in info["columns"]]
        if columns is None:
            return stored
        unknown = [c for c in columns if c not in stored]
        if unknown:
            raise KeyError(f"column(s) {unknown} not in the online feature group (columns: {stored})")
        return list(columns)

    @staticmethod
    def key_tuple(key: Any, info: dict) -> tuple:
        """`key` (one value or a sequence) cast to the stored kinds of the version's primary key."""
        key = tuple(key) if isinstance(key, (tuple, list)) else (key,)
        pk = info["primaryKey"]
        if len(key) != len(pk):
            raise ValueError(f"key {key!r} has {len(key)} part(s); the primary key is {pk}")
        kinds = {c["name"]: c["kind"] for c in info["columns"]}
        return tuple(encode_key_part(v, kinds[c], c) for v, c in zip(key, pk, strict=False))
