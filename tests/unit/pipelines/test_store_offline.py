"""Offline feature store: snapshots, atomic writes, watermark + dedup, schema rules, file:// and s3://."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from fti_pipelines.contract import PipelineError
from fti_pipelines.store import offline as offline_module
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import ConcurrentWrite, FeatureStore


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["k", "t", "v"])


@pytest.fixture
def fs(tmp_path) -> FeatureStore:
    return FeatureStore(ArtifactStore(f"file://{tmp_path}/store"))


KW = {"primary_key": ["k"], "event_time": "t"}


def test_schema_is_recorded_per_version(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    assert fs.schema("g", 1) == {
        "columns": [
            {"name": "k", "dtype": "int64"},
            {"name": "t", "dtype": "timestamp[ns, tz=UTC]"},  # event times keep nanoseconds
            {"name": "v", "dtype": "double"},
        ],
        "primaryKey": ["k"],
        "eventTime": "t",
    }
    assert fs.versions("g") == [1] and fs.groups() == ["g"] and fs.schema("g", 2) is None


def test_incremental_watermark_and_dedup(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0), (2, ts("2026-01-02"), 2.0)]), **KW)
    assert fs.watermark("g", 1) == ts("2026-01-02").to_pydatetime()
    batch = fs.prepare(
        "g",
        1,
        frame(
            [
                (2, ts("2026-01-02"), 2.0),  # stored already (at the watermark): duplicate
                (3, ts("2026-01-02"), 3.0),  # same time as the watermark, new key: kept
                (1, ts("2026-01-01"), 9.0),  # before the watermark and stored already: duplicate
                (1, ts("2025-12-31"), 8.0),  # before the watermark, new: a late row, kept
                (4, ts("2026-01-05"), 4.0),
                (4, ts("2026-01-05"), 4.5),  # duplicate within the batch: the later wins
            ]
        ),
        **KW,
    )
    assert (batch.rows_in, batch.rows_late, batch.rows_duplicate, batch.rows_too_late) == (6, 1, 3, 0)
    assert batch.table.to_pydict()["v"] == [3.0, 8.0, 4.5]
    manifest = fs.commit(batch, run_id="r2")
    assert manifest["rows"] == 5 and manifest["watermark"] == "2026-01-05T00:00:00Z" and manifest["runId"] == "r2"
    assert sorted(fs.read("g", 1)["v"]) == [1.0, 2.0, 3.0, 4.5, 8.0]


def test_allowed_lateness_sets_aside_what_is_later_than_that(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-10"), 1.0)]), **KW)
    rows = [(2, ts("2026-01-09"), 2.0), (3, ts("2026-01-07T23:59"), 3.0), (4, None, 4.0), (5, ts("2026-01-11"), 5.0)]
    batch = fs.prepare("g", 1, frame(rows), allowed_lateness=timedelta(days=2), **KW)
    assert batch.cutoff == "2026-01-08T00:00:00Z"
    assert batch.too_late is not None and batch.too_late.to_pydict()["k"] == [3]
    # a null event time is not "late": it stays for validation to reject
    assert batch.table.to_pydict()["k"] == [2, 4, 5] and (batch.rows_late, batch.rows_too_late) == (1, 1)
    full = fs.prepare("g", 1, frame(rows), mode="full", allowed_lateness=timedelta(days=2), **KW)
    assert full.too_late is None and full.table.num_rows == 4  # a full batch replaces: nothing is late


def test_a_stored_row_is_found_anywhere_before_the_watermark(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(k, ts("2026-01-01") + pd.Timedelta(days=k), float(k)) for k in range(5)]), **KW)
    fs.ingest("g", 1, frame([(9, ts("2026-02-01"), 9.0)]), **KW)  # a second file, and a later watermark
    batch = fs.prepare("g", 1, frame([(1, ts("2026-01-02"), 1.0), (3, ts("2026-01-04"), 7.0), (3, ts("2026-01-05"), 3.0)]), **KW)
    assert batch.rows_duplicate == 2 and batch.table.to_pydict()["k"] == [3] and batch.rows_late == 1


def test_full_replaces_and_keeps_history_files(fs: FeatureStore, tmp_path) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    first_files = fs.parquet_files("g", 1)
    fs.ingest("g", 1, frame([(2, ts("2025-01-01"), 2.0)]), mode="full", **KW)
    assert fs.read("g", 1)["k"].tolist() == [2]
    assert fs.watermark("g", 1) == ts("2025-01-01").to_pydatetime()  # full: the watermark of the new data
    assert fs.parquet_files("g", 1) != first_files
    assert all((tmp_path / "store" / f.split("/store/", 1)[1]).exists() for f in first_files)  # nothing deleted


def test_a_write_dying_half_way_leaves_the_previous_state(fs: FeatureStore, monkeypatch) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    real_write = offline_module.pq.write_table

    def write_then_die(*args, **kwargs):
        real_write(*args, **kwargs)  # the Parquet file is fully written into staging...
        raise RuntimeError("killed mid-write")  # ...and the run dies before the commit marker

    monkeypatch.setattr(offline_module.pq, "write_table", write_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        fs.ingest("g", 1, frame([(2, ts("2026-01-02"), 2.0)]), **KW)
    with pytest.raises(RuntimeError, match="killed"):
        fs.ingest("g", 1, frame([(3, ts("2026-01-03"), 3.0)]), mode="full", **KW)
    monkeypatch.setattr(offline_module.pq, "write_table", real_write)
    assert fs.snapshot("g", 1)["snapshot"] == 1
    assert fs.read("g", 1)["k"].tolist() == [1]
    assert fs.store.list("features", "g", "v1", "snapshots") == ["000001"]  # no visible debris
    fs.ingest("g", 1, frame([(2, ts("2026-01-02"), 2.0)]), **KW)  # and the next run works
    assert sorted(fs.read("g", 1)["k"]) == [1, 2]


def test_first_write_dying_leaves_no_version(fs: FeatureStore, monkeypatch) -> None:
    monkeypatch.setattr(offline_module.pq, "write_table", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    assert fs.versions("g") == [] and fs.snapshot("g", 1) is None and fs.parquet_files("g", 1) == []


def test_concurrent_writers_one_wins_the_other_writes_nothing(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    a = fs.prepare("g", 1, frame([(2, ts("2026-01-02"), 2.0)]), **KW)
    b = fs.prepare("g", 1, frame([(3, ts("2026-01-02"), 3.0)]), **KW)
    fs.commit(a)
    with pytest.raises(ConcurrentWrite, match="nothing was written"):
        fs.commit(b)
    assert sorted(fs.read("g", 1)["k"]) == [1, 2]


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda df: df.drop(columns=["v"]), "column 'v' (double) was removed"),
        (lambda df: df.assign(v=df["v"].astype(str)), "column 'v' changed dtype from double to string"),
    ],
)
def test_breaking_changes_are_refused(fs: FeatureStore, change, needle) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    with pytest.raises(PipelineError, match=r"Bump featureGroup\.version") as err:
        fs.ingest("g", 1, change(frame([(2, ts("2026-01-02"), 2.0)])), **KW)
    assert err.value.reason == "SchemaChange" and needle in err.value.message
    with pytest.raises(PipelineError, match="primaryKey changed"):
        fs.ingest("g", 1, frame([(2, ts("2026-01-02"), 2.0)]), primary_key=["v"], event_time="t")
    fs.ingest("g", 2, change(frame([(2, ts("2026-01-02"), 2.0)])), **KW)  # a new version may change anything
    assert fs.versions("g") == [1, 2]


def test_lossless_widening_is_cast_to_the_recorded_type(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    fs.ingest("g", 1, pd.DataFrame({"k": pd.Series([2], dtype="int32"), "t": [ts("2026-01-02")], "v": [5]}), **KW)
    fs.ingest("g", 1, pd.DataFrame({"k": [3], "t": [ts("2026-01-03")], "v": [None]}), **KW)
    assert fs.read("g", 1)["v"].tolist()[:2] == [1.0, 5.0]
    assert fs.schema("g", 1)["columns"][2]["dtype"] == "double"


def test_parquet_files_are_what_duckdb_reads(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    fs.ingest("g", 1, frame([(2, ts("2026-01-02"), 2.0)]), **KW)
    files = fs.parquet_files("g", 1)
    assert len(files) == 2 and all(f.startswith("file://") for f in files)
    assert duckdb.sql(f"SELECT sum(v) FROM read_parquet({files!r})").fetchall() == [(3.0,)]


def test_missing_key_or_non_timestamp_event_time(fs: FeatureStore) -> None:
    with pytest.raises(PipelineError, match=r"\['k'\]"):
        fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]).drop(columns=["k"]), **KW)
    with pytest.raises(PipelineError, match="eventTime column 't' has type int64"):
        fs.ingest("g", 1, pd.DataFrame({"k": [1], "t": [5], "v": [1.0]}), **KW)


def test_latest_per_key(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0), (1, ts("2026-01-03"), 3.0), (2, ts("2026-01-02"), 2.0)]), **KW)
    latest = fs.latest_per_key("g", 1).to_pydict()
    assert latest["k"] == [1, 2] and latest["v"] == [3.0, 2.0]


def test_offline_store_on_s3(s3_bucket_uri: str, s3_store_options: dict) -> None:
    fs = FeatureStore(ArtifactStore(s3_bucket_uri, storage_options=s3_store_options))
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    fs.ingest("g", 1, frame([(2, ts("2026-01-02"), 2.0), (1, ts("2026-01-01"), 1.0)]), **KW)
    assert sorted(fs.read("g", 1)["k"]) == [1, 2]
    assert all(f.startswith(s3_bucket_uri) for f in fs.parquet_files("g", 1))
    assert fs.watermark("g", 1) == ts("2026-01-02").to_pydatetime() and fs.versions("g") == [1]
    table = fs.table("g", 1, columns=["v"])
    assert isinstance(table, pa.Table) and sorted(table.column("v").to_pylist()) == [1.0, 2.0]


def test_commit_gate_refusing_or_raising_publishes_nothing(fs: FeatureStore) -> None:
    fs.ingest("g", 1, frame([(1, ts("2026-01-01"), 1.0)]), **KW)
    batch = fs.prepare("g", 1, frame([(2, ts("2026-01-02"), 2.0)]), **KW)
    assert fs.commit(batch, gate=lambda: False) is None
    with pytest.raises(ValueError, match="validator crashed"):
        fs.commit(batch, gate=lambda: (_ for _ in ()).throw(ValueError("validator crashed")))
    assert fs.snapshot("g", 1)["snapshot"] == 1 and fs.read("g", 1)["k"].tolist() == [1]
    assert fs.store.list("features", "g", "v1", "snapshots") == ["000001"]
    assert fs.commit(batch, gate=lambda: True)["snapshot"] == 2


def test_all_distinct_finds_any_repeat() -> None:
    import numpy as np

    from fti_pipelines.store.dedup import all_distinct

    values = np.random.default_rng(3).permutation(np.arange(10_000, dtype=np.uint64) * 7919)
    assert all_distinct(values) and all_distinct(values[:1]) and all_distinct(values[:0])
    repeated = values.copy()
    repeated[-1] = values[1234]  # one repeat, far from its twin in input order
    assert not all_distinct(repeated)
