"""Online store: latest row per key per version, same semantics on SQLite and on a real redis-server."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from fti_pipelines.store.online import latest_per_key, open_online_store


@pytest.fixture
def store(online_store):
    return online_store  # every backend: SQLite and a real redis-server


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["cc_num", "event_time", "amount", "category", "flag"])


def test_latest_row_per_key_and_plain_scalars(store) -> None:
    df = frame(
        [
            (1, ts("2026-01-01"), 10.0, "grocery", True),
            (2, ts("2026-01-02"), float("nan"), None, False),
            (1, ts("2026-01-03"), 30.5, "travel", False),
            (1, ts("2026-01-02"), 20.0, "retail", True),
        ]
    )
    assert store.write("tx", 1, ["cc_num"], "event_time", df) == 2
    one, two, missing = store.get_many("tx", 1, [(1,), (2,), (3,)])
    assert one == {"cc_num": 1, "event_time": "2026-01-03T00:00:00Z", "amount": 30.5, "category": "travel", "flag": False}
    assert two == {"cc_num": 2, "event_time": "2026-01-02T00:00:00Z", "amount": None, "category": None, "flag": False}
    assert missing is None
    assert type(one["cc_num"]) is int and type(one["amount"]) is float
    info = store.version_info("tx", 1)
    assert info["rows"] == 2 and info["primaryKey"] == ["cc_num"] and info["eventTime"] == "event_time"
    assert [c["name"] for c in info["columns"]] == ["cc_num", "event_time", "amount", "category", "flag"]


def test_older_rows_never_replace_newer_ones(store) -> None:
    store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-05"), 50.0, "travel", True)]))
    assert store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-04"), 40.0, "retail", True)])) == 0
    assert store.get("tx", 1, (1,))["amount"] == 50.0
    # same event time: the replay wins (idempotent re-materialisation, corrections)
    assert store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-05"), 55.0, "travel", True)])) == 1
    assert store.get("tx", 1, (1,))["amount"] == 55.0
    # newer: replaces, and a null now really reads as null (no stale field left behind)
    store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-06"), 60.0, None, True)]))
    assert store.get("tx", 1, (1,)) == {
        "cc_num": 1,
        "event_time": "2026-01-06T00:00:00Z",
        "amount": 60.0,
        "category": None,
        "flag": True,
    }
    assert store.version_info("tx", 1)["rows"] == 1


def test_two_versions_side_by_side_and_drop(store) -> None:
    store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)]))
    v2 = pd.DataFrame({"cc_num": [1], "event_time": [ts("2026-01-02")], "amount_eur": [2.0]})
    store.write("tx", 2, ["cc_num"], "event_time", v2)
    assert store.get("tx", 1, (1,))["amount"] == 1.0
    assert store.get("tx", 2, (1,)) == {"cc_num": 1, "event_time": "2026-01-02T00:00:00Z", "amount_eur": 2.0}
    assert store.versions("tx") == [("tx", 1), ("tx", 2)]
    store.drop_version("tx", 1)
    assert not store.has_version("tx", 1) and store.get("tx", 1, (1,)) is None
    assert store.get("tx", 2, (1,))["amount_eur"] == 2.0


def test_composite_keys_columns_and_key_casting(store) -> None:
    df = pd.DataFrame({"a": ["x:y", "x", "p%"], "b": ["z", "y:z", "q"], "t": [ts("2026-01-01")] * 3, "v": [1, 2, 3]})
    store.write("pair", 1, ["a", "b"], "t", pa.Table.from_pandas(df))
    got = store.get_many("pair", 1, [("x", "y:z"), ("x:y", "z"), ("p%", "q"), ("x", "y")], columns=["v"])
    assert got == [{"v": 2}, {"v": 1}, {"v": 3}, None]
    ints = pd.DataFrame({"id": [7], "t": [ts("2026-01-01")], "v": [1.0]})
    store.write("ints", 1, ["id"], "t", ints)
    assert store.get("ints", 1, ("7",))["v"] == 1.0  # a JSON request may carry "7"
    with pytest.raises(ValueError, match="key column 'id' expects a int"):
        store.get("ints", 1, ("seven",))
    with pytest.raises(ValueError, match="primary key is"):
        store.get("ints", 1, (1, 2))
    with pytest.raises(KeyError, match="nope"):
        store.get("ints", 1, (7,), columns=["nope"])


def test_unknown_version_reads_none(store) -> None:
    assert store.get("tx", 9, (1,)) is None and store.version_info("tx", 9) is None
    assert store.get_many("tx", 9, [(1,), (2,)]) == [None, None]


def test_changed_key_or_kind_needs_a_version_bump(store) -> None:
    store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)]))
    with pytest.raises(ValueError, match="bump the version"):
        store.write("tx", 1, ["category"], "event_time", frame([(1, ts("2026-01-02"), 1.0, "a", True)]))
    bad = pd.DataFrame({"cc_num": [1], "event_time": [ts("2026-01-02")], "amount": ["text"]})
    with pytest.raises(ValueError, match=r"'amount'.*bump the version"):
        store.write("tx", 1, ["cc_num"], "event_time", bad)


def test_additive_column_is_accepted(store) -> None:
    store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)]))
    more = frame([(2, ts("2026-01-02"), 2.0, "b", False)]).assign(extra=[5])
    store.write("tx", 1, ["cc_num"], "event_time", more)
    assert store.get("tx", 1, (2,))["extra"] == 5
    assert store.get("tx", 1, (1,))["extra"] is None


def test_an_upsert_of_some_columns_keeps_the_others(store) -> None:
    store.write(
        "tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-02"), 1.0, "a", True), (2, ts("2026-01-02"), 2.0, "b", True)])
    )
    some = pd.DataFrame(
        {"cc_num": [1, 2, 3], "event_time": [ts("2026-01-03"), ts("2026-01-01"), ts("2026-01-03")], "amount": [10.0, 20.0, None]}
    )
    assert store.write("tx", 1, ["cc_num"], "event_time", some) == 2  # key 2's row is older: it loses
    assert store.get_many("tx", 1, [(1,), (2,), (3,)]) == [
        {"cc_num": 1, "event_time": "2026-01-03T00:00:00Z", "amount": 10.0, "category": "a", "flag": True},
        {"cc_num": 2, "event_time": "2026-01-02T00:00:00Z", "amount": 2.0, "category": "b", "flag": True},
        {"cc_num": 3, "event_time": "2026-01-03T00:00:00Z", "amount": None, "category": None, "flag": None},
    ]
    assert store.version_info("tx", 1)["rows"] == 3


def test_null_keys_are_refused_with_the_column_named(store) -> None:
    df = pd.DataFrame({"id": [1.0, None], "t": [ts("2026-01-01")] * 2})
    with pytest.raises(ValueError, match="'id' has 1 null"):
        store.write("g", 1, ["id"], "t", df)


def test_latest_per_key_tie_keeps_the_later_input_row() -> None:
    t = pa.table({"k": [1, 1, 2], "t": pa.array([0, 0, 5], pa.timestamp("us", tz="UTC")), "v": ["first", "second", "x"]})
    out = latest_per_key(t, ["k"], "t")
    assert out.column("v").to_pylist() == ["second", "x"]


def test_unknown_uri_scheme() -> None:
    with pytest.raises(ValueError, match=r"sqlite:///path\.db or redis://"):
        open_online_store("mysql://x")


def test_boolean_and_float_keys_round_trip(store) -> None:
    df = pd.DataFrame({"b": [True, False], "f": [1.0, 2.5], "t": [ts("2026-01-01")] * 2, "v": ["yes", "no"]})
    store.write("bk", 1, ["b", "f"], "t", df)
    assert store.get_many("bk", 1, [(True, 1.0), (False, 2.5), (True, 2.5)], columns=["v"]) == [{"v": "yes"}, {"v": "no"}, None]


def test_strings_are_stored_byte_exact(store) -> None:
    odd = ["", "=", "a\x1fb\x1ec", "line\nbreak", "ünï©ødé", " "]
    df = pd.DataFrame({"k": range(len(odd)), "t": [ts("2026-01-01")] * len(odd), "s": odd})
    store.write("g", 1, ["k"], "t", df)
    assert [r["s"] for r in store.get_many("g", 1, [(i,) for i in range(len(odd))])] == odd


def test_a_reader_sees_columns_added_and_versions_dropped_by_another_writer(store, tmp_path) -> None:
    other = open_online_store(store.uri)  # e.g. the feature pipeline, while `store` is the model server
    other.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)]))
    assert store.get("tx", 1, (1,))["amount"] == 1.0  # metadata now cached by the reader
    other.write("tx", 1, ["cc_num"], "event_time", frame([(2, ts("2026-01-02"), 2.0, "b", True)]).assign(extra=[7]))
    assert store.get("tx", 1, (2,), columns=["extra"]) == {"extra": 7}
    other.drop_version("tx", 1)
    assert store.get("tx", 1, (2,)) is None
    other.close()


def test_a_staged_write_is_invisible_until_commit_and_abort_leaves_nothing(store) -> None:
    store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)]), snapshot=1)
    reader = open_online_store(store.uri)  # another process's view, e.g. the model server
    try:
        with store.stage(
            "tx",
            1,
            ["cc_num"],
            "event_time",
            frame([(1, ts("2026-01-02"), 2.0, "b", True), (2, ts("2026-01-02"), 3.0, "c", True)]),
            snapshot=2,
        ) as staged:
            assert reader.get_many("tx", 1, [(1,), (2,)]) == [
                {"cc_num": 1, "event_time": "2026-01-01T00:00:00Z", "amount": 1.0, "category": "a", "flag": True},
                None,
            ]
            staged.abort()
        assert store.get("tx", 1, (2,)) is None and store.get("tx", 1, (1,))["amount"] == 1.0
        assert store.version_info("tx", 1)["rows"] == 1 and store.version_info("tx", 1)["snapshot"] == 1
        with store.stage("tx", 1, ["cc_num"], "event_time", frame([(2, ts("2026-01-02"), 3.0, "c", True)]), snapshot=2) as staged:
            assert reader.get("tx", 1, (2,)) is None
            assert staged.commit() == 1
        assert reader.get("tx", 1, (2,))["amount"] == 3.0
        assert reader.version_info("tx", 1)["rows"] == 2 and reader.version_info("tx", 1)["snapshot"] == 2
        with pytest.raises(RuntimeError, match="already committed"):
            staged.commit()
    finally:
        reader.close()


def test_a_staged_first_load_that_is_aborted_leaves_no_version(store) -> None:
    with store.stage("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)])):
        pass  # leaving the block without commit discards it
    assert store.version_info("tx", 1) is None and store.get("tx", 1, (1,)) is None
    assert store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True)])) == 1


def test_replace_makes_the_rows_the_whole_version(store) -> None:
    store.write(
        "tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-05"), 1.0, "a", True), (2, ts("2026-01-05"), 2.0, "b", True)])
    )
    other = pd.DataFrame({"cc_num": [9], "event_time": [ts("2026-01-01")], "amount": [9.0]})
    store.write("tx", 2, ["cc_num"], "event_time", other)
    # a full reload: key 2 is gone from the data, key 1 was corrected with an older event time
    fresh = frame([(1, ts("2026-01-03"), 1.5, None, False), (3, ts("2026-01-04"), 3.0, "c", True)]).drop(columns="flag")
    assert store.write("tx", 1, ["cc_num"], "event_time", fresh, replace=True) == 2
    assert store.get_many("tx", 1, [(1,), (2,), (3,)]) == [
        {"cc_num": 1, "event_time": "2026-01-03T00:00:00Z", "amount": 1.5, "category": None, "flag": None},
        None,
        {"cc_num": 3, "event_time": "2026-01-04T00:00:00Z", "amount": 3.0, "category": "c", "flag": None},
    ]
    assert store.version_info("tx", 1)["rows"] == 2
    assert store.get("tx", 2, (9,))["amount"] == 9.0  # other versions are untouched
    # afterwards the usual rule holds again: an older row does not replace a newer one
    assert store.write("tx", 1, ["cc_num"], "event_time", frame([(3, ts("2026-01-01"), 0.0, "x", True)])) == 0


def test_a_prepared_entity_reader_follows_a_replacing_write(store) -> None:
    from fti_pipelines.store.online import EntityRead

    store.write(
        "tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-01"), 1.0, "a", True), (2, ts("2026-01-01"), 2.0, "b", True)])
    )
    reader = open_online_store(store.uri)  # the model server, with its statement prepared before the reload
    try:
        read = reader.entity_reader([EntityRead("tx", 1, ("amount",))])
        assert list(read({"cc_num": 2}))[1:] == [2.0]
        store.write("tx", 1, ["cc_num"], "event_time", frame([(1, ts("2026-01-02"), 5.0, "a", True)]), replace=True)
        assert list(read({"cc_num": 1}))[1:] == [5.0]
        assert read({"cc_num": 2})[0] is None  # the key the new data lacks is gone
    finally:
        reader.close()


def rows_frame(keys: range, day: str, amount_of) -> pd.DataFrame:
    return frame([(k, ts(day), float(amount_of(k)), f"c{k}", k % 2 == 0) for k in keys])


def test_sqlite_inserts_many_rows_per_statement_and_keeps_every_row_in_place(tmp_path, monkeypatch) -> None:
    from fti_pipelines.store.online.sqlite import write as online_sqlite_write

    monkeypatch.setattr(online_sqlite_write, "ROWS_PER_INSERT", 7)  # whole statements plus a remainder
    store = open_online_store(f"sqlite:///{tmp_path}/online.db")
    try:
        assert store.write("tx", 1, ["cc_num"], "event_time", rows_frame(range(100), "2026-01-05", lambda k: k)) == 100
        # an upsert across statements: older rows (50-69) lose, newer (70-99) and new keys (100-109) win
        update = pd.concat(
            [rows_frame(range(50, 70), "2026-01-04", lambda k: -k), rows_frame(range(70, 110), "2026-01-06", lambda k: 1000 + k)]
        )
        assert store.write("tx", 1, ["cc_num"], "event_time", update) == 40
        got = store.get_many("tx", 1, [(k,) for k in range(110)])
        assert [r["amount"] for r in got] == [float(k) for k in range(70)] + [1000.0 + k for k in range(70, 110)]
        assert all(r["category"] == f"c{k}" and r["flag"] == (k % 2 == 0) for k, r in enumerate(got))
        assert store.version_info("tx", 1)["rows"] == 110
    finally:
        store.close()


def test_sqlite_statements_stay_under_the_bound_parameter_limit(tmp_path, monkeypatch) -> None:
    import sqlite3

    from fti_pipelines.store.online.sqlite import write as online_sqlite_write

    monkeypatch.setattr(online_sqlite_write, "ROWS_PER_INSERT", 10**9)  # only the parameter limit bounds it
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    n = limit // 5 + 3  # 5 columns: one statement of all rows would have too many parameters
    store = open_online_store(f"sqlite:///{tmp_path}/online.db")
    try:
        assert store.write("tx", 1, ["cc_num"], "event_time", rows_frame(range(n), "2026-01-05", lambda k: k)) == n
        assert store.get("tx", 1, (n - 1,))["amount"] == float(n - 1)
    finally:
        store.close()


def test_sqlite_python_values_equal_arrow_to_pylist() -> None:
    from fti_pipelines.store.online.sqlite.write import python_values

    columns = [
        pa.chunked_array([[1, -2], [2**62]], pa.int64()),
        pa.chunked_array([[0.1, -0.0], [1e300, 5e-324]], pa.float64()),
        pa.chunked_array([[1, None]], pa.int64()),
        pa.chunked_array([[1.5, None]], pa.float64()),
        pa.chunked_array([[True, False]], pa.bool_()),
        pa.chunked_array([["a", None]], pa.string()),
        pa.chunked_array([], pa.int32()),
    ]
    for column in columns:
        values = python_values(column)
        assert values == column.to_pylist() and [type(v) for v in values] == [type(v) for v in column.to_pylist()]
