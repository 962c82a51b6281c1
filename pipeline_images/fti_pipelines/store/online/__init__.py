"""The online store: the latest row per primary key per feature-group version.

`open_online_store(uri)` picks the backend from the URI scheme (registry.py):

  sqlite:///abs/path.db    embedded default, one file (SQLAlchemy-style sqlite:////abs also works)
  redis://host:port/db     Redis (rediss:// for TLS)

The package's modules, one concern each: base.py the interface every backend implements
and its semantics, codec.py the value and key encoding they share, latest.py the latest
row per key a write stores, registry.py the URI scheme table, and one folder per backend
(sqlite/, redis/) with its store, staged write and entity reader. docs/stores.md says
how to add a backend and describes the key layout.
"""

from __future__ import annotations

from .base import CompleteReader, EntityRead, EntityReader, EntityReaders, OnlineStore, StagedWrite, check_group, check_reads
from .codec import (
    KINDS,
    column_kinds,
    decode,
    encode_key_part,
    kind_of,
    now_rfc3339,
    quote,
    rfc3339_micros,
    storage_values,
    to_rfc3339,
)
from .latest import latest_per_key, to_arrow
from .registry import BACKENDS, backend_for, open_online_store, transient_errors

__all__ = [
    "BACKENDS",
    "KINDS",
    "CompleteReader",
    "EntityRead",
    "EntityReader",
    "EntityReaders",
    "OnlineStore",
    "StagedWrite",
    "backend_for",
    "check_group",
    "check_reads",
    "column_kinds",
    "decode",
    "encode_key_part",
    "kind_of",
    "latest_per_key",
    "now_rfc3339",
    "open_online_store",
    "quote",
    "rfc3339_micros",
    "storage_values",
    "to_arrow",
    "to_rfc3339",
    "transient_errors",
]
