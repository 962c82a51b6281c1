"""Training data and model registry on s3:// (moto) with no code change: DuckDB reads through fsspec."""

from __future__ import annotations

import pandas as pd

from fti_operator.api import FeatureViewSpec
from fti_pipelines.feature_view import TrainingDatasets
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore


def ts(hour: int) -> pd.Timestamp:
    return pd.Timestamp(2026, 9, 1, hour, tz="UTC")


def test_point_in_time_training_dataset_on_s3(s3_bucket_uri, s3_store_options):
    store = ArtifactStore(s3_bucket_uri, storage_options=s3_store_options)
    fs = FeatureStore(store)
    fs.ingest(
        "tx",
        1,
        pd.DataFrame({"cc": [1, 2], "event_time": [ts(10), ts(11)], "is_fraud": [0, 1]}),
        primary_key=["cc"],
        event_time="event_time",
        mode="full",
    )
    fs.ingest(
        "profile",
        1,
        pd.DataFrame({"cc": [1, 1, 2], "event_time": [ts(9), ts(11), ts(12)], "limit": [1.0, 2.0, 3.0]}),
        primary_key=["cc"],
        event_time="event_time",
        mode="full",
    )
    assert fs.parquet_files("tx", 1)[0].startswith("s3://")
    spec = FeatureViewSpec.model_validate(
        {
            "name": "v",
            "version": 1,
            "label": {"featureGroup": {"name": "tx", "version": 1}, "column": "is_fraud"},
            "features": [{"featureGroup": {"name": "profile", "version": 1}, "columns": ["limit"]}],
        }
    )
    datasets = TrainingDatasets(store)
    ds = datasets.create(spec, fs)
    assert ds.uri == f"{s3_bucket_uri}/training_datasets/v/1/1"
    assert ds.frame["limit"].tolist()[0] == 1.0 and pd.isna(ds.frame["limit"].tolist()[1])  # 11:00 label, 12:00 value: null
    again = datasets.create(spec, fs)
    assert again.reused and again.version == ds.version and again.hash == ds.hash
    assert datasets.read("v", 1, ds.version)["limit"].tolist()[0] == 1.0
