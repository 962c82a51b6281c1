"""The Redis backend's entity reader: one round trip per entity, the model server's hot path.

Every feature-group version's HMGET goes in one script call (`__ts` is each version's
presence slot): one EVALSHA costs the client about a third of a two-command pipeline
(redis-py builds and tears down a Pipeline). The command is sent as prepared RESP bytes on
the reader's own connection and its answer read straight back: redis-py's generic
`execute_command` (argument encoding, retry wrapper, lock, response callbacks) was most
of the client's time. Any connection trouble goes through `execute_command`, which
reconnects and retries as usual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from ..base import EntityRead, EntityReader, OnlineStore, check_reads
from ..codec import decode, encode_key_part
from .keys import TS_FIELD, data_prefix, key_part, key_text

# One entity over several feature-group versions in one command. KEYS: one hash per
# version; ARGV: per hash, its field count then its fields.
READ_LUA = """
local out, at = {}, 1
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  out[i] = redis.call('HMGET', key, unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
return out
"""
READ_SHA = hashlib.sha1(READ_LUA.encode()).hexdigest()


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _resp_head(count: int, parts: list[bytes]) -> bytes:
    return b"*%d\r\n" % count + b"".join(_bulk(p) for p in parts)


def entity_reader_on(client: redis.Redis, store: OnlineStore, reads: Sequence[EntityRead]) -> EntityReader:
    """`OnlineStore.entity_reader` as one script call per entity on `client` (metadata from `store`)."""
    plans, fields = [], []
    for r, info, kinds in check_reads(store, reads):
        pk = tuple(info["primaryKey"])
        decoders = tuple(None if c in r.micros else kinds[c] for c in r.columns)
        plans.append((data_prefix(r.group, r.version), tuple(zip(pk, (kinds[c] for c in pk), strict=False)), decoders))
        fields += [1 + len(r.columns), TS_FIELD, *r.columns]
    execute = client.execute_command
    n = len(plans)
    conn = client.connection  # the single-connection client's own (RedisOnlineStore.entity_reader)
    head = _resp_head(3 + n + len(fields), [b"EVALSHA", READ_SHA.encode(), str(n).encode()])
    tail = b"".join(_bulk(str(f).encode()) for f in fields)

    def call(hashes: list[str]) -> Any:
        if conn is not None:
            try:
                conn.send_packed_command([head + b"".join(_bulk(h.encode()) for h in hashes) + tail], check_health=False)
                return conn.read_response()
            except redis.exceptions.NoScriptError:
                pass
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                conn.disconnect()  # execute_command reconnects (and retries) below
        try:
            return execute("EVALSHA", READ_SHA, n, *hashes, *fields)
        except redis.exceptions.NoScriptError:  # a restarted or flushed server: load it once more
            return execute("EVAL", READ_LUA, n, *hashes, *fields)

    def read(keys: Mapping[str, Any]) -> list[Any]:
        hashes = [
            prefix + ":".join(key_part(key_text(encode_key_part(keys[c], kind, c), kind)) for c, kind in pk)
            for prefix, pk, _ in plans
        ]
        answers = call(hashes)
        flat: list[Any] = []
        for (_, _, decoders), values in zip(plans, answers, strict=False):
            if values[0] is None:  # no __ts field: the key was never written
                flat.extend([None] * len(values))
                continue
            flat.append(values[0])
            flat.extend(
                decode(v, kind) if kind is not None else (None if v is None else int(v))
                for v, kind in zip(values[1:], decoders, strict=False)
            )
        return flat

    return read
