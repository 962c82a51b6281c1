"""The write side of the Redis online store: a new generation by MSETs, or an upsert by a Lua script.

Why this shape: Redis has no transaction that could stay open while the feature pipeline
validates, but a generation of a version that readers do not read yet is as invisible.

- A replacing write (`replace=True`, a `full` ingestion) and a version's first write write
  the whole data into a new generation (keys `fti:<group>:v<n>#<gen>:...`, numbered from the
  metadata's `next` counter: keys.py) in `load()`, which the feature pipeline runs while it
  validates: no key can be there yet, so plain MSETs of packed records (record.py) do.
  `commit()` switches the metadata's `gen` and `layout` fields (with the new info and row
  count) in one MULTI/EXEC. Readers resolve `gen` in the same script call as their read
  (reader.py), so a lookup sees the old generation or the new one, never a mix and never a
  gap. A write that dies before the switch leaves an unread generation behind; a replacing
  write's switch, and a first write's that did not get number 1, then unlink every key of
  the version outside the new generation (one SCAN).
- Any other write upserts into the served generation at commit, in that generation's
  layout (upsert.py).

Either way every value is encoded as text by Arrow (for an upsert when the write is
staged, for a new generation a chunk at a time as it is sent), and the commands are built
as RESP bytes for many rows at once (resp.py): no per-row Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import redis

from ..base import OnlineStore, StagedWrite
from ..codec import column_kinds, now_rfc3339
from .keys import GEN_FIELD, LAYOUT_FIELD, NEXT_FIELD, PACKED, data_prefix, encode_keys, meta_key, version_pattern
from .record import column_texts, records
from .resp import mset_call, mset_pairs, script_keys, send_pipelined
from .upsert import Upsert, hash_upsert, packed_upsert, run_upsert

BATCH = 2000  # rows of a new generation sent before the previous batch's replies are read
MSET_ROWS = 250  # rows per MSET: fewer commands than rows, without blocking the server for long
CHUNK = 32 * BATCH  # rows whose commands are built at once, while the server runs the previous chunk's
SCAN_COUNT = 5000


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
        self._order = [c["name"] for c in info["columns"]]  # a record's columns: the version's, in its order
        self._n = table.num_rows
        # Texts of every row, for an upsert (and its keys): a new generation encodes them a
        # chunk at a time instead, as it sends (`_write_generation`).
        self._texts: tuple[pa.Array | pa.ChunkedArray, pa.ChunkedArray, dict[str, pa.ChunkedArray]] | None = None
        self._upserts: dict[bool, Upsert] = {}  # by "the served generation is packed"
        self._loaded: tuple[int, bool] | None = None  # the served generation and its form when load() wrote a new one
        self._generation: int | None = None  # the number load() took for it (keys.py)
        self._written = table.num_rows  # an upsert finds out at commit how many rows won
        if not (replace or stored_info is None):
            # built now, while the feature pipeline validates, for the served generation's
            # layout: commit sends them (and builds them again if a reload switched it since)
            self._upsert_rows(self._served()[2])

    def _encoded(self) -> tuple[pa.Array | pa.ChunkedArray, pa.ChunkedArray, dict[str, pa.ChunkedArray]]:
        """Key suffixes, event times and values of every row, as text."""
        if self._texts is None:
            ts, texts = column_texts(self._table, self._kinds, self._event_time)
            self._texts = encode_keys(self._table, self._primary_key, texts), ts, texts
        return self._texts

    def _upsert_rows(self, packed: bool) -> Upsert:
        if packed not in self._upserts:
            _, ts, texts = self._encoded()
            self._upserts[packed] = packed_upsert(ts, texts, self._kinds, self._order) if packed else hash_upsert(ts, texts)
        return self._upserts[packed]

    def _served(self) -> tuple[int, bool, bool]:
        """The generation readers read, whether the version has committed metadata, and
        whether that generation is packed (else a hash per entity: keys.py)."""
        stored, gen, layout = self._r.hmget(meta_key(self._group, self._version), ["info", GEN_FIELD, LAYOUT_FIELD])
        return int(gen or 0), stored is not None, layout == PACKED.encode()

    def _target(self, generation: int, packed: bool = True) -> str:
        return data_prefix(self._group, self._version, generation, packed)

    @staticmethod
    def _keys(target: str, suffixes: pa.Array | pa.ChunkedArray) -> pa.Array:
        return pc.binary_join_element_wise(pa.scalar(target), suffixes, "") if len(suffixes) else pa.array([], pa.string())

    def _write_generation(self, generation: int) -> None:
        """Write every row into `generation`, a number never handed out before (keys.py): no
        reader reads it and no key is there, so MSETs do.

        The commands are built CHUNK rows at a time, texts included, in a thread one chunk
        ahead of the one being sent (Arrow's kernels release the GIL): the server gets its
        first command after one chunk's encoding, not every row's, and never waits for the
        next chunk's (built lazily as the previous one's last batch went out, it left the
        server idle for most of each chunk's encoding: bench/RESULTS.md)."""
        r, n, target = self._r, self._n, self._target(generation)

        def build(lo: int) -> pa.Array:
            rows = self._table.slice(lo, min(CHUNK, n - lo))
            ts, texts = column_texts(rows, self._kinds, self._event_time)
            keys = self._keys(target, encode_keys(rows, self._primary_key, texts))
            return mset_pairs(keys, records(ts, texts, self._kinds, self._order))

        def batches() -> Iterator[tuple[list[bytes | memoryview], int]]:
            if not n:
                return
            with ThreadPoolExecutor(1, thread_name_prefix="fti-redis-encode") as pool:
                pending = pool.submit(build, 0)
                for following in [*range(CHUNK, n, CHUNK), None]:
                    pairs = pending.result()
                    if following is not None:
                        pending = pool.submit(build, following)
                    for a in range(0, len(pairs), BATCH):
                        b = min(a + BATCH, len(pairs))
                        spans = range(a, b, MSET_ROWS)
                        yield [piece for lo in spans for piece in mset_call(pairs, lo, min(lo + MSET_ROWS, b))], len(spans)

        send_pipelined(r, batches())

    def load(self) -> None:
        """A full reload or a version's first write: write the new generation now (readers read
        it only after commit's switch). An upsert of a served version cannot be invisible:
        commit sends it."""
        if self._generation is not None or self._done:
            return
        served, committed, packed = self._served()
        if self._replace or not committed:
            self._loaded = served, packed
            self._generation = int(self._r.hincrby(meta_key(self._group, self._version), NEXT_FIELD, 1))
            try:
                self._write_generation(self._generation)
            except BaseException:  # never published, not even by a retried commit; a later sweep removes it
                self._done = True
                raise

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("this staged write was already committed or aborted")
        self.load()
        self._done = True
        r, n, meta = self._r, self._n, meta_key(self._group, self._version)
        served, committed, packed = self._served()
        fresh = self._generation is not None
        if fresh and ((served, packed) != self._loaded or (committed and not self._replace)):
            self._discard()
            raise RuntimeError(
                f"online feature group {self._group} v{self._version} was written by another writer while this "
                "write was staged; nothing of it was published, run it again"
            )
        generation = self._generation if self._generation is not None else served
        if fresh:
            created = n
        else:
            keys = script_keys(self._keys(self._target(generation, packed), self._encoded()[0]))
            created, self._written = run_upsert(r, keys, self._upsert_rows(packed))
        info = self._info
        for derived in ("rows", "generation"):
            info.pop(derived, None)
        info["updatedAt"] = now_rfc3339()
        if self._snapshot is not None:
            info["snapshot"] = self._snapshot
        with r.pipeline(transaction=True) as tx:  # the switch: metadata and generation in one step
            tx.hset(meta, "info", json.dumps(info))
            if fresh:
                tx.hset(meta, mapping={"rows": n, GEN_FIELD: generation, LAYOUT_FIELD: PACKED})  # every key is a new row
            else:
                tx.hincrby(meta, "rows", created)
            tx.execute()
        self._store.forget_info(self._group, self._version)
        if fresh and (self._replace or generation > 1):
            # Every other generation of the version is garbage now: the one a reload replaced,
            # and any that a write which died or lost to this one left (a first write that got
            # number 1 knows there is none). One SCAN of the whole keyspace removes them.
            unlink_matching(r, version_pattern(self._group, self._version), keep=self._target(generation))
        return self._written

    def abort(self) -> None:
        """Discard; a generation `load` wrote is unlinked (its number is never handed out again)."""
        if self._done:
            return
        self._done = True
        self._discard()

    def _discard(self) -> None:
        if self._generation is not None:
            unlink_matching(self._r, self._target(self._generation) + "*")
