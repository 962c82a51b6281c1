"""No future by rounding: event times keep nanoseconds from ingestion to the join.

A feature stamped 1 ns, 700 ns or 999 ns after a label is after it and never joins,
on the packed (numpy) engine and on DuckDB's ASOF JOIN; a feature at the label's exact
nanosecond or before it joins. The rows go through the offline store's ingestion, so
the test covers what is stored, not only the join (docs/store-layout.md,
"Event-time precision"). The online store keeps its microsecond event times.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from fti_pipelines.feature_view import JoinPlan, point_in_time_join, source_from_files
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.online import latest_per_key

T0 = pd.Timestamp("2026-09-01T10:00:00.000001500Z")  # a label time with sub-microsecond digits
NS = pd.Timedelta(1, "ns")

# entity -> (offset of its feature row from the label, joins?)
CASES = {
    1: (1 * NS, False),
    2: (700 * NS, False),
    3: (999 * NS, False),
    4: (0 * NS, True),  # the label's exact nanosecond: at or before
    5: (-1 * NS, True),
    6: (-700 * NS, True),
}


def ingested(tmp_path, spread: int) -> JoinPlan:
    """Labels and features written through FeatureStore.ingest; entity ids multiplied by
    `spread` (a large spread makes nanosecond packing overflow: the dense-rank path)."""
    fs = FeatureStore(ArtifactStore(f"file://{tmp_path}/store"))
    ids = [e * spread for e in CASES]
    labels = pd.DataFrame({"cc": ids, "event_time": [T0] * len(ids), "y": [1] * len(ids)})
    # every entity also has an older value an hour before: the answer when the close one must not join
    feats = pd.DataFrame(
        {
            "cc": ids * 2,
            "event_time": [T0 + off for off, _ in CASES.values()] + [T0 - pd.Timedelta(1, "h")] * len(ids),
            "value": [float(e) for e in CASES] + [-1.0] * len(ids),
        }
    )
    fs.ingest("labels", 1, labels, primary_key=["cc"], event_time="event_time")
    fs.ingest("feats", 1, feats, primary_key=["cc"], event_time="event_time")
    assert fs.schema("feats", 1)["columns"][1]["dtype"] == "timestamp[ns, tz=UTC]"
    spine = source_from_files("labels", 1, fs.parquet_files("labels", 1), ["cc"], "event_time")
    group = source_from_files("feats", 1, fs.parquet_files("feats", 1), ["cc"], "event_time")
    return JoinPlan(
        spine=spine, label="y", spine_columns=(), joins=((group, ("value",)),), feature_columns=("value",), extra_columns=()
    )


@pytest.mark.parametrize("engine", ["packed", "duckdb"])
@pytest.mark.parametrize("spread", [1, 10**12])
def test_a_feature_nanoseconds_after_the_label_never_joins(tmp_path, engine: str, spread: int) -> None:
    out = point_in_time_join(ingested(tmp_path, spread), engine=engine).to_pandas()
    assert len(out) == len(CASES)
    got = {int(r.cc) // spread: r.value for r in out.itertuples()}
    for entity, (offset, joins) in CASES.items():
        expected = float(entity) if joins else -1.0
        assert got[entity] == expected, f"feature {offset} from the label: {'joins' if joins else 'must not join'}"
    # the label's own nanoseconds survive the round trip through the store and the join
    assert out["event_time"].iloc[0] == T0


def test_whole_microsecond_data_joins_the_same_on_both_engines(tmp_path) -> None:
    """Nanosecond offsets of far-apart entities overflow int64; whole microseconds are packed
    in microseconds (the common case), and the result equals DuckDB's row for row."""
    base = pd.Timestamp("2026-09-01T00:00:00Z")
    ids = [e * 10**12 for e in range(1, 40)]
    labels = pd.DataFrame(
        {"cc": ids * 3, "event_time": [base + pd.Timedelta(i * 7919, "us") for i in range(len(ids) * 3)], "y": 1}
    )
    feats = pd.DataFrame(
        {"cc": ids * 5, "event_time": [base + pd.Timedelta(i * 4999, "us") for i in range(len(ids) * 5)], "value": 1.0}
    )
    feats["value"] = range(len(feats))
    fs = FeatureStore(ArtifactStore(f"file://{tmp_path}/store"))
    fs.ingest("labels", 1, labels, primary_key=["cc"], event_time="event_time")
    fs.ingest("feats", 1, feats, primary_key=["cc"], event_time="event_time")
    plan = JoinPlan(
        spine=source_from_files("labels", 1, fs.parquet_files("labels", 1), ["cc"], "event_time"),
        label="y",
        spine_columns=(),
        joins=((source_from_files("feats", 1, fs.parquet_files("feats", 1), ["cc"], "event_time"), ("value",)),),
        feature_columns=("value",),
        extra_columns=(),
    )
    packed, reference = point_in_time_join(plan, engine="packed"), point_in_time_join(plan, engine="duckdb")
    assert packed.equals(reference)
    assert packed["value"].null_count < packed.num_rows  # some labels did find a row


def test_online_keeps_the_newest_row_by_nanosecond_and_reports_microseconds(online_store) -> None:
    rows = pa.table(
        {
            "cc": [1, 1],
            "event_time": pa.array([T0.value + 300, T0.value], pa.timestamp("ns", tz="UTC")),
            "value": [2.0, 1.0],
        }
    )
    assert latest_per_key(rows, ["cc"], "event_time", unique_events=True)["value"].to_pylist() == [2.0]
    assert online_store.write("f", 1, ["cc"], "event_time", rows) == 1
    # online event times stay microseconds, as before (truncated, not refused)
    assert online_store.get("f", 1, (1,)) == {"cc": 1, "event_time": "2026-09-01T10:00:00.000001Z", "value": 2.0}
