"""The packed join split by entity partition equals the join in one pass, row for row.

Past `partition_rows` feature rows per group the packed engine runs its key pass per
entity partition (a hash of the key columns on both sides) and reads the matched rows'
values one Parquet row group at a time (docs/store-layout.md, "Training data at scale").
Here partitions are forced tiny on data spread over several files of small row groups,
and the result must equal the one-pass join and DuckDB's ASOF JOIN query - same rows,
same order, same types - for every key shape, null keys, late labels, ties and
nanosecond event times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fti_pipelines.feature_view import JoinPlan, packed as packed_engine, point_in_time_join, source_from_files

T0 = pd.Timestamp("2026-09-01T00:00:00.000000250Z")  # sub-microsecond digits: nanoseconds matter


def files(tmp_path, name: str, df: pd.DataFrame, parts: int = 1) -> list[str]:
    """`df` over `parts` Parquet files of 64-row row groups (so values come from many)."""
    out = []
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), parts)):
        path = tmp_path / f"{name}-{i}.parquet"
        pq.write_table(pa.Table.from_pandas(df.iloc[chunk], preserve_index=False), path, row_group_size=64)
        out.append(f"file://{path}")
    return out


def frames(seed: int, n_labels: int = 1500, n_feats: int = 6000, entities: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    late = entities  # an entity whose every feature row comes after every label
    labels = pd.DataFrame(
        {
            "cc": np.append(rng.integers(0, entities, n_labels - 20), [late] * 20),
            "event_time": T0 + pd.to_timedelta(rng.integers(0, 10**12, n_labels), unit="ns"),
            "y": rng.integers(0, 2, n_labels),
        }
    )
    feats = pd.DataFrame(
        {
            "cc": np.append(rng.integers(0, entities + 5, n_feats - 10), [late] * 10),
            "event_time": T0 + pd.to_timedelta(rng.integers(-(10**11), 10**12, n_feats), unit="ns"),
        }
    )
    feats.loc[feats.cc == late, "event_time"] = T0 + pd.Timedelta(days=30)
    feats = feats.drop_duplicates(["cc", "event_time"]).reset_index(drop=True)
    feats["value"] = rng.random(len(feats))
    feats.loc[feats.index % 7 == 0, "value"] = np.nan
    feats["kind"] = pd.Categorical(rng.choice(["a", "b", "c"], len(feats)))  # a dictionary column in Parquet
    feats["note"] = [f"n{i}" for i in range(len(feats))]
    feats["seen"] = T0 - pd.to_timedelta(rng.integers(0, 10**6, len(feats)), unit="s")
    return labels, feats


def make_plan(tmp_path, labels, groups: list[tuple[str, pd.DataFrame, list[str], tuple[str, ...]]], label_keys) -> JoinPlan:
    spine = source_from_files("labels", 1, files(tmp_path, "labels", labels, 2), label_keys, "event_time")
    joins = tuple(
        (source_from_files(name, 1, files(tmp_path, name, df, 3), keys, "event_time"), cols) for name, df, keys, cols in groups
    )
    feature_columns = tuple(c for _, cols in joins for c in cols)
    return JoinPlan(spine=spine, label="y", spine_columns=(), joins=joins, feature_columns=feature_columns, extra_columns=())


def partitioned(p: JoinPlan, monkeypatch, rows: int = 500) -> pa.Table:
    """The join with at most `rows` feature rows per pass; checks it did split."""
    made: list[str] = []
    real = packed_engine.partition_sql

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(packed_engine, "partition_sql", spy)
    out = point_in_time_join(p, engine="packed", partition_rows=rows)
    monkeypatch.undo()
    assert made, "the join should have split the groups into entity partitions"
    return out


def check(p: JoinPlan, monkeypatch) -> pa.Table:
    one_pass = point_in_time_join(p, engine="packed")
    split = partitioned(p, monkeypatch)
    reference = point_in_time_join(p, engine="duckdb")
    assert split.equals(one_pass), (split.to_pandas(), one_pass.to_pandas())
    assert split.equals(reference), (split.to_pandas(), reference.to_pandas())
    assert split.schema == reference.schema
    return split


def test_integer_keys_two_groups_split_equal_one_pass_and_duckdb(tmp_path, monkeypatch):
    labels, feats = frames(1)
    _, other = frames(2)
    groups = [
        ("fa", feats, ["cc"], ("value", "kind", "note", "seen")),
        ("fb", other.rename(columns={"value": "v2"}), ["cc"], ("v2",)),
    ]
    p = make_plan(tmp_path, labels, groups, ["cc"])
    out = check(p, monkeypatch)
    late = out.to_pandas()[labels.sort_values(["event_time", "cc"])["cc"].to_numpy() == 50]
    assert len(late) == 20 and late["value"].isna().all()  # late labels keep their rows, with nulls
    assert out["value"].null_count > 20 and out["kind"].null_count < out.num_rows


def test_string_and_composite_keys_split_equal_one_pass_and_duckdb(tmp_path, monkeypatch):
    labels, feats = frames(3)
    rng = np.random.default_rng(3)
    for df in (labels, feats):
        df["shop"] = [f"s{x}" for x in rng.integers(0, 3, len(df))]
        df["card"] = [f"card-{x}" for x in df["cc"]]
    feats = feats.drop_duplicates(["cc", "shop", "event_time"])
    p = make_plan(
        tmp_path, labels, [("fa", feats, ["cc", "shop"], ("value",)), ("fb", feats.copy(), ["card"], ("note",))], ["cc"]
    )
    check(p, monkeypatch)


def test_null_keys_ties_and_mixed_integer_widths_split_equal_one_pass(tmp_path, monkeypatch):
    labels, feats = frames(4)
    labels["cc"] = pd.array(labels["cc"], dtype="Int32")  # INTEGER on the label side, BIGINT on the feature side
    labels.loc[labels.index % 50 == 0, "cc"] = None
    feats["cc"] = pd.array(feats["cc"], dtype="Int64")
    feats.loc[feats.index % 40 == 0, "cc"] = None
    feats = pd.concat([feats, feats.iloc[5:60].assign(value=-1.0)], ignore_index=True)  # same key and time: stored last wins
    p = make_plan(tmp_path, labels, [("fa", feats, ["cc"], ("value",))], ["cc"])
    out = partitioned(p, monkeypatch)
    assert out.equals(point_in_time_join(p, engine="packed"))
    assert out.num_rows == len(labels)


@pytest.mark.parametrize("rows", [100, 700, 10**9])
def test_any_partition_size_gives_the_same_rows(tmp_path, rows):
    labels, feats = frames(5, 400, 1500, 20)
    p = make_plan(tmp_path, labels, [("fa", feats, ["cc"], ("value", "note"))], ["cc"])
    assert point_in_time_join(p, engine="packed", partition_rows=rows).equals(point_in_time_join(p, engine="duckdb"))
