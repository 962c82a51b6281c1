"""The Redis write's commands built in bulk (store/online/redis/resp.py) are byte for byte what
redis-py packs for the same arguments, as the write sent them before; and a version's first
write goes into a generation of its own, invisible until commit (docs/stores.md)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
import redis
import redis.connection

from fti_pipelines.store.online import open_online_store
from fti_pipelines.store.online.codec import column_kinds
from fti_pipelines.store.online.redis import resp, write as redis_write

# Every kind, nulls in some rows and not others, text that needs escaping in keys, non-ASCII.
TABLE = pa.table(
    {
        "k": pa.array(["a", "b:c", "d%e", "é", "x" * 70], pa.string()),
        "n": pa.array([1, -2, 3, 4, 2**62], pa.int64()),
        "t": pa.array(
            [dt.datetime(2026, 1, i + 1, 12, 0, i, 250, tzinfo=dt.UTC) for i in range(5)], pa.timestamp("us", tz="UTC")
        ),
        "f": pa.array([0.1, None, float("nan"), 1e300, -0.0], pa.float64()),
        "s": pa.array(["grocery", None, "", "naïve", "x" * 300], pa.string()),
        "b": pa.array([True, False, None, True, False], pa.bool_()),
        "d": pa.array([dt.date(2026, 1, 1), None, dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(2026, 12, 5)], pa.date32()),
    }
)
PREFIX = "fti:ns.g:v1@3:"


def packed(*args: object) -> bytes:
    """What redis-py sends for one command (hiredis' packer where installed, as in the store)."""
    return b"".join(redis.connection.Connection().pack_command(*args))


def old_arguments(table: pa.Table) -> tuple[list[str], list[str], list[str | None], list[list[str | None]]]:
    """Keys, event times, null masks and values as the write computed them per row before."""
    kinds = column_kinds(table)
    ts, values = redis_write.encode_texts(table, kinds, "t")
    keys = [PREFIX + s for s in redis_write.encode_keys(table, ["k"], kinds).to_pylist()]
    masks = redis_write.null_mask(values, table.num_rows).to_pylist()
    rows = [list(r) for r in zip(*(v.to_pylist() for v in values), strict=True)]
    return keys, ts.to_pylist(), masks, rows


def test_hset_commands_equal_redis_py_packing_with_null_fields_left_out() -> None:
    kinds = column_kinds(TABLE)
    ts, values = redis_write.encode_texts(TABLE, kinds, "t")
    count, tails = resp.hset_tails(ts, TABLE.column_names, values, "__ts")
    keys = pa.array([PREFIX + s for s in redis_write.encode_keys(TABLE, ["k"], kinds).to_pylist()])
    commands = resp.hset_commands(keys, count, tails)
    old_keys, old_ts, _, rows = old_arguments(TABLE)
    expected = [
        packed(
            "HSET",
            key,
            "__ts",
            t,
            *[x for name, v in zip(TABLE.column_names, row, strict=True) if v is not None for x in (name, v)],
        )
        for key, t, row in zip(old_keys, old_ts, rows, strict=True)
    ]
    assert bytes(resp.byte_range(commands, 0, len(TABLE))) == b"".join(expected)
    assert bytes(resp.byte_range(commands, 1, 3)) == b"".join(expected[1:3])  # any span of rows is whole commands


def test_script_calls_equal_redis_py_packing_of_the_old_arguments() -> None:
    kinds = column_kinds(TABLE)
    ts, values = redis_write.encode_texts(TABLE, kinds, "t")
    mask = redis_write.null_mask(values, TABLE.num_rows)
    keys = resp.script_keys(pa.array(old_arguments(TABLE)[0]))
    rows = resp.script_rows([ts, mask, *(v.fill_null("") for v in values)])
    script = redis_write.upsert_lua(len(TABLE.column_names))
    head = [str(len(TABLE.column_names)), *TABLE.column_names]
    old_keys, old_ts, masks, old_rows = old_arguments(TABLE)
    for start, stop in [(0, 5), (1, 4), (4, 5)]:
        args = [a for i in range(start, stop) for a in (old_ts[i], masks[i], *("" if v is None else v for v in old_rows[i]))]
        expected = packed("EVAL", script, stop - start, *old_keys[start:stop], *head, *args)
        pieces = resp.script_call(script.encode(), head, keys, rows, start, stop, len(TABLE.column_names) + 2)
        assert b"".join(bytes(p) for p in pieces) == expected


def test_byte_range_of_a_sliced_and_of_an_all_empty_array() -> None:
    arr = pa.array(["aa", "b", "ccc", "dddd"], pa.large_string()).slice(1)
    assert bytes(resp.byte_range(arr, 0, 3)) == b"bcccdddd" and bytes(resp.byte_range(arr, 1, 2)) == b"ccc"
    assert bytes(resp.byte_range(pa.array(["", ""], pa.large_string()), 0, 2)) == b""


def rows(keys: list[int], x: int) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "t": [pd.Timestamp("2026-01-01", tz="UTC")] * len(keys), "x": [x] * len(keys)})


@pytest.mark.redis
def test_a_first_write_is_invisible_until_commit_and_clears_what_a_dead_one_left(redis_url, monkeypatch) -> None:
    store = open_online_store(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        send = redis_write.send_pipelined

        def die(conn, batches):
            send(conn, batches)
            raise ConnectionError("killed before the switch")

        with monkeypatch.context() as patch:
            patch.setattr(redis_write, "send_pipelined", die)
            with pytest.raises(ConnectionError):
                store.write("g", 1, ["k"], "t", rows([1, 2, 3], 1))
        assert client.exists("fti:g:v1@1:3") == 1 and store.version_info("g", 1) is None
        client.hset("fti:g:v1:9", mapping={"__ts": "1", "x": "9"})  # a generation-0 leftover (an older writer's)

        staged = store.stage("g", 1, ["k"], "t", rows([1, 2], 2))
        staged.load()  # written, not visible: the version has no metadata yet
        assert client.exists("fti:g:v1@1:1") == 1 and client.exists("fti:g:v1@1:3") == 0 and not client.exists("fti:g:v1:9")
        assert store.version_info("g", 1) is None and store.get("g", 1, (1,)) is None
        assert staged.commit() == 2
        assert [r and r["x"] for r in store.get_many("g", 1, [(1,), (2,), (3,), (9,)], ["x"])] == [2, 2, None, None]
        assert store.version_info("g", 1)["rows"] == 2
        assert sorted(client.scan_iter(match="fti:g:v1*")) == [b"fti:g:v1@1:1", b"fti:g:v1@1:2"]
        # the next write is an upsert into the served generation
        assert store.write("g", 1, ["k"], "t", rows([2, 4], 3)) == 2 and store.version_info("g", 1)["rows"] == 3
        assert store.get("g", 1, (4,))["x"] == 3 and client.exists("fti:g:v1@1:4") == 1

        aborted = store.stage("h", 1, ["k"], "t", rows([1], 1))
        aborted.load()
        assert client.exists("fti:h:v1@1:1") == 1
        aborted.abort()  # what load wrote goes
        assert not list(client.scan_iter(match="fti:h:v1*")) and store.version_info("h", 1) is None
    finally:
        client.close()
        store.close()


@pytest.mark.redis
def test_a_loaded_write_is_not_published_over_another_writers_commit(redis_url) -> None:
    store = open_online_store(redis_url)
    try:
        staged = store.stage("g", 1, ["k"], "t", rows([1], 1))
        staged.load()
        store.write("g", 1, ["k"], "t", rows([2], 2))  # another writer commits the version first
        with pytest.raises(RuntimeError, match="another writer"):
            staged.commit()
        assert [r and r["x"] for r in store.get_many("g", 1, [(1,), (2,)], ["x"])] == [None, 2]
    finally:
        store.close()


@pytest.mark.redis
def test_a_new_generation_written_in_chunks_and_batches_holds_every_row(redis_url, monkeypatch) -> None:
    monkeypatch.setattr(redis_write, "CHUNK", 3)  # chunks of 3 rows, sent 2 rows per batch, and remainders
    monkeypatch.setattr(redis_write, "BATCH", 2)
    df = pd.DataFrame(
        {
            "k": list(range(7)),
            "t": [pd.Timestamp("2026-01-01", tz="UTC")] * 7,
            "x": [1.5, None, 3.5, None, 5.5, 6.5, None],
            "s": ["a", "b", None, "d", None, "f", "g"],
        }
    )
    store = open_online_store(redis_url)
    try:
        assert store.write("g", 1, ["k"], "t", df) == 7
        got = store.get_many("g", 1, [(k,) for k in range(8)], ["x", "s"])
        assert got[:7] == [{"x": x, "s": s} for x, s in zip([1.5, None, 3.5, None, 5.5, 6.5, None], df["s"], strict=True)]
        assert got[7] is None and store.version_info("g", 1)["rows"] == 7
    finally:
        store.close()


@pytest.mark.redis
def test_a_generation_encoded_chunk_by_chunk_sends_the_bytes_of_the_whole_table(redis_url, monkeypatch) -> None:
    # one row per chunk: each null of TABLE is then a whole column of its chunk
    monkeypatch.setattr(redis_write, "CHUNK", 1)
    monkeypatch.setattr(redis_write, "BATCH", 1)
    table = TABLE.append_column("c", pa.array(["x", "y", "x", None, "y"]).dictionary_encode())
    sent: list[bytes] = []

    def capture(client, batches):
        replies = []
        for pieces, count in batches:
            sent.append(b"".join(bytes(p) for p in pieces))
            replies += [0] * count
        return replies

    monkeypatch.setattr(redis_write, "send_pipelined", capture)
    kinds = column_kinds(table)
    ts, values = redis_write.encode_texts(table, kinds, "t")
    count, tails = resp.hset_tails(ts, table.column_names, values, "__ts")
    keys = pa.array(["fti:g:v1@1:" + s for s in redis_write.encode_keys(table, ["k"], kinds).to_pylist()])
    whole = resp.hset_commands(keys, count, tails).to_pylist()
    store = open_online_store(redis_url)
    try:
        staged = store.stage("g", 1, ["k"], "t", table)
        staged.load()
        staged.abort()
    finally:
        store.close()
    # latest_per_key orders the rows by key: compare as sets of commands, one per row
    assert len(sent) == 5 and sorted(sent) == sorted(c.encode() for c in whole)
