"""Which backend serves an online-store URI: the one table of URI scheme -> backend class.

Adding a backend is one folder next to sqlite/ and redis/ plus one entry here
(docs/stores.md). The classes are named by "module:Class", relative to this package,
and imported on first use: a process opens one backend and need not import the others'
clients (a SQLite feature pipeline never loads redis-py), and this module, imported by
the package, imports no backend, so no backend can close an import circle through it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import OnlineStore

BACKENDS: dict[str, str] = {
    "sqlite": ".sqlite.store:SqliteOnlineStore",  # sqlite:///abs/path.db (sqlite:////abs works too)
    "redis": ".redis.store:RedisOnlineStore",  # redis://host:port/db
    "rediss": ".redis.store:RedisOnlineStore",  # Redis over TLS
    "unix": ".redis.store:RedisOnlineStore",  # Redis on a unix socket: unix:///path?db=0
}


def scheme_of(uri: str) -> str:
    return uri.split(":", 1)[0] if ":" in uri else ""


def backend_for(uri: str) -> type[OnlineStore]:
    """The backend class registered for `uri`'s scheme; ValueError names the known schemes."""
    target = BACKENDS.get(scheme_of(uri))
    if target is None:
        raise ValueError(
            f"online store URI {uri!r}: expected sqlite:///path.db or redis://host:port/db "
            f"(known schemes: {', '.join(sorted(BACKENDS))})"
        )
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module, __package__), name)


def open_online_store(uri: str, namespace: str | None = None) -> OnlineStore:
    """An online store for `sqlite:///path.db`, `redis://host:port/db` or another registered scheme;
    with `namespace`, that namespace's view of it (tenancy.py): what every pipeline opens."""
    backend: Any = backend_for(uri)  # a concrete backend class: its constructor takes the URI
    store: OnlineStore = backend(uri)
    if namespace is None:
        return store
    from .tenancy import NamespacedOnlineStore  # imported here: the package's __init__ imports this module

    return NamespacedOnlineStore(store, namespace)


def transient_errors(uri: str | None) -> tuple[type[BaseException], ...]:
    """The exceptions that mean the store at `uri` is unreachable for now (its backend's
    `transient_errors`); the generic ones when no or no known store is configured."""
    try:
        return backend_for(uri).transient_errors if uri else OnlineStore.transient_errors
    except ValueError:
        return OnlineStore.transient_errors
