"""Upserts into the served generation: "the newer event time wins", server-side, per layout.

A write into a version that is already served cannot be staged invisibly (write.py): its
rows go into the generation readers read, each compared with the stored row by a Lua
script, BATCH rows per call, so an upsert is atomic per row and costs no extra round trips.
The generation's layout (keys.py) picks the script: a packed record per entity (record.py,
what this release writes) or a hash per entity (a generation an older release wrote).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import redis

from .record import records
from .resp import script_call, script_rows, send_pipelined

BATCH = 2000  # rows per script call: a script blocks the server while it runs

# A packed generation. KEYS: one key per row. ARGV[1]: the record fields (1 = the event
# time, 2 = the first column) this write does not carry, comma-separated, "" when it
# carries every column of the version; then one record per row, those fields empty. A
# row that wins replaces the record whole, except the fields it does not carry: those
# keep the stored record's values (a record shorter than the version's columns was
# written before they were added: theirs are null).
PACKED_UPSERT_LUA = """
local absent = {}
for p in string.gmatch(ARGV[1], '%d+') do absent[#absent + 1] = tonumber(p) end
local function fields(record)
  local out = {}
  for f in string.gmatch(record .. '\\31', '([^\\31]*)\\31') do out[#out + 1] = f end
  return out
end
local created, written = 0, 0
for i, key in ipairs(KEYS) do
  local record = ARGV[i + 1]
  local old = redis.call('GET', key)
  if not old then
    created = created + 1
  end
  if (not old) or tonumber(string.match(old, '^[^\\31]*')) <= tonumber(string.match(record, '^[^\\31]*')) then
    if old and #absent > 0 then
      local new, prev = fields(record), fields(old)
      for _, p in ipairs(absent) do new[p] = prev[p] or '' end
      record = table.concat(new, '\\31')
    end
    redis.call('SET', key, record)
    written = written + 1
  end
end
return {created, written}
"""

# A hash generation (an older release's). Nulls travel as a per-row mask ("" when the row
# has none) so the script never builds substrings (string.sub is slow in Lua). The script
# is generated per column count: a row without nulls is one HSET with its arguments
# written out, no Lua table built and unpacked per row. The generated text holds only
# ARGV indices, never a column name or value.
# KEYS: one hash key per row. ARGV: ncols, column names, then per row: ts, mask, ncols values.
_HASH_UPSERT_TEMPLATE = """
local ncols = tonumber(ARGV[1])
local stride = ncols + 2
local created, written = 0, 0
for i, key in ipairs(KEYS) do
  local base = 1 + ncols + (i - 1) * stride
  local ts = ARGV[base + 1]
  local mask = ARGV[base + 2]
  local old = redis.call('HGET', key, '__ts')
  if not old then created = created + 1 end
  if (not old) or tonumber(old) <= tonumber(ts) then
    if mask == '' then
      redis.call('HSET', key, '__ts', ts{FIELDS})
    else
      local fields, nulls = {'__ts', ts}, {}
      for c = 1, ncols do
        if string.byte(mask, c) == 49 then
          nulls[#nulls + 1] = ARGV[1 + c]
        else
          fields[#fields + 1] = ARGV[1 + c]
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
def hash_upsert_lua(ncols: int) -> str:
    """The hash generation's upsert script for rows of `ncols` columns (see the comment above)."""
    fields = "".join(f", ARGV[{1 + c}], ARGV[base + {2 + c}]" for c in range(1, ncols + 1))
    return _HASH_UPSERT_TEMPLATE.replace("{FIELDS}", fields)


class Upsert(NamedTuple):
    """One write's script calls, but for their keys: the script, the ARGV before the rows, the
    rows' framed ARGV and how many entries each row has."""

    script: bytes
    head: list[str]
    rows: pa.Array
    per_row: int


def packed_upsert(ts: pa.ChunkedArray, texts: dict[str, pa.ChunkedArray], kinds: dict[str, str], order: list[str]) -> Upsert:
    """The upsert of rows with `texts` into a packed generation of a version with columns `order`."""
    absent = ",".join(str(i + 2) for i, name in enumerate(order) if name not in texts)
    return Upsert(PACKED_UPSERT_LUA.encode(), [absent], script_rows([records(ts, texts, kinds, order)]), 1)


def null_mask(values: list[pa.ChunkedArray], n: int) -> pa.Array | pa.ChunkedArray:
    """Per row, one "1" (null) or "0" per column; "" for a row without nulls (the script's fast path)."""
    if not n or not any(v.null_count for v in values):
        return pa.array([""] * n, pa.string())
    flags = [pc.if_else(pc.is_null(v), "1", "0") for v in values]
    mask = pc.binary_join_element_wise(*flags, "")
    return pc.if_else(pc.match_substring(mask, "1"), mask, "")


def hash_upsert(ts: pa.ChunkedArray, texts: dict[str, pa.ChunkedArray]) -> Upsert:
    """The upsert of rows with `texts` into a hash generation (the columns they carry, only)."""
    names, values = list(texts), list(texts.values())
    rows = script_rows([ts, null_mask(values, len(ts)), *(v.fill_null("") for v in values)])
    return Upsert(hash_upsert_lua(len(names)).encode(), [str(len(names)), *names], rows, len(names) + 2)


def run_upsert(client: redis.Redis, keys: pa.Array, upsert: Upsert) -> tuple[int, int]:
    """Send `upsert` for the framed `keys`, BATCH rows per call, pipelined; returns the keys it
    created and the rows that won."""
    n = len(keys)
    calls = (
        (script_call(upsert.script, upsert.head, keys, upsert.rows, a, min(a + BATCH, n), upsert.per_row), 1)
        for a in range(0, n, BATCH)
    )
    created = written = 0
    for c, w in send_pipelined(client, calls):
        created += int(c)
        written += int(w)
    return created, written
