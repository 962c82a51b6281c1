"""A Redis version an older release wrote, a hash per entity, stays readable and writable,
and a full reload replaces it with packed records in one step (docs/stores.md, "Redis")."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import redis

from fti_pipelines.store.online import EntityRead, open_online_store

pytestmark = pytest.mark.redis

INFO = {
    "primaryKey": ["k"],
    "eventTime": "t",
    "columns": [
        {"name": "k", "kind": "int"},
        {"name": "t", "kind": "timestamp"},
        {"name": "x", "kind": "float"},
        {"name": "s", "kind": "string"},
    ],
    "updatedAt": "2026-12-01T00:00:00Z",
}
DAY1, DAY2, DAY3 = 1767225600000000, 1767312000000000, 1767398400000000  # 2026-01-01, -02, -03 in us


def micros_day(day: int) -> pd.Timestamp:
    return pd.Timestamp("2025-12-31", tz="UTC") + pd.Timedelta(days=day)


def old_release_version(client: redis.Redis, generation: int) -> None:
    """Version 1 of group g as the older release left it: hashes (`__ts` + a field per
    non-null column) in `generation`, metadata without a `layout` field."""
    prefix = "fti:g:v1" + (f"@{generation}:" if generation else ":")
    client.hset(prefix + "1", mapping={"__ts": DAY1, "k": 1, "t": DAY1, "x": "1.5", "s": "a"})
    client.hset(prefix + "2", mapping={"__ts": DAY2, "k": 2, "t": DAY2, "s": ""})  # x is null: no field
    meta = {"info": json.dumps(INFO), "rows": 2}
    if generation:
        meta["gen"] = generation
    client.hset("fti-meta:g:v1", mapping=meta)


def rows(keys: list[int], day: int, x: list[float | None], s: list[str | None] | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"k": keys, "t": [micros_day(day)] * len(keys), "x": x})
    return df if s is None else df.assign(s=s)


@pytest.mark.parametrize("generation", [0, 1])
def test_an_old_hash_version_is_read_upserted_and_replaced_by_packed_records(redis_url, generation) -> None:
    client = redis.Redis.from_url(redis_url)
    old_release_version(client, generation)
    store = open_online_store(redis_url)
    reader = open_online_store(redis_url)  # a model server's, prepared before any of the writes below
    try:
        read = reader.entity_reader([EntityRead("g", 1, ("x", "s", "t"), micros=("t",))])
        assert list(read({"k": 1})) == [str(DAY1).encode(), 1.5, "a", DAY1]
        assert list(read({"k": 2})) == [str(DAY2).encode(), None, "", DAY2]
        assert list(read({"k": 3})) == [None] * 4
        assert store.get_many("g", 1, [(1,), (2,), (3,)], ["x", "s"]) == [{"x": 1.5, "s": "a"}, {"x": None, "s": ""}, None]

        # an upsert goes into the served hash generation, by the rules: newer wins, older loses,
        # a null now drops the old value, the columns a row lacks keep theirs
        assert store.write("g", 1, ["k"], "t", rows([1, 2, 3], 2, [None, 9.0, 3.0])) == 3  # key 2 is as new: it wins too
        assert store.write("g", 1, ["k"], "t", rows([1], 1, [7.0], ["old"])) == 0
        assert store.get_many("g", 1, [(1,), (2,), (3,)], ["x", "s"]) == [
            {"x": None, "s": "a"},
            {"x": 9.0, "s": ""},
            {"x": 3.0, "s": None},
        ]
        assert list(read({"k": 3})) == [str(DAY2).encode(), 3.0, None, DAY2]
        data = "fti:g:v1" + (f"@{generation}:" if generation else ":")
        assert {client.type(data + k) for k in "123"} == {b"hash"} and store.version_info("g", 1)["rows"] == 3

        # a full reload writes packed records into the next generation and switches to them
        assert store.write("g", 1, ["k"], "t", rows([2, 4], 3, [2.5, None], ["b", "d"]), replace=True) == 2
        assert client.hget("fti-meta:g:v1", "layout") == b"packed"
        assert int(client.hget("fti-meta:g:v1", "gen")) == 1  # the first packed generation's number
        assert sorted(client.scan_iter(match="fti:g:v1*")) == [f"fti:g:v1#1:{k}".encode() for k in (2, 4)]
        assert {client.type(k) for k in client.scan_iter(match="fti:g:v1*")} == {b"string"}
        assert list(read({"k": 2})) == [str(DAY3).encode(), 2.5, "b", DAY3]  # the prepared reader follows
        assert list(read({"k": 1})) == [None] * 4
        assert store.get_many("g", 1, [(2,), (4,)], ["x", "s"]) == [{"x": 2.5, "s": "b"}, {"x": None, "s": "d"}]
        # and upserts now go into the packed generation
        assert store.write("g", 1, ["k"], "t", rows([4], 4, [4.5])) == 1
        assert store.get("g", 1, (4,), ["x", "s"]) == {"x": 4.5, "s": "d"}
        # a drop finds every generation's keys, a hash one's too
        client.hset("fti:g:v1:7", mapping={"__ts": DAY1, "k": 7})
        assert store.drop_version("g", 1) == 3 and not list(client.scan_iter(match="fti*:g:v1*"))
    finally:
        reader.close()
        store.close()
        client.close()
