"""The Redis backend's key layout: a hash per entity, a metadata hash per version.

  fti:<group>:v<version>:<key part>[:<key part>...]   one hash per entity: `__ts` + one field per column
  fti-meta:<group>:v<version>                          the version's metadata: `info` (JSON), `rows`

Why this shape: a hash per entity lets a lookup fetch just the columns a model needs
(HMGET); metadata lives outside the data key space, so a SCAN of a version's data keys
never meets it. The layout has this one owner: the store, its staged write and its
entity reader build their keys here (docs/stores.md).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

TS_FIELD = "__ts"  # event time in microseconds: the Lua scripts compare it numerically
META_PATTERN = "fti-meta:{group}:v*"  # SCAN pattern of the metadata keys (group "*" for all groups)


def data_prefix(group: str, version: int) -> str:
    """The prefix of every data key of one version (`+ "*"` is its SCAN pattern)."""
    return f"fti:{group}:v{version}:"


def meta_key(group: str, version: int) -> str:
    return f"fti-meta:{group}:v{version}"


def key_part(value: Any) -> str:
    # '%' and ':' are escaped so composite keys cannot collide ("a:b","c" vs "a","b:c").
    return str(value).replace("%", "%25").replace(":", "%3A")


def key_text(value: Any, kind: str) -> str:
    """The text of one (already kind-cast) key part, identical to what Arrow writes."""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return pa.scalar(value, pa.float64()).cast(pa.string()).as_py()
    return str(value)


def entity_key(group: str, version: int, parts: tuple, kinds: list[str]) -> str:
    """The hash key of one entity (key parts already cast to their stored kinds)."""
    return data_prefix(group, version) + ":".join(key_part(key_text(p, k)) for p, k in zip(parts, kinds, strict=False))
