"""The Redis backend's key layout: a packed record per entity, a metadata hash per version.

  fti:<group>:v<version>#<n>:<key part>[:<key part>...]  one string per entity in generation n:
                                                        its event time and columns (record.py)
  fti:<group>:v<version>@<n>:<key part>[...]             a hash per entity in generation n, and
  fti:<group>:v<version>:<key part>[...]                 in generation 0: what older releases wrote
  fti-meta:<group>:v<version>                            the version's metadata: `info` (JSON), `rows`,
                                                        `gen` (the generation readers read; absent = 0),
                                                        `layout` (that generation's form; absent = hash),
                                                        `next` (the last generation number handed out)

Why this shape: metadata lives outside the data key space, so a SCAN of a version's data
keys never meets it. A full reload (`replace=True`) writes a new generation beside the
served one and switches `gen` in one transaction: readers resolve `gen` inside the same
script call as their read (reader.py), so they see the old or the new data, never a mix or
a gap (docs/stores.md).

Every generation this release writes is packed, under a number taken from `next` (HINCRBY):
never used before, so it holds no key of a write that died, and a write need not clear it
first (a SCAN walks the whole keyspace, every other group's keys included). A generation an
older release wrote holds a hash per entity (`__ts` and one field per column, a null an
absent field) under the `@`/`:` forms, and stays readable and writable until a full reload
replaces it: `layout` is switched together with `gen`. The layout has this one owner: the
store, its staged write and its entity reader build their keys here (docs/stores.md).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

TS_FIELD = "__ts"  # a hash generation's event time in microseconds: the Lua scripts compare it numerically
META_PATTERN = "fti-meta:{group}:v*"  # SCAN pattern of the metadata keys (group "*" for all groups)


GEN_FIELD = "gen"  # the meta hash field naming the generation readers read
LAYOUT_FIELD = "layout"  # the meta hash field naming that generation's form: PACKED, or absent (a hash per entity)
PACKED = "packed"
NEXT_FIELD = "next"  # the meta hash field counting the packed generation numbers handed out


def base_prefix(group: str, version: int) -> str:
    """What every data key of a version starts with, before its generation (`#<n>`, `@<n>`) and `:`."""
    return f"fti:{group}:v{version}"


def data_prefix(group: str, version: int, generation: int, packed: bool = True) -> str:
    """The prefix of every data key of one generation of a version (`+ "*"` is its SCAN pattern):
    a packed one's, or a hash one's as older releases named them."""
    if packed:
        return base_prefix(group, version) + f"#{generation}:"
    return base_prefix(group, version) + (f"@{generation}:" if generation else ":")


def version_pattern(group: str, version: int) -> str:
    """One SCAN pattern matching every data key of a version, whatever its generation: a SCAN
    walks the whole keyspace whatever it matches, so one pattern is one pass where a pattern
    per form of key would be one each."""
    return base_prefix(group, version) + "[:@#]*"


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


def encode_keys(table: pa.Table, primary_key: list[str], texts: dict[str, pa.ChunkedArray]) -> pa.Array | pa.ChunkedArray:
    """`key_suffix` of every row at once: the key columns' `texts` (as Arrow writes them),
    '%' and ':' escaped, joined by ':'; the keys without their generation's prefix."""
    if not table.num_rows:
        return pa.array([], pa.string())
    parts = [pc.replace_substring(pc.replace_substring(texts[c], "%", "%25"), ":", "%3A") for c in primary_key]
    return pc.binary_join_element_wise(*parts, ":")
