"""The online store seen by one namespace: every group name carries the namespace.

A namespace's feature group `fraud` is stored as the group `<namespace>.fraud`: the SQLite
table `fg__<namespace>.fraud__v<n>`, the Redis keys `fti:<namespace>.fraud:v<n>:...` and
`fti-meta:<namespace>.fraud:v<n>` (docs/stores.md, "Key layout"). A namespace name has no
'.', so two namespaces can never name the same key, whatever their groups are called.

This is the one place the namespace enters the online store: `NamespacedOnlineStore`
delegates every call to the backend with the scoped group name and hands back the plain
name, so the backends' layouts stay as they are. Entity readers are built on the backend
with scoped names once, so a model server's lookups pay nothing per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import IDENTIFIER, CompleteReader, EntityRead, EntityReader, EntityReaders, OnlineStore, StagedWrite, check_group

SEPARATOR = "."


def scoped_group(namespace: str, group: str) -> str:
    """The group name the backend stores for `group` of `namespace`."""
    return f"{namespace}{SEPARATOR}{group}"


def scoped_read(namespace: str, read: EntityRead) -> EntityRead:
    return EntityRead(scoped_group(namespace, read.group), read.version, read.columns, read.micros)


class _ScopedReaders:
    """A backend's prepared readers, taking the namespace's plain group names."""

    def __init__(self, inner: EntityReaders, namespace: str):
        self.inner = inner
        self.namespace = namespace

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        return self.inner.entity_reader([scoped_read(self.namespace, r) for r in reads])

    def complete_reader(self, reads: Sequence[EntityRead]) -> CompleteReader | None:
        return self.inner.complete_reader([scoped_read(self.namespace, r) for r in reads])

    def close(self) -> None:
        self.inner.close()


class NamespacedOnlineStore(OnlineStore):
    """One namespace's view of an online store (see the module docstring)."""

    def __init__(self, inner: OnlineStore, namespace: str):
        self.inner = inner
        self.namespace = namespace
        self.uri = inner.uri
        self.transient_errors = inner.transient_errors

    def _scoped(self, group: str, version: int) -> str:
        if not IDENTIFIER.match(str(group)):  # the plain name: a caller cannot reach another namespace
            raise ValueError(f"feature group name {group!r} must match {IDENTIFIER.pattern}")
        check_group(group, version)
        return scoped_group(self.namespace, group)

    def stage(
        self,
        group: str,
        version: int,
        primary_key: list[str],
        event_time: str,
        df: Any,
        *,
        snapshot: int | None = None,
        unique_events: bool = False,
        replace: bool = False,
    ) -> StagedWrite:
        return self.inner.stage(
            self._scoped(group, version),
            version,
            primary_key,
            event_time,
            df,
            snapshot=snapshot,
            unique_events=unique_events,
            replace=replace,
        )

    def get_many(self, group: str, version: int, keys: list[tuple], columns: list[str] | None = None) -> list[dict | None]:
        return self.inner.get_many(self._scoped(group, version), version, keys, columns)

    def _read_many(
        self, info: dict, wanted: list[str], keys: list[tuple], kinds: dict[str, str], group: str, version: int
    ) -> list[dict | None]:
        return self.get_many(group, version, keys, wanted)

    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        for r in reads:
            self._scoped(r.group, r.version)  # checks the plain name
        return self.inner.entity_reader([scoped_read(self.namespace, r) for r in reads])

    def prepared_readers(self) -> EntityReaders | None:
        readers = self.inner.prepared_readers()
        return None if readers is None else _ScopedReaders(readers, self.namespace)

    def version_info(self, group: str, version: int) -> dict | None:
        return self.inner.version_info(self._scoped(group, version), version)

    def cached_info(self, group: str, version: int, refresh: bool = False) -> dict | None:
        return self.inner.cached_info(self._scoped(group, version), version, refresh=refresh)

    def drop_version(self, group: str, version: int) -> int:
        return self.inner.drop_version(self._scoped(group, version), version)

    def versions(self, group: str | None = None) -> list[tuple[str, int]]:
        prefix = scoped_group(self.namespace, "")
        pairs = self.inner.versions(None if group is None else self._scoped(group, 1))
        return [(g[len(prefix) :], v) for g, v in pairs if g.startswith(prefix)]

    def close(self) -> None:
        self.inner.close()
