"""Point-in-time correctness of the training-data join, proven on hand-built rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from fti_operator.api import FeatureViewSpec
from fti_pipelines.contract import PipelineError
from fti_pipelines.feature_view import plan_join, point_in_time_join, resolve_sources, source_from_files


def ts(hour: int, minute: int = 0) -> pd.Timestamp:
    return pd.Timestamp(2026, 9, 1, hour, minute, tz="UTC")


class ParquetGroups:
    """The three FeatureStore methods the join needs, over Parquet files in a temp dir."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.groups: dict[tuple[str, int], dict] = {}

    def add(self, name, version, df, primary_key, event_time="event_time"):
        path = self.tmp / f"{name}_v{version}.parquet"
        df.to_parquet(path, index=False)
        self.groups[(name, version)] = {
            "files": [f"file://{path}"],
            "schema": {"primaryKey": primary_key, "eventTime": event_time, "columns": {c: str(t) for c, t in df.dtypes.items()}},
        }

    def versions(self, name):
        return sorted(v for (n, v) in self.groups if n == name)

    def schema(self, name, version):
        return self.groups[(name, version)]["schema"]

    def parquet_files(self, name, version):
        return self.groups[(name, version)]["files"]


def view(**overrides) -> FeatureViewSpec:
    doc = {
        "name": "fraud",
        "version": 1,
        "label": {"featureGroup": {"name": "tx", "version": 1}, "column": "is_fraud"},
        "features": [
            {"featureGroup": {"name": "tx", "version": 1}, "columns": ["amount"]},
            {"featureGroup": {"name": "profile", "version": 1}, "columns": ["limit"]},
        ],
    }
    doc.update(overrides)
    return FeatureViewSpec.model_validate(doc)


@pytest.fixture
def store(tmp_path):
    s = ParquetGroups(tmp_path)
    # Labels: card 1 at 10:00 and 12:00; card 2 at 11:00; card 3 at 09:00 (its only profile row is later).
    s.add(
        "tx",
        1,
        pd.DataFrame(
            {
                "cc": [1, 1, 2, 3],
                "event_time": [ts(10), ts(12), ts(11), ts(9)],
                "amount": [10.0, 20.0, 30.0, 40.0],
                "is_fraud": [0, 1, 0, 1],
            }
        ),
        ["cc"],
    )
    s.add(
        "profile",
        1,
        pd.DataFrame(
            {
                "cc": [1, 1, 1, 2, 3],
                # card 1: a value before 10:00, one exactly at 10:00, one at 11:00 (after the 10:00 label).
                "event_time": [ts(8), ts(10), ts(11), ts(12), ts(10)],
                "limit": [100.0, 200.0, 300.0, 999.0, 555.0],
                "age": ["a", "b", "c", "d", "e"],
            }
        ),
        ["cc"],
    )
    return s


def join(store, spec=None, **kw):
    spec = spec or view()
    plan = plan_join(spec, resolve_sources(spec, store), kw.pop("extra", []))
    return point_in_time_join(plan, **kw).to_pandas(), plan


def test_latest_value_at_or_before_the_label_joins_and_later_values_never_do(store):
    out, _ = join(store)
    by = {(r.cc, r.event_time.hour): r for r in out.itertuples()}
    # card 1 @10:00: the value stamped exactly 10:00 joins (at or before); the 11:00 one must not.
    assert by[(1, 10)].limit == 200.0
    # card 1 @12:00: the latest at or before is 11:00.
    assert by[(1, 12)].limit == 300.0


def test_a_value_one_step_after_the_label_never_joins(store):
    out, _ = join(store)
    # card 2's only profile row is at 12:00, one hour after its 11:00 label: null, not 999.
    row = out[out.cc == 2].iloc[0]
    assert pd.isna(row["limit"])


def test_label_whose_entity_has_only_later_rows_is_kept_once_with_nulls(store):
    out, _ = join(store)
    assert len(out) == 4  # exactly one row per label
    rows = out[out.cc == 3]
    assert len(rows) == 1
    assert pd.isna(rows.iloc[0]["limit"]) and rows.iloc[0]["is_fraud"] == 1 and rows.iloc[0]["amount"] == 40.0


def test_columns_come_in_feature_view_order_and_label_last(store):
    out, plan = join(store)
    assert list(out.columns) == ["cc", "event_time", "amount", "limit", "is_fraud"]
    assert list(plan.feature_columns) == ["amount", "limit"]
    assert plan.entity_keys == ["cc"]
    # Deterministic order: event time, then key.
    assert [(r.cc, r.event_time.hour) for r in out.itertuples()] == [(3, 9), (1, 10), (2, 11), (1, 12)]


def test_time_window_filters_labels_not_features(store):
    out, _ = join(store, start=datetime(2026, 9, 1, 10, tzinfo=UTC), end=datetime(2026, 9, 1, 12, tzinfo=UTC))
    assert sorted(out.cc.tolist()) == [1, 2]
    assert out[out.cc == 1].iloc[0]["limit"] == 200.0  # features before the window still join


def test_extra_sensitive_column_is_joined_point_in_time_but_is_not_a_feature(store):
    out, plan = join(store, extra=[("evaluation.bias.sensitiveColumn", "age")])
    assert plan.extra_columns == ("age",) and "age" not in plan.feature_columns
    assert out.set_index(["cc", out.event_time.dt.hour])["age"].to_dict() == {
        (3, 9): None,
        (1, 10): "b",
        (2, 11): None,
        (1, 12): "c",
    }


def test_many_random_labels_never_see_the_future(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    s = ParquetGroups(tmp_path)
    n = 2000
    labels = pd.DataFrame(
        {
            "cc": rng.integers(0, 50, n),
            "event_time": ts(0) + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
            "is_fraud": rng.integers(0, 2, n),
        }
    ).drop_duplicates(["cc", "event_time"])
    feats = pd.DataFrame(
        {"cc": rng.integers(0, 50, 5 * n), "event_time": ts(0) + pd.to_timedelta(rng.integers(0, 10**6, 5 * n), unit="s")}
    )
    feats = feats.drop_duplicates(["cc", "event_time"]).reset_index(drop=True)
    feats["stamp"] = feats.event_time.astype("int64") // 10**9  # the value *is* its own time
    s.add("tx", 1, labels, ["cc"])
    s.add("profile", 1, feats, ["cc"])
    spec = view(features=[{"featureGroup": {"name": "profile", "version": 1}, "columns": ["stamp"]}])
    out, _ = join(s, spec)
    assert len(out) == len(labels)
    label_secs = out.event_time.astype("int64") // 10**6  # duckdb hands microseconds
    joined = out.stamp
    assert (joined.dropna() <= label_secs[joined.notna()]).all()
    # And it is the latest: compare with a brute-force answer on a sample.
    for r in out.sample(200, random_state=1).itertuples():
        cands = feats[(feats.cc == r.cc) & (feats.event_time <= r.event_time)]
        expect = cands.stamp.max() if len(cands) else None
        assert (pd.isna(r.stamp) and expect is None) or r.stamp == expect


def test_feature_group_version_not_in_store_names_it(store):
    spec = view(features=[{"featureGroup": {"name": "profile", "version": 3}, "columns": ["limit"]}])
    with pytest.raises(PipelineError) as err:
        resolve_sources(spec, store)
    assert err.value.reason == "FeatureGroupNotFound"
    assert "featureView.features[0].featureGroup" in err.value.message and "profile version 3" in err.value.message
    assert "v1" in err.value.message


def test_unknown_column_names_the_field_and_the_group(store):
    spec = view(features=[{"featureGroup": {"name": "profile", "version": 1}, "columns": ["limit", "nope"]}])
    with pytest.raises(PipelineError) as err:
        plan_join(spec, resolve_sources(spec, store))
    assert err.value.reason == "UnknownColumn"
    assert (
        "featureView.features[0].columns" in err.value.message
        and "'nope'" in err.value.message
        and "profile" in err.value.message
    )


def test_unknown_sensitive_column_names_the_field(store):
    spec = view()
    with pytest.raises(PipelineError) as err:
        plan_join(spec, resolve_sources(spec, store), [("evaluation.bias.sensitiveColumn", "gender")])
    assert "evaluation.bias.sensitiveColumn" in err.value.message and "'gender'" in err.value.message


def test_label_selected_as_feature_is_refused(store):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is_fraud"):
        view(features=[{"featureGroup": {"name": "tx", "version": 1}, "columns": ["amount", "is_fraud"]}])


def test_source_from_files_joins_without_a_feature_store(store):
    spine = source_from_files("tx", 1, store.parquet_files("tx", 1), ["cc"], "event_time", store.schema("tx", 1)["columns"])
    assert spine.key == "tx@v1" and spine.files[0].startswith("file://")


def test_late_feature_rows_join_like_rows_that_came_on_time(tmp_path) -> None:
    """Features ingested in one batch, then a batch of earlier events (delivered late): the
    as-of join sees both, exactly as if all rows had come in one batch."""
    from fti_pipelines.store.artifacts import ArtifactStore
    from fti_pipelines.store.offline import FeatureStore

    def profile(rows):
        return pd.DataFrame(rows, columns=["cc", "event_time", "limit"])

    labels = pd.DataFrame(
        {"cc": [1, 2, 1], "event_time": [ts(10), ts(10), ts(13)], "amount": [1.0, 2.0, 3.0], "is_fraud": [0, 1, 0]}
    )
    on_time = profile([(1, ts(12), 500.0), (2, ts(12), 600.0)])
    late = profile([(1, ts(8), 100.0), (2, ts(9), 200.0), (1, ts(12), 999.0)])  # the last one re-sent: a duplicate
    spec = view()

    def joined(store: FeatureStore) -> list:
        plan = plan_join(spec, resolve_sources(spec, store))
        return point_in_time_join(plan).to_pandas()[["cc", "limit"]].values.tolist()

    kw = {"primary_key": ["cc"], "event_time": "event_time"}
    in_two = FeatureStore(ArtifactStore(f"file://{tmp_path}/two"))
    in_two.ingest("tx", 1, labels, **kw)
    in_two.ingest("profile", 1, on_time, **kw)
    assert in_two.ingest("profile", 1, late, **kw)["rowsAdded"] == 2
    in_one = FeatureStore(ArtifactStore(f"file://{tmp_path}/one"))
    in_one.ingest("tx", 1, labels, **kw)
    in_one.ingest("profile", 1, pd.concat([on_time, late.iloc[:2]]), **kw)
    assert joined(in_two) == joined(in_one) == [[1, 100.0], [2, 200.0], [1, 500.0]]
