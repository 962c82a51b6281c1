"""The Redis backend's entity reader: one round trip per entity, the model server's hot path.

Every feature-group version's read goes in one script call, which also resolves the
generation each version is served from and its layout (keys.py): a `GET` of the entity's
packed record (record.py), or for a generation an older release wrote the `HMGET` of its
hash (`__ts` is its presence slot). One EVALSHA costs the client about a third of a
two-command pipeline (redis-py builds and tears down a Pipeline). The command is sent as
prepared RESP bytes on the reader's own connection and its answer read straight back:
redis-py's generic `execute_command` (argument encoding, retry wrapper, lock, response
callbacks) was most of the client's time. Any connection trouble goes through
`execute_command`, which reconnects and retries as usual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from ..base import EntityRead, EntityReader, OnlineStore, check_reads
from ..codec import encode_key_part
from .keys import TS_FIELD, base_prefix, key_part, key_text, meta_key
from .record import picker, text_decoder, value_decoder

# One entity over several feature-group versions in one command. KEYS: the metadata hash of
# each version. ARGV: the entity's key suffix per version, then per version its base prefix,
# its field count and its fields (read from a hash generation). The generation a version's
# readers read (`gen`, switched with its `layout` by a full reload in one transaction) is
# resolved here, in the same atomic call as the read: a lookup sees the old generation or
# the new one, never a mix or a gap (keys.py). A packed version's answer is its record (or
# nil), a hash version's the list of its fields.
READ_LUA = """
local n = #KEYS
local out, at = {}, n + 1
for i, meta in ipairs(KEYS) do
  local served = redis.call('HMGET', meta, 'gen', 'layout')
  local gen = served[1]
  local k = tonumber(ARGV[at + 1])
  if served[2] == 'packed' then
    out[i] = redis.call('GET', ARGV[at] .. '#' .. gen .. ':' .. ARGV[i])
  else
    local key = ARGV[at] .. ((gen and gen ~= '0') and ('@' .. gen .. ':') or ':') .. ARGV[i]
    out[i] = redis.call('HMGET', key, unpack(ARGV, at + 2, at + 1 + k))
  end
  at = at + k + 2
end
return out
"""
READ_SHA = hashlib.sha1(READ_LUA.encode()).hexdigest()

# Many entities of one version (`get_many`), the same way. KEYS: the version's metadata hash.
# ARGV: its base prefix, the field count, the fields, then one key suffix per entity.
MANY_LUA = """
local served = redis.call('HMGET', KEYS[1], 'gen', 'layout')
local gen = served[1]
local k = tonumber(ARGV[2])
local out = {}
if served[2] == 'packed' then
  local prefix = ARGV[1] .. '#' .. gen .. ':'
  for i = 3 + k, #ARGV do
    out[#out + 1] = redis.call('GET', prefix .. ARGV[i])
  end
else
  local prefix = ARGV[1] .. ((gen and gen ~= '0') and ('@' .. gen .. ':') or ':')
  for i = 3 + k, #ARGV do
    out[#out + 1] = redis.call('HMGET', prefix .. ARGV[i], unpack(ARGV, 3, 2 + k))
  end
end
return out
"""


def record_picker(info: dict, columns: Sequence[str], kinds: Sequence[str | None]) -> Callable[[bytes], list[Any]]:
    """Reads a packed record into [event time (the presence slot), *columns], each of `kinds`
    (None: a timestamp as int micros); positions from the version's column order."""
    position = {c["name"]: i + 1 for i, c in enumerate(info["columns"])}
    return picker([0, *(position[c] for c in columns)], [bytes, *(value_decoder(k) for k in kinds)])


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _resp_head(count: int, parts: list[bytes]) -> bytes:
    return b"*%d\r\n" % count + b"".join(_bulk(p) for p in parts)


def _suffix(pk: tuple[tuple[str, str], ...]) -> Callable[[Mapping[str, Any]], str]:
    """The entity's key suffix (keys.py) from the request's keys, for one primary key."""

    def generic(keys: Mapping[str, Any]) -> str:
        return ":".join(key_part(key_text(encode_key_part(keys[c], kind, c), kind)) for c, kind in pk)

    if len(pk) != 1 or pk[0][1] not in ("int", "string"):
        return generic
    ((column, kind),) = pk
    plain = int if kind == "int" else str

    def single(keys: Mapping[str, Any]) -> str:
        value = keys[column]
        # A value already of the stored kind encodes as itself: the generic path's result, one step.
        return key_part(value) if type(value) is plain else generic(keys)

    return single


def entity_reader_on(client: redis.Redis, store: OnlineStore, reads: Sequence[EntityRead]) -> EntityReader:
    """`OnlineStore.entity_reader` as one script call per entity on `client` (metadata from `store`)."""
    plans, metas, fields, pks = [], [], [], []
    for r, info, kinds in check_reads(store, reads):
        pk = tuple(info["primaryKey"])
        wanted = [None if c in r.micros else kinds[c] for c in r.columns]
        decoders = tuple(text_decoder(k) for k in wanted)
        pk_kinds = tuple(zip(pk, (kinds[c] for c in pk), strict=False))
        if pk_kinds not in pks:
            pks.append(pk_kinds)
        plans.append((pks.index(pk_kinds), decoders, record_picker(info, r.columns, wanted), len(r.columns) + 1))
        metas.append(meta_key(r.group, r.version))
        fields += [base_prefix(r.group, r.version), 1 + len(r.columns), TS_FIELD, *r.columns]
    # Versions keyed alike (the usual case: one entity key) share one suffix, computed once per read.
    suffix_of = tuple(_suffix(pk) for pk in pks)
    execute = client.execute_command
    n = len(plans)
    conn = client.connection  # the single-connection client's own (RedisOnlineStore.entity_reader)
    head = _resp_head(3 + 2 * n + len(fields), [b"EVALSHA", READ_SHA.encode(), str(n).encode(), *(m.encode() for m in metas)])
    tail = b"".join(_bulk(str(f).encode()) for f in fields)

    def call(suffixes: list[str]) -> Any:
        if conn is not None:
            try:
                conn.send_packed_command([head + b"".join(_bulk(h.encode()) for h in suffixes) + tail], check_health=False)
                return conn.read_response()
            except redis.exceptions.NoScriptError:
                pass
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                conn.disconnect()  # execute_command reconnects (and retries) below
        try:
            return execute("EVALSHA", READ_SHA, n, *metas, *suffixes, *fields)
        except redis.exceptions.NoScriptError:  # a restarted or flushed server: load it once more
            return execute("EVAL", READ_LUA, n, *metas, *suffixes, *fields)

    def read(keys: Mapping[str, Any]) -> list[Any]:
        distinct = [suffix(keys) for suffix in suffix_of]
        answers = call([distinct[plan[0]] for plan in plans])
        flat: list[Any] = []
        for (_, decoders, pick, width), values in zip(plans, answers, strict=False):
            if type(values) is bytes:  # a packed record
                flat.extend(pick(values))
                continue
            if values is None or values[0] is None:  # no record, or no __ts field: never written
                flat.extend([None] * width)
                continue
            flat.append(values[0])
            flat.extend(None if v is None else conv(v) for v, conv in zip(values[1:], decoders, strict=False))
        return flat

    return read
