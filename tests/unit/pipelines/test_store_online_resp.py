"""The Redis write's commands built in bulk (store/online/redis/resp.py) are byte for byte what
redis-py packs for the same arguments, computed here row by row; and a version's first write
goes into a generation of its own, invisible until commit (docs/stores.md)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
import redis
import redis.connection

from fti_pipelines.store.online import open_online_store
from fti_pipelines.store.online.codec import column_kinds
from fti_pipelines.store.online.redis import resp, upsert, write as redis_write
from fti_pipelines.store.online.redis.keys import encode_keys
from fti_pipelines.store.online.redis.record import column_texts, records

# Every kind, nulls in some rows and not others, text that needs escaping in keys and in
# records (the separator and escape bytes, the empty string), non-ASCII.
TABLE = pa.table(
    {
        "k": pa.array(["a", "b:c", "d%e", "é", "x" * 70], pa.string()),
        "n": pa.array([1, -2, 3, 4, 2**62], pa.int64()),
        "t": pa.array(
            [dt.datetime(2026, 1, i + 1, 12, 0, i, 250, tzinfo=dt.UTC) for i in range(5)], pa.timestamp("us", tz="UTC")
        ),
        "f": pa.array([0.1, None, float("nan"), 1e300, -0.0], pa.float64()),
        "s": pa.array(["grocery", None, "", "na\x1fïve\x1e", "x" * 300 + "\x1es"], pa.string()),
        "b": pa.array([True, False, None, True, False], pa.bool_()),
        "d": pa.array([dt.date(2026, 1, 1), None, dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(2026, 12, 5)], pa.date32()),
    }
)
PREFIX = "fti:ns.g:v1#3:"
# What a record holds for each row of TABLE, written out by hand (record.py's format):
# event time in microseconds, then every column; a null is empty, strings escaped.
TS = ["1767268800000250", "1767355201000250", "1767441602000250", "1767528003000250", "1767614404000250"]
RECORDS = [
    "\x1f".join([TS[0], "a", "1", TS[0], "0.1", "grocery", "true", "2026-01-01"]),
    "\x1f".join([TS[1], "b:c", "-2", TS[1], "", "", "false", ""]),
    "\x1f".join([TS[2], "d%e", "3", TS[2], "", "\x1e", "", "1970-01-01"]),
    "\x1f".join([TS[3], "é", "4", TS[3], "1e+300", "na\x1esïve\x1ee", "true", "2000-02-29"]),
    "\x1f".join([TS[4], "x" * 70, str(2**62), TS[4], "-0", "x" * 300 + "\x1ees", "false", "2026-12-05"]),
]
KEYS = [PREFIX + k for k in ["a", "b%3Ac", "d%25e", "é", "x" * 70]]


def packed(*args: object) -> bytes:
    """What redis-py sends for one command (hiredis' packer where installed, as in the store)."""
    return b"".join(redis.connection.Connection().pack_command(*args))


def texts(table: pa.Table) -> tuple[pa.ChunkedArray, dict[str, pa.ChunkedArray], dict[str, str]]:
    kinds = column_kinds(table)
    return (*column_texts(table, kinds, "t"), kinds)


def test_records_and_keys_hold_every_kind_as_written_out() -> None:
    ts, values, kinds = texts(TABLE)
    assert records(ts, values, kinds, TABLE.column_names).to_pylist() == RECORDS
    assert [PREFIX + s for s in encode_keys(TABLE, ["k"], values).to_pylist()] == KEYS
    # a column the rows do not carry is an empty field, in the version's column order
    order = ["k", "extra", *TABLE.column_names[1:]]
    assert records(ts, values, kinds, order).to_pylist()[0] == "\x1f".join(
        [TS[0], "a", "", "1", TS[0], "0.1", "grocery", "true", "2026-01-01"]
    )


def test_mset_commands_equal_redis_py_packing() -> None:
    ts, values, kinds = texts(TABLE)
    pairs = resp.mset_pairs(pa.array(KEYS), records(ts, values, kinds, TABLE.column_names))
    for start, stop in [(0, 5), (1, 3), (4, 5)]:
        expected = packed("MSET", *[x for i in range(start, stop) for x in (KEYS[i], RECORDS[i])])
        assert b"".join(bytes(p) for p in resp.mset_call(pairs, start, stop)) == expected


def test_packed_upsert_calls_equal_redis_py_packing() -> None:
    ts, values, kinds = texts(TABLE)
    keys = resp.script_keys(pa.array(KEYS))
    order = ["k", "extra", *TABLE.column_names[1:]]  # the version has a column these rows lack
    call = upsert.packed_upsert(ts, values, kinds, order)
    assert call.head == ["3"]  # its field in the record: 1 is the event time, 2 "k"
    rows = records(ts, values, kinds, order).to_pylist()
    for start, stop in [(0, 5), (1, 4), (4, 5)]:
        expected = packed("EVAL", upsert.PACKED_UPSERT_LUA, stop - start, *KEYS[start:stop], "3", *rows[start:stop])
        pieces = resp.script_call(call.script, call.head, keys, call.rows, start, stop, call.per_row)
        assert b"".join(bytes(p) for p in pieces) == expected


def test_hash_upsert_calls_equal_redis_py_packing() -> None:
    ts, values, _ = texts(TABLE)
    keys = resp.script_keys(pa.array(KEYS))
    call = upsert.hash_upsert(ts, values)
    names = TABLE.column_names
    assert call.head == [str(len(names)), *names]
    cells = [list(r) for r in zip(*(v.to_pylist() for v in values.values()), strict=True)]
    masks = ["" if None not in row else "".join("1" if v is None else "0" for v in row) for row in cells]
    for start, stop in [(0, 5), (1, 4), (4, 5)]:
        args = [a for i in range(start, stop) for a in (TS[i], masks[i], *("" if v is None else v for v in cells[i]))]
        expected = packed("EVAL", upsert.hash_upsert_lua(len(names)), stop - start, *KEYS[start:stop], *call.head, *args)
        pieces = resp.script_call(call.script, call.head, keys, call.rows, start, stop, call.per_row)
        assert b"".join(bytes(p) for p in pieces) == expected


def test_byte_range_of_a_sliced_and_of_an_all_empty_array() -> None:
    arr = pa.array(["aa", "b", "ccc", "dddd"], pa.large_string()).slice(1)
    assert bytes(resp.byte_range(arr, 0, 3)) == b"bcccdddd" and bytes(resp.byte_range(arr, 1, 2)) == b"ccc"
    assert bytes(resp.byte_range(pa.array(["", ""], pa.large_string()), 0, 2)) == b""


def rows(keys: list[int], x: int) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "t": [pd.Timestamp("2026-01-01", tz="UTC")] * len(keys), "x": [x] * len(keys)})


@pytest.mark.redis
def test_a_first_write_is_invisible_until_commit_and_its_switch_removes_what_a_dead_one_left(redis_url, monkeypatch) -> None:
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
        assert client.exists("fti:g:v1#1:3") == 1 and store.version_info("g", 1) is None
        assert store.versions() == []  # a metadata hash with only the generation counter is no version
        client.hset("fti:g:v1@1:9", mapping={"__ts": "1", "x": "9"})  # an older release's dead write's leftover

        staged = store.stage("g", 1, ["k"], "t", rows([1, 2], 2))
        staged.load()  # written under a number never handed out before, not visible: no metadata yet
        assert client.exists("fti:g:v1#2:1") == 1 and client.exists("fti:g:v1#2:3") == 0
        assert store.version_info("g", 1) is None and store.get("g", 1, (1,)) is None
        assert staged.commit() == 2
        assert [r and r["x"] for r in store.get_many("g", 1, [(1,), (2,), (3,), (9,)], ["x"])] == [2, 2, None, None]
        assert store.version_info("g", 1)["rows"] == 2 and store.versions() == [("g", 1)]
        # number 2 was not the first handed out: the switch swept every other generation's keys
        assert sorted(client.scan_iter(match="fti:g:v1*")) == [b"fti:g:v1#2:1", b"fti:g:v1#2:2"]
        # the next write is an upsert into the served generation
        assert store.write("g", 1, ["k"], "t", rows([2, 4], 3)) == 2 and store.version_info("g", 1)["rows"] == 3
        assert store.get("g", 1, (4,))["x"] == 3 and client.exists("fti:g:v1#2:4") == 1

        aborted = store.stage("h", 1, ["k"], "t", rows([1], 1))
        aborted.load()
        assert client.exists("fti:h:v1#1:1") == 1
        aborted.abort()  # what load wrote goes
        assert not list(client.scan_iter(match="fti:h:v1*")) and store.version_info("h", 1) is None
    finally:
        client.close()
        store.close()


@pytest.mark.redis
def test_a_first_write_that_got_the_first_number_scans_nothing(redis_url, monkeypatch) -> None:
    scans: list[str] = []
    unlink = redis_write.unlink_matching

    def counted(r, pattern, keep=None):
        scans.append(pattern)
        return unlink(r, pattern, keep)

    monkeypatch.setattr(redis_write, "unlink_matching", counted)
    store = open_online_store(redis_url)
    try:
        assert store.write("g", 1, ["k"], "t", rows([1, 2], 1)) == 2  # a first write: number 1
        assert store.write("g", 1, ["k"], "t", rows([3], 1)) == 1  # an upsert
        assert scans == []
        assert store.write("g", 1, ["k"], "t", rows([1], 2), replace=True) == 1  # a reload sweeps the old one
        assert scans == ["fti:g:v1[:@#]*"] and store.get_many("g", 1, [(1,), (2,)], ["x"]) == [{"x": 2}, None]
    finally:
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
    # one row per chunk: each null of TABLE is then a whole column of its chunk, and one MSET per row
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
    ts, values, kinds = texts(table)
    keys = pa.array(["fti:g:v1#1:" + s for s in encode_keys(table, ["k"], values).to_pylist()])
    whole = [
        packed("MSET", key, record)
        for key, record in zip(keys.to_pylist(), records(ts, values, kinds, table.column_names).to_pylist(), strict=True)
    ]
    store = open_online_store(redis_url)
    try:
        staged = store.stage("g", 1, ["k"], "t", table)
        staged.load()
        staged.abort()
    finally:
        store.close()
    # latest_per_key orders the rows by key: compare as sets of commands, one per row
    assert len(sent) == 5 and sorted(sent) == sorted(whole)
