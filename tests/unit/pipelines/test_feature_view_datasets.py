"""Training dataset versions: reproducible content hash, reuse, immutability, new version on new data."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from fti_operator.api import FeatureViewSpec
from fti_pipelines.feature_view import TrainingDatasets, content_hash
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore


def ts(hour: int) -> pd.Timestamp:
    return pd.Timestamp(2026, 9, 1, hour, tz="UTC")


SPEC = FeatureViewSpec.model_validate(
    {
        "name": "v",
        "version": 2,
        "label": {"featureGroup": {"name": "tx", "version": 1}, "column": "y"},
        "features": [
            {"featureGroup": {"name": "tx", "version": 1}, "columns": ["amount"]},
            {"featureGroup": {"name": "profile", "version": 1}, "columns": ["limit"]},
        ],
    }
)


def stores(tmp_path):
    store = ArtifactStore(f"file://{tmp_path}/s")
    fs = FeatureStore(store)
    fs.ingest(
        "tx",
        1,
        pd.DataFrame({"cc": [1, 2, 1], "event_time": [ts(10), ts(11), ts(12)], "amount": [5.0, 6.0, 7.0], "y": [0, 1, 0]}),
        primary_key=["cc"],
        event_time="event_time",
    )
    fs.ingest(
        "profile",
        1,
        pd.DataFrame({"cc": [1, 2], "event_time": [ts(9), ts(9)], "limit": [10.0, 20.0]}),
        primary_key=["cc"],
        event_time="event_time",
    )
    return store, fs


def test_same_inputs_same_hash_same_version_and_layout(tmp_path):
    store, fs = stores(tmp_path)
    ds = TrainingDatasets(store)
    first = ds.create(SPEC, fs)
    second = ds.create(SPEC, fs)
    assert first.version == 1 and second.version == 1 and second.reused and first.hash == second.hash
    root = tmp_path / "s" / "training_datasets" / "v" / "2" / "1"
    assert sorted(p.name for p in root.iterdir()) == ["_COMMITTED", "data.parquet", "dataset.json"]
    meta = ds.metadata("v", 2, 1)
    assert meta["hash"] == first.hash and meta["rows"] == 3 and meta["featureColumns"] == ["amount", "limit"]
    assert {s["name"] for s in meta["sources"]} == {"tx", "profile"}
    # A fresh store built from the same inputs gives the same hash.
    store2, fs2 = stores(tmp_path / "other")
    assert TrainingDatasets(store2).create(SPEC, fs2).hash == first.hash


def test_new_feature_rows_make_a_new_version_and_old_ones_stay(tmp_path):
    store, fs = stores(tmp_path)
    ds = TrainingDatasets(store)
    first = ds.create(SPEC, fs)
    fs.ingest(
        "tx",
        1,
        pd.DataFrame({"cc": [2], "event_time": [ts(13)], "amount": [8.0], "y": [1]}),
        primary_key=["cc"],
        event_time="event_time",
    )
    second = ds.create(SPEC, fs)
    assert second.version == 2 and second.hash != first.hash and second.rows == 4
    assert len(ds.read("v", 2, 1)) == 3  # version 1 is immutable
    assert ds.versions("v", 2) == [1, 2]


def test_window_changes_the_dataset(tmp_path):
    store, fs = stores(tmp_path)
    ds = TrainingDatasets(store)
    part = ds.create(SPEC, fs, start=ts(11).to_pydatetime())
    assert part.rows == 2 and ds.metadata("v", 2, part.version)["window"]["start"] == "2026-09-01T11:00:00Z"


def test_content_hash_ignores_chunking_but_not_values_or_names():
    t = pa.table({"a": [1, 2, 3], "b": ["x", "y", None]})
    chunked = pa.concat_tables([t.slice(0, 1), t.slice(1)])
    assert content_hash(t) == content_hash(chunked)
    assert content_hash(t) != content_hash(pa.table({"a": [1, 2, 4], "b": ["x", "y", None]}))
    assert content_hash(t) != content_hash(t.rename_columns(["a", "c"]))
    assert content_hash(t) != content_hash(pa.table({"a": [1, 2, 3], "b": ["x", "y", ""]}))
