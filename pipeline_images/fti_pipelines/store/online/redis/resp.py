"""Redis commands for a bulk write, built as RESP bytes for every row at once with Arrow.

Why this module: packing a command's arguments one Python object at a time (redis-py,
even with hiredis' C packer) cost ~10 us of client CPU per row of a write, more than the
server spends on the row. Here every argument is framed (`$<len>\\r\\n<bytes>\\r\\n`) by
Arrow compute kernels over whole columns, a row's framed arguments are joined into one
string per row, and a batch of rows is one slice of the result's data buffer: the client
does no per-row Python work at all, and the server receives the same bytes redis-py would
have sent (tests/unit/pipelines/test_store_online_resp.py compares them).

Two shapes (redis/write.py says when each is used):

- `mset_pairs` + `mset_call`: `MSET <key> <record> ...` over many rows: for a generation
  that holds no key yet;
- `script_keys` / `script_rows`: the per-row KEYS and ARGV of an upsert script, framed,
  for `script_call` to put behind one `EVAL` header per batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

CRLF = "\r\n"
IN_FLIGHT = 4  # batches sent ahead of the replies read (each a few hundred kB at most)


def bulk(value: str | bytes) -> bytes:
    """One argument as a RESP bulk string."""
    raw = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def framed(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Every value as a RESP bulk string; a null stays null (callers decide what it means)."""
    return _join(_bulk_parts(texts))


def _bulk_parts(texts: pa.Array | pa.ChunkedArray) -> list[pa.Array | str]:
    """What `framed` joins: callers put several columns' parts in one join (one pass over the bytes)."""
    texts = _large(texts)
    return ["$", pc.binary_length(texts).cast(pa.large_string()), CRLF, texts, CRLF]


def _large(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous large_string array (64-bit offsets: a write's bytes may pass 2 GiB)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr.cast(pa.large_string())


def _join(parts: Sequence[pa.Array | pa.Scalar | str]) -> pa.Array:
    """Row-wise concatenation; `parts` are arrays of one length or scalars (str or Arrow)."""
    scalars = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*scalars, pa.scalar("", pa.large_string()))


def mset_pairs(keys: pa.Array | pa.ChunkedArray, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Per row, its key and value framed: the two arguments an `MSET` carries for it."""
    return _join([*_bulk_parts(keys), *_bulk_parts(values)])


def mset_call(pairs: pa.Array, start: int, stop: int) -> list[bytes | memoryview]:
    """`MSET` of rows start..stop of `mset_pairs`, as RESP pieces to send."""
    return [b"*%d\r\n" % (1 + 2 * (stop - start)) + bulk(b"MSET"), byte_range(pairs, start, stop)]


def script_keys(keys: pa.Array) -> pa.Array:
    """The KEYS of a script call, one framed key per row."""
    return framed(keys)


def script_rows(values: Sequence[pa.Array]) -> pa.Array:
    """A script call's ARGV of each row, framed and joined (`values` hold no nulls)."""
    return _join([part for v in values for part in _bulk_parts(v)])


def script_call(
    script: bytes, head: Sequence[str | bytes], keys: pa.Array, rows: pa.Array, start: int, stop: int, per_row: int
) -> list[bytes | memoryview]:
    """`EVAL script <nkeys> keys[start:stop] *head rows[start:stop]` as RESP pieces to send;
    `per_row` is the number of ARGV entries each row contributes."""
    n = stop - start
    count = 3 + n + len(head) + n * per_row
    head_bytes = b"*%d\r\n" % count + bulk(b"EVAL") + bulk(script) + bulk(str(n))
    return [head_bytes, byte_range(keys, start, stop), b"".join(bulk(h) for h in head), byte_range(rows, start, stop)]


def byte_range(arr: pa.Array, start: int, stop: int) -> memoryview:
    """The concatenated bytes of rows start..stop of a large_string array, without a copy."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1 + arr.offset)[arr.offset :]
    data = arr.buffers()[2]
    if data is None:  # every value empty
        return memoryview(b"")
    return memoryview(data)[offsets[start] : offsets[stop]]


def send_pipelined(client: redis.Redis, batches: Iterable[tuple[list[bytes | memoryview], int]]) -> list[Any]:
    """Send each batch of commands (RESP pieces, reply count) on one connection of `client`'s
    pool and return every reply, in order. Up to IN_FLIGHT batches are sent ahead of the
    replies read, so the server has the next batch while the client reads (or is not
    scheduled on a busy machine).

    An error reply raises (redis-py's ResponseError) once the replies before it are read;
    the connection is then dropped, not returned with unread replies on it."""
    pool = client.connection_pool
    conn = pool.get_connection()
    replies: list[Any] = []
    pending: deque[int] = deque()
    try:
        for pieces, count in batches:
            conn.send_packed_command(pieces, check_health=False)
            pending.append(count)
            if len(pending) > IN_FLIGHT:
                replies.extend(conn.read_response() for _ in range(pending.popleft()))
        while pending:
            replies.extend(conn.read_response() for _ in range(pending.popleft()))
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return replies
