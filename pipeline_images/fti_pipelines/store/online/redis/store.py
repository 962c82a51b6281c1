"""Redis backend of the online store: a packed record per entity, `fti:<group>:v<version>@<n>:<key>` (keys.py).

Why this shape: one string per entity (record.py) is one command argument for the server
to write and one `GET` to read. A first write or a full reload writes a new generation by
MSETs, an upsert runs the "newer event time wins" rule server-side in a Lua script over
2000 rows per call (write.py, upsert.py); both built as RESP bytes by Arrow (resp.py).
Install redis[hiredis]: its C parser reads the replies. Per-version metadata (primary key,
columns and their kinds, row count, the served generation and its layout) lives in
`fti-meta:<group>:v<version>`, outside the data key space.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qs, urlparse

import redis

from ..base import EntityRead, EntityReader, OnlineStore, check_group
from ..codec import decode
from ..latest import latest_per_key, to_arrow
from .keys import GEN_FIELD, META_PATTERN, TS_FIELD, base_prefix, key_suffix, meta_key, version_pattern
from .reader import MANY_LUA, entity_reader_on, record_picker
from .write import RedisStagedWrite, unlink_matching

MANY_CHUNK = 1000  # entities per get_many script call: a script blocks the server while it runs
# redis-py's default changed across releases (none in 5.x, 5 s in 8.x): without one a server
# that stops answering would hang a pipeline or a request for good, and with 5 s a large
# pipelined write fails on a busy server. Ours, unless the URI names its own
# (`?socket_timeout=0.5&socket_connect_timeout=2`): writes send large pipelines, so they get
# longer than the per-request entity readers of a model server, whose timeout becomes a
# retryable 503 (docs/stores.md, "Timeouts").
CONNECT_TIMEOUT = 5.0
WRITE_TIMEOUT = 60.0
READ_TIMEOUT = 2.0


def _timeouts(uri: str) -> tuple[dict[str, float], bool]:
    """Our defaults for what the URI leaves unset, and whether it sets the socket timeout itself."""
    named = parse_qs(urlparse(uri).query)
    ours = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": WRITE_TIMEOUT}
    return {k: v for k, v in ours.items() if k not in named}, "socket_timeout" in named


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisOnlineStore(OnlineStore):
    # redis-py's own: they do not derive from the builtin ConnectionError / TimeoutError.
    transient_errors = (*OnlineStore.transient_errors, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    def __init__(self, uri: str, client: redis.Redis | None = None):
        self.uri = uri
        defaults, self._timeout_named = _timeouts(uri)
        self._r = client or redis.Redis.from_url(uri, **defaults)
        self._reader: redis.Redis | None = None  # entity readers' own connection, made on first use

    # -- metadata -----------------------------------------------------------------------
    def version_info(self, group: str, version: int) -> dict | None:
        check_group(group, version)
        raw = self._r.hgetall(meta_key(group, version))
        if not raw:
            return None
        raw = {_text(k): _text(v) for k, v in raw.items()}
        if "info" not in raw:  # a version's first write has not committed its metadata yet
            return None
        info = json.loads(raw["info"])
        info["rows"] = int(raw.get("rows", 0))
        info["generation"] = int(raw.get(GEN_FIELD, 0))
        return info

    def versions(self, group: str | None = None) -> list[tuple[str, int]]:
        """Versions with committed metadata: a first write that has not switched yet (or died)
        leaves a metadata hash with only its generation counter (keys.py)."""
        metas = list(self._r.scan_iter(match=META_PATTERN.format(group=group or "*"), count=1000))
        with self._r.pipeline(transaction=False) as pipe:
            for key in metas:
                pipe.hexists(key, "info")
            committed = pipe.execute()
        out = []
        for key, has_info in zip(metas, committed, strict=True):
            if has_info:
                _, grp, ver = key.decode().split(":")
                out.append((grp, int(ver[1:])))
        return sorted(out)

    # -- writes -------------------------------------------------------------------------
    def stage(
        self, group, version, primary_key, event_time, df, *, snapshot=None, unique_events=False, replace=False
    ) -> RedisStagedWrite:
        check_group(group, version)
        table = latest_per_key(to_arrow(df), primary_key, event_time, unique_events=unique_events)
        return RedisStagedWrite(self, self._r, group, version, primary_key, event_time, table, snapshot, replace)

    def drop_version(self, group: str, version: int) -> int:
        """Delete every generation's data keys, then the metadata; returns the data keys deleted.

        Data first: a drop that dies half-way leaves the metadata, so the version still shows
        and the next drop finishes the job (nothing is orphaned out of sight)."""
        check_group(group, version)
        dropped = unlink_matching(self._r, version_pattern(group, version))
        self._r.delete(meta_key(group, version))
        self.forget_info(group, version)
        return dropped

    # -- reads --------------------------------------------------------------------------
    def entity_reader(self, reads: Sequence[EntityRead]) -> EntityReader:
        """One round trip per entity (reader.py).

        On a connection of its own (single_connection_client): redis-py then skips the
        pool's checkout and return on every call, a quarter of its client-side cost here.
        """
        if self._reader is None:
            pool = self._r.connection_pool  # the same server, TLS and credentials as the store's client
            kwargs = dict(pool.connection_kwargs)
            if not self._timeout_named:
                kwargs["socket_timeout"] = READ_TIMEOUT
                if "orig_socket_timeout" in kwargs:  # redis-py 8 keeps it to restore after maintenance
                    kwargs["orig_socket_timeout"] = READ_TIMEOUT
            self._reader = redis.Redis(
                connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs),
                single_connection_client=True,
            )
        return entity_reader_on(self._reader, self, reads)

    def _read_many(self, info, wanted, keys, kinds, group, version):
        # One script call per chunk, resolving the served generation in the same atomic call
        # as its HMGETs (reader.py): never a mix of two generations within a chunk.
        key_kinds = [kinds[c] for c in info["primaryKey"]]
        read = self._r.register_script(MANY_LUA)
        head = [base_prefix(group, version), 1 + len(wanted), TS_FIELD, *wanted]
        answers: list = []
        for start in range(0, len(keys), MANY_CHUNK):
            suffixes = [key_suffix(self.key_tuple(key, info), key_kinds) for key in keys[start : start + MANY_CHUNK]]
            answers.extend(read(keys=[meta_key(group, version)], args=[*head, *suffixes]))
        pick = record_picker(info, wanted, [kinds[c] for c in wanted])
        out: list[dict | None] = []
        for values in answers:
            if type(values) is bytes:  # a packed record (record.py)
                out.append(dict(zip(wanted, pick(values)[1:], strict=True)))
            elif values is None or values[0] is None:  # no record, or no __ts field: never written
                out.append(None)
            else:
                out.append({c: decode(v, kinds[c]) for c, v in zip(wanted, values[1:], strict=False)})
        return out

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._r.close()
