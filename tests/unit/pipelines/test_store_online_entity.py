"""Online store entity readers: one entity over several feature-group versions, same answers as `get`.

Every backend's `entity_reader` (SQLite: one statement; Redis: one round trip) and the
base class's generic one (a `get` per version) must agree with `get` on present and
absent keys, composite and cast keys, every value kind, and return timestamps asked
as `micros` as the exact epoch microseconds of what `get` returns.
"""

from __future__ import annotations

import pandas as pd
import pytest

from fti_pipelines.store.online import EntityRead, OnlineStore, open_online_store, rfc3339_micros, to_rfc3339


@pytest.fixture
def store(online_store):
    return online_store  # every backend: SQLite and a real redis-server


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def fill(store) -> None:
    store.write(
        "tx",
        2,
        ["cc_num"],
        "event_time",
        pd.DataFrame(
            {
                "cc_num": [1, 2, 3],
                "event_time": [ts("2026-01-01T00:00:01.000123"), ts("2026-01-02"), ts("2026-01-03")],
                "amount": [1.5, None, 3.5],
                "count": pd.array([10, 20, None], dtype="Int64"),
                "flag": [True, False, True],
                "seen": [ts("2025-12-31T23:59:59"), None, ts("2025-06-01")],
                "day": pd.to_datetime(["2026-01-01"] * 3).date,
            }
        ),
    )
    store.write(
        "profiles",
        1,
        ["cc_num"],
        "event_time",
        pd.DataFrame(
            {
                "cc_num": [1, 3],
                "event_time": [ts("2025-01-01")] * 2,
                "age_group": ["26-40", "41+"],
            }
        ),
    )
    # A composite key (merchant, region) whose parts are also in the entity's keys.
    store.write(
        "merchants",
        1,
        ["merchant", "region"],
        "event_time",
        pd.DataFrame(
            {
                "merchant": ["m1", "m1"],
                "region": [7, 8],
                "event_time": [ts("2026-02-01")] * 2,
                "risk": [0.1, 0.9],
            }
        ),
    )


READS = [
    EntityRead("tx", 2, ("amount", "count", "flag", "seen", "day", "event_time"), ("event_time",)),
    EntityRead("profiles", 1, ("age_group", "event_time"), ("event_time",)),
    EntityRead("merchants", 1, ("risk",)),
]


def expected(store, keys) -> list:
    """The flat answer built from `get`, as the contract describes it."""
    flat = []
    for r in READS:
        pk = store.version_info(r.group, r.version)["primaryKey"]
        row = store.get(r.group, r.version, tuple(keys[c] for c in pk), list(r.columns))
        if row is None:
            flat.extend([None] * (len(r.columns) + 1))
            continue
        flat.append("present")
        flat.extend(rfc3339_micros(row[c]) if c in r.micros else row[c] for c in r.columns)
    return flat


def normalised(flat, reads=READS) -> list:
    """Presence slots as "present"/None (their non-None value is the backend's business)."""
    out, at = list(flat), 0
    for r in reads:
        out[at] = None if out[at] is None else "present"
        at += 1 + len(r.columns)
    return out


KEYS = [
    {"cc_num": 1, "merchant": "m1", "region": 7},  # in every version
    {"cc_num": 2, "merchant": "m1", "region": 8},  # no profile
    {"cc_num": 3, "merchant": "m2", "region": 7},  # no merchant
    {"cc_num": 99, "merchant": "m9", "region": 1},  # nowhere
    {"cc_num": "3", "merchant": "m1", "region": 8.0},  # keys of another type are cast to the stored kind
]


@pytest.mark.parametrize("generic", [False, True], ids=["backend", "generic"])
def test_entity_reader_answers_like_get(store, generic) -> None:
    fill(store)
    read = OnlineStore.entity_reader(store, READS) if generic else store.entity_reader(READS)
    for keys in KEYS:
        assert normalised(read(keys)) == expected(store, keys), keys
    first = normalised(read(KEYS[0]))
    assert first[:7] == [
        "present",
        1.5,
        10,
        True,
        "2025-12-31T23:59:59Z",
        "2026-01-01",
        1767225601000123,
    ]  # the event time's microseconds survive exactly
    assert to_rfc3339(first[6]) == store.get("tx", 2, (1,), ["event_time"])["event_time"]
    assert normalised(read(KEYS[3])) == [None] * 12


def test_entity_reader_refuses_what_the_store_cannot_answer(store) -> None:
    fill(store)
    with pytest.raises(LookupError, match="tx v9"):
        store.entity_reader([EntityRead("tx", 9, ("amount",))])
    with pytest.raises(KeyError, match="no_such"):
        store.entity_reader([EntityRead("tx", 2, ("no_such",))])
    with pytest.raises(ValueError, match="micros"):
        store.entity_reader([EntityRead("tx", 2, ("amount",), ("amount",))])


def test_entity_reader_sees_rows_written_after_it_was_built(store) -> None:
    fill(store)
    read = store.entity_reader(READS[:1])
    assert read({"cc_num": 4})[0] is None
    store.write(
        "tx",
        2,
        ["cc_num"],
        "event_time",
        pd.DataFrame(
            {
                "cc_num": [4],
                "event_time": [ts("2026-01-05")],
                "amount": [4.5],
                "count": pd.array([40], dtype="Int64"),
                "flag": [False],
                "seen": [ts("2026-01-04")],
                "day": pd.to_datetime(["2026-01-05"]).date,
            }
        ),
    )
    assert normalised(read({"cc_num": 4}), READS[:1])[:2] == ["present", 4.5]


@pytest.mark.redis
def test_redis_entity_reader_survives_a_flushed_script_cache(redis_url) -> None:
    import redis

    store = open_online_store(redis_url)
    try:
        fill(store)
        read = store.entity_reader(READS)
        assert normalised(read(KEYS[0])) == expected(store, KEYS[0])
        redis.Redis.from_url(redis_url).script_flush()  # as after a server restart
        assert normalised(read(KEYS[0])) == expected(store, KEYS[0])
    finally:
        store.close()


COMPLETE = [
    EntityRead("tx", 2, ("amount", "count", "day", "event_time"), ("event_time",)),
    EntityRead("profiles", 1, ("age_group", "event_time"), ("event_time",)),
]


def without_presence(flat, reads=COMPLETE) -> list:
    """The entity reader's answer without its presence slots: what a complete reader answers."""
    out, at = [], 0
    for r in reads:
        out += flat[at + 1 : at + 1 + len(r.columns)]
        at += 1 + len(r.columns)
    return out


def test_sqlite_complete_reader_answers_the_entity_readers_columns_or_none(tmp_path) -> None:
    store = open_online_store(f"sqlite:///{tmp_path}/online.db")
    readers = store.prepared_readers()
    try:
        fill(store)
        read, complete = readers.entity_reader(COMPLETE), readers.complete_reader(COMPLETE)
        assert complete is not None
        for keys in KEYS[:4]:
            flat = read(keys)
            answer = complete(keys["cc_num"])
            if all(flat[at] is not None for at in (0, 5)):  # in both versions
                assert answer is not None and list(answer) == without_presence(flat), keys
            else:  # no profile (2), nowhere (99): no row at all
                assert answer is None, keys
        assert list(complete(1)) == [1.5, 10, "2026-01-01", 1767225601000123, "26-40", 1735689600000000]
        assert complete(3)[1] is None  # a stored null stays None
    finally:
        readers.close()
        store.close()


@pytest.mark.parametrize(
    "reads",
    [
        [EntityRead("tx", 2, ("flag",))],  # a bool: decoded in Python
        [EntityRead("tx", 2, ("seen",))],  # a timestamp wanted as text
        [EntityRead("merchants", 1, ("risk",))],  # a composite key
        [EntityRead("tx", 2, ("amount",)), EntityRead("merchants", 1, ("risk",))],  # keys differ
    ],
)
def test_sqlite_complete_reader_is_none_where_one_statement_cannot_answer(tmp_path, reads) -> None:
    store = open_online_store(f"sqlite:///{tmp_path}/online.db")
    readers = store.prepared_readers()
    try:
        fill(store)
        assert readers.complete_reader(reads) is None
        assert store.complete_reader(reads) is None  # the store's own connection: the base's None
    finally:
        readers.close()
        store.close()
