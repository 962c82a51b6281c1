"""The Redis backend's key layout: a hash per entity, a metadata hash per version.

  fti:<group>:v<version>:<key part>[:<key part>...]   one hash per entity: `__ts` + one field per column
  fti:<group>:v<version>@<n>:<key part>[...]           the same, in generation n >= 1 (a full reload's)
  fti-meta:<group>:v<version>                          the version's metadata: `info` (JSON), `rows`,
                                                       `gen` (the generation readers read; absent = 0)

Why this shape: a hash per entity lets a lookup fetch just the columns a model needs
(HMGET); metadata lives outside the data key space, so a SCAN of a version's data keys
never meets it. A full reload (`replace=True`) writes a new generation beside the served one
and switches `gen` in one transaction: readers resolve `gen` inside the same script call
as their HMGET (reader.py), so they see the old or the new data, never a mix or a gap
(docs/stores.md). The layout has this one owner: the store, its staged write and its
entity reader build their keys here (docs/stores.md).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

TS_FIELD = "__ts"  # event time in microseconds: the Lua scripts compare it numerically
META_PATTERN = "fti-meta:{group}:v*"  # SCAN pattern of the metadata keys (group "*" for all groups)


GEN_FIELD = "gen"  # the meta hash field naming the generation readers read


def base_prefix(group: str, version: int) -> str:
    """What every data key of a version starts with, before its generation (`@<n>`) and `:`."""
    return f"fti:{group}:v{version}"


def data_prefix(group: str, version: int, generation: int = 0) -> str:
    """The prefix of every data key of one generation of a version (`+ "*"` is its SCAN pattern)."""
    return base_prefix(group, version) + (f"@{generation}:" if generation else ":")


def all_data_patterns(group: str, version: int) -> tuple[str, str]:
    """SCAN patterns that together match every data key of a version, whatever its generation."""
    return base_prefix(group, version) + ":*", base_prefix(group, version) + "@*"


def version_pattern(group: str, version: int) -> str:
    """One SCAN pattern matching every data key of a version, whatever its generation."""
    return base_prefix(group, version) + "[:@]*"


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


def key_suffix(parts: tuple, kinds: list[str]) -> str:
    """The part of an entity's hash key after its generation's prefix (key parts already cast)."""
    return ":".join(key_part(key_text(p, k)) for p, k in zip(parts, kinds, strict=False))
