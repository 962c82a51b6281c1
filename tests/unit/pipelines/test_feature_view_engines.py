"""The packed-key lookup and DuckDB's ASOF JOIN give the same training data, row for row.

The packed engine (numpy over int64 keys, `feature_view.asof`) is the default; DuckDB's
ASOF JOIN is the reference and the fallback. Every key shape the packed engine handles
(integers, strings, composite keys, null keys) is checked against the reference, and
the cases it cannot pack must fall back, not fail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fti_pipelines.contract import PipelineError
from fti_pipelines.feature_view import JoinPlan, point_in_time_join, source_from_files
from fti_pipelines.feature_view.asof import asof_positions, packed_keys

T0 = pd.Timestamp(2026, 9, 1, tz="UTC")


def write(tmp_path, name, df) -> str:
    path = tmp_path / f"{name}.parquet"
    df.to_parquet(path, index=False)
    return f"file://{path}"


def plan(tmp_path, labels, feats, keys, *, label_keys=None, feature_cols=("value",)) -> JoinPlan:
    spine = source_from_files("labels", 1, [write(tmp_path, "labels", labels)], label_keys or keys, "event_time")
    group = source_from_files("feats", 1, [write(tmp_path, "feats", feats)], keys, "event_time")
    return JoinPlan(
        spine=spine,
        label="y",
        spine_columns=(),
        joins=((group, tuple(feature_cols)),),
        feature_columns=tuple(feature_cols),
        extra_columns=(),
    )


def both(p: JoinPlan) -> pa.Table:
    packed = point_in_time_join(p, engine="packed")
    reference = point_in_time_join(p, engine="duckdb")
    assert packed.equals(reference), (packed.to_pandas(), reference.to_pandas())
    return packed


def random_frames(rng, n_labels, n_feats, entities, key=lambda e: e):
    labels = pd.DataFrame(
        {
            "cc": key(rng.integers(0, entities, n_labels)),
            "event_time": T0 + pd.to_timedelta(rng.integers(0, 10**6, n_labels), unit="s"),
            "y": rng.integers(0, 2, n_labels),
        }
    )
    feats = pd.DataFrame(
        {
            "cc": key(rng.integers(0, entities + 5, n_feats)),
            "event_time": T0 + pd.to_timedelta(rng.integers(-(10**5), 10**6, n_feats), unit="s"),
        }
    )
    # DuckDB's ASOF JOIN picks any of two rows with the same key and time: keep one.
    feats = feats.drop_duplicates(["cc", "event_time"]).reset_index(drop=True)
    feats["value"] = rng.random(len(feats))
    feats.loc[feats.index % 7 == 0, "value"] = np.nan  # a matched row's null value stays null
    return labels, feats


def test_integer_keys_match_the_duckdb_asof_join_row_for_row(tmp_path):
    labels, feats = random_frames(np.random.default_rng(1), 3000, 15000, 60)
    out = both(plan(tmp_path, labels, feats, ["cc"]))
    assert out.num_rows == len(labels) and out["value"].null_count > 0


def test_keys_past_2_63_still_match_the_duckdb_asof_join(tmp_path):
    # Entity ids spread over 12,801 values x ~1.1e15 ns of event times: the packed keys need
    # the 64th bit (~1.4e19), and random nanoseconds leave no coarser unit to fall back to.
    rng = np.random.default_rng(9)
    labels, feats = random_frames(rng, 3000, 15000, 60, key=lambda e: e * 200)
    labels["event_time"] += pd.to_timedelta(rng.integers(1, 1000, len(labels)), unit="ns")
    feats["event_time"] += pd.to_timedelta(rng.integers(1, 1000, len(feats)), unit="ns")
    feats = feats.drop_duplicates(["cc", "event_time"]).reset_index(drop=True)
    out = both(plan(tmp_path, labels, feats, ["cc"]))
    assert out.num_rows == len(labels) and out["value"].null_count > 0

    def column(values) -> pa.ChunkedArray:
        return pa.chunked_array([pa.array(np.asarray(values, dtype=np.int64))])

    def ns(times) -> pa.ChunkedArray:
        return column(times.astype("int64"))

    packed = packed_keys([column(labels.cc)], ns(labels.event_time), [column(feats.cc)], ns(feats.event_time))
    assert packed is not None and int(packed[3].max()) >= 2**63


def test_string_keys_match_the_duckdb_asof_join(tmp_path):
    labels, feats = random_frames(np.random.default_rng(2), 2000, 8000, 40, key=lambda e: [f"card-{x}" for x in e])
    both(plan(tmp_path, labels, feats, ["cc"]))


def test_composite_keys_match_the_duckdb_asof_join(tmp_path):
    rng = np.random.default_rng(3)
    labels, feats = random_frames(rng, 2000, 12000, 30)
    labels["shop"] = [f"s{x}" for x in rng.integers(0, 3, len(labels))]
    feats["shop"] = [f"s{x}" for x in rng.integers(0, 3, len(feats))]
    feats = feats.drop_duplicates(["cc", "shop", "event_time"])
    both(plan(tmp_path, labels, feats, ["cc", "shop"]))


def test_event_times_of_different_types_are_compared_as_utc_instants(tmp_path):
    labels, feats = random_frames(np.random.default_rng(6), 1000, 5000, 20)
    labels["event_time"] = labels["event_time"].dt.tz_localize(None).astype("datetime64[ns]")  # naive, nanoseconds
    out = both(plan(tmp_path, labels, feats, ["cc"]))
    assert str(out.schema.field("event_time").type) == "timestamp[ns, tz=UTC]"  # cast without losing nanoseconds


def test_label_with_a_null_key_is_kept_once_with_nulls(tmp_path):
    labels = pd.DataFrame(
        {
            "cc": pd.array([1, None, 2], dtype="Int64"),
            "event_time": [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3)],
            "y": [0, 1, 0],
        }
    )
    feats = pd.DataFrame({"cc": pd.array([1, None, 2], dtype="Int64"), "event_time": [T0] * 3, "value": [1.0, 5.0, 2.0]})
    out = both(plan(tmp_path, labels, feats, ["cc"])).to_pandas()
    assert len(out) == 3 and out["value"].isna().tolist() == [False, True, False]
    assert out["value"].dropna().tolist() == [1.0, 2.0]


def test_group_keyed_by_an_ordinary_column_of_the_label_group_joins(tmp_path):
    # Labels keyed by transaction, features by card: the card column is read from the spine for the join only.
    labels = pd.DataFrame(
        {"tx": [10, 11, 12], "cc": [1, 2, 1], "event_time": [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3)], "y": [0, 1, 1]}
    )
    feats = pd.DataFrame(
        {"cc": [1, 1, 2], "event_time": [T0, T0 + pd.Timedelta(hours=2), T0 + pd.Timedelta(hours=5)], "value": [1.0, 2.0, 9.0]}
    )
    out = both(plan(tmp_path, labels, feats, ["cc"], label_keys=["tx"])).to_pandas()
    assert list(out.columns) == ["tx", "event_time", "value", "y"]
    assert out["value"][0] == 1.0 and pd.isna(out["value"][1]) and out["value"][2] == 2.0


def test_keys_too_wide_to_pack_fall_back_to_duckdb(tmp_path):
    # Entity ids spread over the whole int64 range times an hour of microseconds overflow int64.
    labels = pd.DataFrame({"cc": [-(2**62), 2**62], "event_time": [T0 + pd.Timedelta(hours=1)] * 2, "y": [0, 1]})
    feats = pd.DataFrame({"cc": [-(2**62), 2**62], "event_time": [T0, T0 + pd.Timedelta(hours=2)], "value": [1.0, 2.0]})
    p = plan(tmp_path, labels, feats, ["cc"])
    out = point_in_time_join(p).to_pandas()
    assert out["value"][0] == 1.0 and pd.isna(out["value"][1])
    with pytest.raises(PipelineError, match="cannot be packed"):
        point_in_time_join(p, engine="packed")


def test_same_key_and_time_twice_the_row_stored_last_wins(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000  # card 1 stamped T0 n times, mixed with other cards' rows: an unstable sort scrambles the ties
    feats = pd.DataFrame({"cc": rng.permutation([1] * n + list(range(2, 2 + n))), "event_time": [T0] * (2 * n)})
    feats["value"] = np.arange(2 * n, dtype=float)  # the value is the row's storage position
    feats.loc[feats.cc != 1, "event_time"] = T0 - pd.to_timedelta(rng.integers(1, 10**5, n), unit="s")
    labels = pd.DataFrame({"cc": [1, 1], "event_time": [T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=3)], "y": [0, 1]})
    out = point_in_time_join(plan(tmp_path, labels, feats, ["cc"])).to_pandas()
    last = float(feats.index[feats.cc == 1][-1])
    assert out["value"].tolist() == [last, last]


def test_an_empty_label_window_gives_an_empty_table_with_the_columns(tmp_path):
    labels, feats = random_frames(np.random.default_rng(4), 100, 500, 10)
    p = plan(tmp_path, labels, feats, ["cc"])
    start = (T0 + pd.Timedelta(days=365)).to_pydatetime()
    packed = point_in_time_join(p, start=start, engine="packed")
    assert packed.num_rows == 0 and packed.equals(point_in_time_join(p, start=start, engine="duckdb"))


def test_asof_positions_never_cross_into_the_previous_entity():
    # Entity 0 spans keys [0, 100), entity 1 [100, 200): a label of entity 1 before its first row gets nothing.
    features = np.array([150, 5, 120], dtype=np.int64)
    labels = np.array([110, 130, 160, 50], dtype=np.int64)
    starts = np.array([100, 100, 100, 0], dtype=np.int64)
    got = asof_positions(labels, starts, np.ones(4, dtype=bool), features).to_pylist()
    assert got == [None, 2, 0, 1]
