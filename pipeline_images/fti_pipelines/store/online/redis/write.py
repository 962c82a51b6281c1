"""The write side of the Redis online store: a new generation by HSETs, or an upsert by a Lua script.

Why this shape: Redis has no transaction that could stay open while the feature pipeline
validates, but a generation of a version that readers do not read yet is as invisible.

- A replacing write (`replace=True`, a `full` ingestion) and a version's first write write
  the whole data into a new generation (keys `fti:<group>:v<n>@<gen>:...`, keys.py) in
  `load()`, which the feature pipeline runs while it validates: the generation is cleared
  first, so every key is new and a plain HSET per row does (the script below costs the
  server about twice as much per row). `commit()` switches the metadata's `gen` field (with
  the new info and row count) in one MULTI/EXEC, then a replacing write unlinks every key
  of the version outside the new generation. Readers resolve `gen` in the same script call
  as their HMGET (reader.py), so a lookup sees the old generation or the new one, never a
  mix and never a gap. A write that dies before the switch leaves an unread generation
  behind; the next write of that kind clears it before writing there, and a replacing
  write's switch removes any older leftovers.
- Any other write upserts into the served generation at commit: the "newer event time
  wins" rule runs server-side in a Lua script over BATCH rows per call, so an upsert is
  atomic per row and costs no extra round trips.

Either way every value is encoded as text by Arrow (for an upsert when the write is
staged, for a new generation a chunk at a time as it is sent), and the commands are built
as RESP bytes for many rows at once (resp.py): no per-row Python.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import redis

from ..base import OnlineStore, StagedWrite
from ..codec import column_kinds, now_rfc3339, storage_values
from .keys import GEN_FIELD, TS_FIELD, all_data_patterns, data_prefix, meta_key, version_pattern
from .resp import byte_range, hset_commands, hset_tails, script_call, script_keys, script_rows, send_pipelined

BATCH = 2000  # rows per script call, and per batch of HSETs sent before the previous batch's replies are read
CHUNK = 32 * BATCH  # rows whose HSETs are built at once, while the server runs the previous chunk's
SCAN_COUNT = 5000

# Nulls travel as a per-row mask ("" when the row has none) so the script never builds
# substrings (string.sub is slow in Lua). The script is generated per column count:
# a row without nulls is one HSET with its arguments written out, no Lua table built and
# unpacked per row (building one would cost the server more than the HSET itself). The
# generated text holds only ARGV indices, never a column name or value.
# KEYS: one hash key per row. ARGV: ncols, column names, then per row: ts, mask, ncols values.
_UPSERT_TEMPLATE = """
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
def upsert_lua(ncols: int) -> str:
    """The upsert script for rows of `ncols` columns (see the comment above)."""
    fields = "".join(f", ARGV[{1 + c}], ARGV[base + {2 + c}]" for c in range(1, ncols + 1))
    return _UPSERT_TEMPLATE.replace("{FIELDS}", fields)


def arrow_text(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    return storage_values(column, kind).cast(pa.string())


def encode_texts(table: pa.Table, kinds: dict[str, str], event_time: str) -> tuple[pa.ChunkedArray, list[pa.ChunkedArray]]:
    """The event time (us) as text, and every column as text (null where null)."""
    values = [arrow_text(table.column(name), kinds[name]) for name in table.column_names]
    return arrow_text(table.column(event_time), "timestamp"), values


def null_mask(values: list[pa.ChunkedArray], n: int) -> pa.Array | pa.ChunkedArray:
    """Per row, one "1" (null) or "0" per column; "" for a row without nulls (the script's fast path)."""
    if not n or not any(v.null_count for v in values):
        return pa.array([""] * n, pa.string())
    flags = [pc.if_else(pc.is_null(v), "1", "0") for v in values]
    mask = pc.binary_join_element_wise(*flags, "")
    return pc.if_else(pc.match_substring(mask, "1"), mask, "")


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
        stored_info = store.version_info(group, version)
        info = stored_info or {"primaryKey": list(primary_key), "eventTime": event_time, "columns": []}
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
        self._table, self._kinds, self._primary_key, self._event_time = table, kinds, primary_key, event_time
        self._names = table.column_names
        self._n = table.num_rows
        # Texts of every row, for an upsert (and its keys): a new generation encodes them a
        # chunk at a time instead, as it sends (`_write_generation`).
        self._texts: tuple[pa.Array | pa.ChunkedArray, pa.ChunkedArray, list[pa.ChunkedArray]] | None = None
        self._script_rows: pa.Array | None = None
        self._loaded: int | None = None  # the served generation when load() wrote the next one
        self._written = table.num_rows  # an upsert finds out at commit how many rows won
        if not (replace or stored_info is None):
            self._upsert_rows()  # built now, while the feature pipeline validates: commit sends them

    def _encoded(self) -> tuple[pa.Array | pa.ChunkedArray, pa.ChunkedArray, list[pa.ChunkedArray]]:
        """Key suffixes, event times and values of every row, as text."""
        if self._texts is None:
            self._texts = (
                encode_keys(self._table, self._primary_key, self._kinds),
                *encode_texts(self._table, self._kinds, self._event_time),
            )
        return self._texts

    def _upsert_rows(self) -> pa.Array:
        if self._script_rows is None:
            _, ts, values = self._encoded()
            mask = null_mask(values, self._n)
            self._script_rows = script_rows([ts, mask, *(v.fill_null("") for v in values)])
        return self._script_rows

    def _served(self) -> tuple[int, bool]:
        """The generation readers read, and whether the version has committed metadata."""
        stored, gen = self._r.hmget(meta_key(self._group, self._version), ["info", GEN_FIELD])
        return int(gen or 0), stored is not None

    def _target(self, generation: int) -> str:
        return data_prefix(self._group, self._version, generation)

    @staticmethod
    def _keys(target: str, suffixes: pa.Array | pa.ChunkedArray) -> pa.Array:
        return pc.binary_join_element_wise(pa.scalar(target), suffixes, "") if len(suffixes) else pa.array([], pa.string())

    def _write_generation(self, generation: int) -> None:
        """Write every row into `generation`, which no reader reads: cleared first of what a
        write that died before its switch left there, so every key is new and plain HSETs do.

        The commands are built CHUNK rows at a time, texts included, in a thread one chunk
        ahead of the one being sent (Arrow's kernels release the GIL): the server gets its
        first command after one chunk's encoding, not every row's, and never waits for the
        next chunk's (built lazily as the previous one's last batch went out, it left the
        server idle for most of each chunk's encoding: bench/RESULTS.md)."""
        r, n, target = self._r, self._n, self._target(generation)
        if self._replace:
            unlink_matching(r, target + "*")
        else:  # a first write: nothing of this version was committed, so any key of it is such a leftover
            unlink_matching(r, version_pattern(self._group, self._version))

        def build(lo: int) -> pa.Array:
            rows = self._table.slice(lo, min(CHUNK, n - lo))
            ts, values = encode_texts(rows, self._kinds, self._event_time)
            count, tails = hset_tails(ts, self._names, values, TS_FIELD)
            return hset_commands(self._keys(target, encode_keys(rows, self._primary_key, self._kinds)), count, tails)

        def batches() -> Iterator[tuple[list[bytes | memoryview], int]]:
            if not n:
                return
            with ThreadPoolExecutor(1, thread_name_prefix="fti-redis-encode") as pool:
                pending = pool.submit(build, 0)
                for following in [*range(CHUNK, n, CHUNK), None]:
                    commands = pending.result()
                    if following is not None:
                        pending = pool.submit(build, following)
                    for a in range(0, len(commands), BATCH):
                        b = min(a + BATCH, len(commands))
                        yield [byte_range(commands, a, b)], b - a

        send_pipelined(r, batches())

    def _upsert(self, generation: int) -> int:
        """Upsert every row into the served generation by the script; returns the keys it created."""
        n, names = self._n, self._names
        script, keys, rows = (
            upsert_lua(len(names)).encode(),
            script_keys(self._keys(self._target(generation), self._encoded()[0])),
            self._upsert_rows(),
        )
        head = [str(len(names)), *names]
        spans = [(start, min(start + BATCH, n)) for start in range(0, n, BATCH)]
        replies = send_pipelined(self._r, ((script_call(script, head, keys, rows, a, b, len(names) + 2), 1) for a, b in spans))
        created, self._written = _tally(replies, 0, 0)
        return created

    def load(self) -> None:
        """A full reload or a version's first write: write the new generation now (readers read
        it only after commit's switch). An upsert of a served version cannot be invisible:
        commit sends it."""
        if self._loaded is not None or self._done:
            return
        served, committed = self._served()
        if self._replace or not committed:
            self._loaded = served
            try:
                self._write_generation(served + 1)
            except BaseException:  # never published, not even by a retried commit; the next write clears it
                self._loaded, self._done = None, True
                raise

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("this staged write was already committed or aborted")
        self.load()
        self._done = True
        r, n, meta = self._r, self._n, meta_key(self._group, self._version)
        served, committed = self._served()
        if self._loaded is not None and (served != self._loaded or (committed and not self._replace)):
            raise RuntimeError(
                f"online feature group {self._group} v{self._version} was written by another writer while this "
                "write was staged; nothing of it was published, run it again"
            )
        fresh = self._loaded is not None
        generation = served + 1 if fresh else served
        created = n if fresh else self._upsert(generation)
        info = self._info
        for derived in ("rows", "generation"):
            info.pop(derived, None)
        info["updatedAt"] = now_rfc3339()
        if self._snapshot is not None:
            info["snapshot"] = self._snapshot
        with r.pipeline(transaction=True) as tx:  # the switch: metadata and generation in one step
            tx.hset(meta, "info", json.dumps(info))
            if fresh:
                tx.hset(meta, mapping={"rows": n, GEN_FIELD: generation})  # every key now is one of the new rows
            else:
                tx.hincrby(meta, "rows", created)
            tx.execute()
        self._store.forget_info(self._group, self._version)
        if self._replace:  # nobody reads the older generations any more
            for pattern in all_data_patterns(self._group, self._version):
                unlink_matching(r, pattern, keep=self._target(generation))
        return self._written

    def abort(self) -> None:
        """Discard; a generation `load` wrote is unlinked (the next write would clear it anyway)."""
        if self._done:
            return
        self._done = True
        if self._loaded is not None and self._served()[0] == self._loaded:
            unlink_matching(self._r, self._target(self._loaded + 1) + "*")


def _tally(results: list, created: int, written: int) -> tuple[int, int]:
    for c, w in results:
        created += int(c)
        written += int(w)
    return created, written
