"""The write side of the Redis online store: encode in Arrow, upsert by a Lua script.

Why this shape: Redis has no transaction that could stay open while the feature pipeline
validates, so staging here means preparing - latest row per key, every value encoded as
text by Arrow (C speed), key strings built - and `commit()` sends it all. The "newer event
time wins" rule runs server-side in a Lua script over BATCH rows per call, so an upsert is
atomic per row and costs no extra round trips. With hiredis (redis[hiredis]) the packing
of the script's arguments is C too (pure-Python packing costs ~15 us per argument).

A replacing write (`replace=True`, a `full` ingestion) is atomic for readers: it writes
the new data whole into a new generation of the version (keys `fti:<group>:v<n>@<gen>:...`,
keys.py) that nobody reads yet, switches the metadata's `gen` field (with the new info and
row count) in one MULTI/EXEC, then unlinks every key of the version outside the new
generation. Readers resolve `gen` in the same script call as their HMGET (reader.py), so
a lookup sees the old generation or the new one, never a mix and never a gap. A reload
that dies before the switch leaves an unread generation behind; the next reload clears it
before writing there, and the next switch removes any older leftovers.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from ..base import OnlineStore, StagedWrite
from ..codec import column_kinds, now_rfc3339, storage_values
from .keys import GEN_FIELD, all_data_patterns, data_prefix, meta_key

BATCH = 2000  # rows per script call
FLUSH = 10  # script calls per pipeline round trip
SCAN_COUNT = 5000

# Nulls travel as a per-row mask ("" when the row has none) so the script never builds
# substrings (string.sub is slow in Lua). The script is generated per column count:
# a row without nulls is one HSET with its arguments written out, no Lua table built and
# unpacked per row (building one would cost the server more than the HSET itself). The
# generated text holds only ARGV indices, never a column name or value.
# KEYS: one hash key per row. ARGV: force ("1": replace the stored row whatever its event
# time), ncols, column names, then per row: ts, mask, ncols values.
_UPSERT_TEMPLATE = """
local force = ARGV[1] == '1'
local ncols = tonumber(ARGV[2])
local stride = ncols + 2
local created, written = 0, 0
for i, key in ipairs(KEYS) do
  local base = 2 + ncols + (i - 1) * stride
  local ts = ARGV[base + 1]
  local mask = ARGV[base + 2]
  local old = false
  if force then
    if redis.call('DEL', key) == 0 then created = created + 1 end  -- replaced whole, columns it lacks included
  else
    old = redis.call('HGET', key, '__ts')
    if not old then created = created + 1 end
  end
  if force or (not old) or tonumber(old) <= tonumber(ts) then
    if mask == '' then
      redis.call('HSET', key, '__ts', ts{FIELDS})
    else
      local fields, nulls = {'__ts', ts}, {}
      for c = 1, ncols do
        if string.byte(mask, c) == 49 then
          nulls[#nulls + 1] = ARGV[2 + c]
        else
          fields[#fields + 1] = ARGV[2 + c]
          fields[#fields + 1] = ARGV[base + 2 + c]
        end
      end
      if old and #nulls > 0 then
        redis.call('HDEL', key, unpack(nulls))  -- a value that is null now must not keep its old one
      end
      redis.call('HSET', key, unpack(fields))
    end
    written = written + 1
  end
end
return {created, written}
"""


@functools.lru_cache(maxsize=64)
def upsert_lua(ncols: int) -> str:
    """The upsert script for rows of `ncols` columns (see the comment above)."""
    fields = "".join(f", ARGV[{2 + c}], ARGV[base + {2 + c}]" for c in range(1, ncols + 1))
    return _UPSERT_TEMPLATE.replace("{FIELDS}", fields)


def arrow_text(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    return storage_values(column, kind).cast(pa.string())


def encode_rows(table: pa.Table, kinds: dict[str, str], event_time: str) -> np.ndarray:
    """Per row: event time (us), null mask, then every column as text ("" for null)."""
    n = table.num_rows
    values = [arrow_text(table.column(name), kinds[name]) for name in table.column_names]
    if n and any(v.null_count for v in values):
        flags = [pc.if_else(pc.is_null(v), "1", "0") for v in values]
        mask = pc.binary_join_element_wise(*flags, "")
        mask = pc.if_else(pc.match_substring(mask, "1"), mask, "")  # "" = no nulls in this row
    else:
        mask = pa.array([""] * n, pa.string())
    texts = [arrow_text(table.column(event_time), "timestamp"), mask, *(v.fill_null("") for v in values)]
    columns = [np.asarray(t.to_pylist(), dtype=object) for t in texts]
    return np.column_stack(columns) if n else np.empty((0, len(texts)), dtype=object)


def encode_keys(table: pa.Table, primary_key: list[str], kinds: dict[str, str]) -> pa.Array | pa.ChunkedArray:
    """Key parts joined by ':', '%' and ':' escaped (keys.key_suffix, vectorised): the keys
    without their generation's prefix, which is known only at commit."""
    if not table.num_rows:
        return pa.array([], pa.string())
    parts = [
        pc.replace_substring(pc.replace_substring(arrow_text(table.column(c), kinds[c]), "%", "%25"), ":", "%3A")
        for c in primary_key
    ]
    return pc.binary_join_element_wise(*parts, ":")


def with_prefix(suffixes: pa.Array | pa.ChunkedArray, prefix: str) -> list[str]:
    if not len(suffixes):
        return []
    return pc.binary_join_element_wise(pa.scalar(prefix), suffixes, "").to_pylist()


def unlink_matching(r: redis.Redis, pattern: str, keep: str | None = None) -> int:
    """UNLINK every key matching `pattern` (SCAN, in batches) except those starting with
    `keep`; returns how many. UNLINK frees the values in the server's background thread."""
    keep_bytes = keep.encode() if keep is not None else None
    stale: list[bytes] = []
    count = 0
    for key in r.scan_iter(match=pattern, count=SCAN_COUNT):
        if keep_bytes is not None and key.startswith(keep_bytes):
            continue
        stale.append(key)
        if len(stale) >= SCAN_COUNT:
            count += r.unlink(*stale)
            stale.clear()
    if stale:
        count += r.unlink(*stale)
    return count


class RedisStagedWrite(StagedWrite):
    """The encoded rows of one write, sent at commit; see the module docstring."""

    def __init__(
        self,
        store: OnlineStore,
        client: redis.Redis,
        group: str,
        version: int,
        primary_key: list[str],
        event_time: str,
        table: pa.Table,
        snapshot: int | None,
        replace: bool,
    ):
        """`store` gives the stored metadata and is told it changed; `client` is its connection."""
        info = store.version_info(group, version) or {"primaryKey": list(primary_key), "eventTime": event_time, "columns": []}
        if info["primaryKey"] != list(primary_key) or info["eventTime"] != event_time:
            raise ValueError(
                f"online feature group {group} v{version} is keyed by {info['primaryKey']} / "
                f"{info['eventTime']}, not {list(primary_key)} / {event_time}; bump the version"
            )
        kinds = column_kinds(table, {c["name"]: c["kind"] for c in info["columns"]})
        stored = {c["name"]: c["kind"] for c in info["columns"]}
        for name, kind in kinds.items():
            if name in stored and stored[name] != kind:
                raise ValueError(
                    f"online feature group {group} v{version}: column {name!r} is {stored[name]}, "
                    f"the new rows have {kind}; bump the version"
                )
            if name not in stored:
                info["columns"].append({"name": name, "kind": kind})
        self._store, self._r, self._group, self._version, self._info = store, client, group, version, info
        self._snapshot, self._replace, self._done = snapshot, replace, False
        self._names = table.column_names
        self._rows = encode_rows(table, kinds, event_time)
        self._suffixes = encode_keys(table, primary_key, kinds)

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("this staged write was already committed or aborted")
        self._done = True
        r, rows, n = self._r, self._rows, len(self._suffixes)
        meta = meta_key(self._group, self._version)
        served = int(r.hget(meta, GEN_FIELD) or 0)
        # A full reload goes into the next generation, unread until the switch below; left
        # over from a reload that died before its switch, it is cleared first.
        generation = served + 1 if self._replace else served
        target = data_prefix(self._group, self._version, generation)
        if self._replace:
            unlink_matching(r, target + "*")
        keys = with_prefix(self._suffixes, target)
        upsert = r.register_script(upsert_lua(len(self._names)))
        header = ["1" if self._replace else "0", len(self._names), *self._names]
        created = written = 0
        pipe = r.pipeline(transaction=False)
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            upsert(keys=keys[start:stop], args=header + rows[start:stop].ravel().tolist(), client=pipe)
            if (start // BATCH) % FLUSH == FLUSH - 1:
                created, written = _tally(pipe.execute(), created, written)
        created, written = _tally(pipe.execute(), created, written)
        info = self._info
        for derived in ("rows", "generation"):
            info.pop(derived, None)
        info["updatedAt"] = now_rfc3339()
        if self._snapshot is not None:
            info["snapshot"] = self._snapshot
        with r.pipeline(transaction=True) as tx:  # the switch: metadata and generation in one step
            tx.hset(meta, "info", json.dumps(info))
            if self._replace:
                tx.hset(meta, mapping={"rows": n, GEN_FIELD: generation})  # every key now is one of the new rows
            else:
                tx.hincrby(meta, "rows", created)
            tx.execute()
        self._store.forget_info(self._group, self._version)
        if self._replace:  # nobody reads the older generations any more
            for pattern in all_data_patterns(self._group, self._version):
                unlink_matching(r, pattern, keep=target)
        return written

    def abort(self) -> None:
        self._done = True  # nothing was sent before commit


def _tally(results: list, created: int, written: int) -> tuple[int, int]:
    for c, w in results:
        created += int(c)
        written += int(w)
    return created, written
