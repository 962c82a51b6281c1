"""Offline compaction changes no read, is atomic, and never makes the online store re-materialise.

A version built by many incremental writes (late rows, re-sent duplicates) is compacted; every
read is compared before and after: the version's rows, the point-in-time training join, and
what the next ingestion of late and duplicate rows writes (against a copy of the store that
was not compacted). A compaction that dies half-way leaves the previous snapshot current.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fti_operator.api import FeatureViewSpec
from fti_pipelines.contract import run_pipeline
from fti_pipelines.feature import run
from fti_pipelines.feature_view import plan_join, point_in_time_join, resolve_sources
from fti_pipelines.store import compaction
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore

DAY = pd.Timestamp("2026-03-01", tz="UTC")


def store_at(path) -> FeatureStore:
    return FeatureStore(ArtifactStore(f"file://{path}"))


def tx_batch(i: int, rng: np.random.Generator) -> pd.DataFrame:
    """Batch i: 50 transactions of hour i, five of them late (a day earlier), two re-sent from batch i-1."""
    n = 50
    times = [DAY + pd.Timedelta(hours=i, minutes=int(m)) for m in rng.integers(0, 60, n)]
    times[:5] = [t - pd.Timedelta(days=1) for t in times[:5]]
    df = pd.DataFrame(
        {"cc": rng.integers(0, 40, n), "t": times, "amount": rng.random(n).round(4), "is_fraud": rng.integers(0, 2, n)}
    )
    return df.drop_duplicates(["cc", "t"])


def build(path) -> tuple[FeatureStore, list[pd.DataFrame]]:
    features = store_at(path)
    rng = np.random.default_rng(7)
    batches = []
    for i in range(40):
        df = tx_batch(i, rng)
        if batches:
            df = pd.concat([df, batches[-1].head(2)])  # a source that re-sends what it sent
        batches.append(df)
        features.ingest("tx", 1, df, primary_key=["cc"], event_time="t")
        profile = pd.DataFrame({"cc": range(40), "t": [DAY + pd.Timedelta(hours=i)] * 40, "limit": [float(i)] * 40})
        features.ingest("profile", 1, profile, primary_key=["cc"], event_time="t")
    return features, batches


def rows(features: FeatureStore, group: str) -> pd.DataFrame:
    df = features.read(group, 1)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def training_join(features: FeatureStore) -> pd.DataFrame:
    spec = FeatureViewSpec.model_validate(
        {
            "name": "fraud",
            "version": 1,
            "label": {"featureGroup": {"name": "tx", "version": 1}, "column": "is_fraud"},
            "features": [
                {"featureGroup": {"name": "tx", "version": 1}, "columns": ["amount"]},
                {"featureGroup": {"name": "profile", "version": 1}, "columns": ["limit"]},
            ],
        }
    )
    plan = plan_join(spec, resolve_sources(spec, features))
    return point_in_time_join(plan, filesystem=features.store.fs).to_pandas()


def test_compaction_changes_no_read_and_the_next_ingestion_writes_the_same(tmp_path) -> None:
    features, batches = build(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the same store, left uncompacted
    plain = store_at(tmp_path / "b")
    before = features.snapshot("tx", 1)
    assert len(before["files"]) == 40
    tx_rows, profile_rows, joined = rows(features, "tx"), rows(features, "profile"), training_join(features)

    done = compaction.compact(features, "tx", 1)
    compaction.compact(features, "profile", 1)
    after = features.snapshot("tx", 1)
    assert done == after and after["snapshot"] == before["snapshot"] + 1 and after["mode"] == "compact"
    assert len(after["files"]) == 1 and after["dataSnapshot"] == before["snapshot"] and after["compactedFiles"] == 40
    for key in ("rows", "watermark", "schema"):
        assert after[key] == before[key], key
    pd.testing.assert_frame_equal(rows(features, "tx"), tx_rows)
    pd.testing.assert_frame_equal(rows(features, "profile"), profile_rows)
    pd.testing.assert_frame_equal(training_join(features), joined)
    # sorted by (key, event time), in row groups a filter on the key can skip
    stored = pq.read_table(features.store.path("features", "tx", "v1", after["files"][0])).to_pandas()
    assert stored[["cc", "t"]].equals(stored[["cc", "t"]].sort_values(["cc", "t"]).reset_index(drop=True))

    # The next run: late rows, rows re-sent from every batch, new rows. It writes exactly
    # what it writes on the uncompacted copy.
    rng = np.random.default_rng(11)
    resent = pd.concat([b.sample(3, random_state=1) for b in batches])
    late = tx_batch(3, rng)  # hour 3: long before the watermark
    fresh = tx_batch(41, rng)
    df = pd.concat([resent, late, fresh])
    one = features.prepare("tx", 1, df, primary_key=["cc"], event_time="t")
    two = plain.prepare("tx", 1, df, primary_key=["cc"], event_time="t")
    assert (one.rows_duplicate, one.rows_late) == (two.rows_duplicate, two.rows_late)
    assert one.rows_duplicate >= len(resent) and one.rows_late > 0
    assert one.table.equals(two.table)
    features.commit(one)
    plain.commit(two)
    pd.testing.assert_frame_equal(rows(features, "tx"), rows(plain, "tx"))
    pd.testing.assert_frame_equal(training_join(features), training_join(plain))


def test_a_compaction_is_atomic_readers_see_the_old_files_or_the_new_never_both(tmp_path, monkeypatch) -> None:
    features, _ = build(tmp_path)
    before = features.snapshot("tx", 1)
    expected = rows(features, "tx")
    written = []

    def dies(table, where, **kwargs):
        written.append(where)
        raise OSError("killed while writing")

    with monkeypatch.context() as patch:
        patch.setattr(compaction.pq, "write_table", dies)
        with pytest.raises(OSError, match="killed while writing"):
            compaction.compact(features, "tx", 1)
    assert written and features.snapshot("tx", 1) == before, "the half-written snapshot is not visible"
    pd.testing.assert_frame_equal(rows(features, "tx"), expected)
    # Done: the new snapshot lists only the compacted file; a reader still holding the old
    # manifest reads the same rows, from the old files, which stay.
    done = compaction.compact(features, "tx", 1)
    assert not set(done["files"]) & set(before["files"])
    old = features.table("tx", 1, snap=before).to_pandas()
    pd.testing.assert_frame_equal(old.sort_values(list(old.columns)).reset_index(drop=True), expected)
    assert compaction.compact(features, "tx", 1) is None, "one file: nothing to compact"


def test_the_feature_pipeline_compacts_past_the_threshold_and_the_online_store_stays_current(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compaction, "COMPACT_AT_FILES", 3)
    raw = tmp_path / "raw"
    raw.mkdir()
    spec = {
        "featureGroup": {"name": "tx", "version": 1, "primaryKey": ["cc"], "eventTime": "t", "online": True},
        "source": {"uri": f"file://{raw}/", "format": "parquet"},
    }
    results = []
    for i in range(6):  # 50 new cards per run: a re-materialisation would write every card so far
        cards = range(i * 50, i * 50 + 50)
        df = pd.DataFrame({"cc": cards, "t": [DAY + pd.Timedelta(hours=i)] * 50, "amount": [1.0] * 50})
        df.to_parquet(raw / f"{i}.parquet")
        log = tmp_path / f"result-{i}.json"
        env = {
            "FTI_SPEC": json.dumps(spec),
            "FTI_ARTIFACT_STORE": f"file://{tmp_path}/store",
            "FTI_ONLINE_STORE": f"sqlite:///{tmp_path}/online.db",
            "FTI_RUN_ID": f"run-{i}",
            "FTI_TERMINATION_LOG": str(log),
        }
        assert run_pipeline(run, env) == 0, log.read_text()
        results.append(json.loads(log.read_text()))
    compacted = [r for r in results if r.get("compaction")]
    assert compacted and compacted[0]["compaction"]["filesBefore"] == 4 and compacted[0]["compaction"]["filesAfter"] == 1
    # Every run wrote only its own new rows online, before and after a compaction: never the whole version again.
    assert [(r["rowsWritten"], r["onlineRowsWritten"]) for r in results] == [(50, 50)] * 6


def test_a_compaction_the_run_cannot_do_leaves_the_run_succeeded(tmp_path, monkeypatch) -> None:
    features, _ = build(tmp_path)
    manifest = features.snapshot("tx", 1)

    def lost_race(*_args, **_kwargs):
        raise compaction.ConcurrentWrite("tx", 1, "000041")

    monkeypatch.setattr(compaction, "compact", lost_race)
    skipped = compaction.compact_after_run(features, manifest, "run-x")
    assert "000041" in skipped["compaction"]["skipped"] and features.snapshot("tx", 1) == manifest


def test_the_cli_compacts_a_namespaces_version_on_demand(tmp_path, capsys) -> None:
    features, _ = build(tmp_path / "namespaces" / "team")
    expected = rows(features, "tx")
    assert compaction.main([f"file://{tmp_path}", "team", "tx", "1"]) == 0
    assert "40 file(s) -> 1" in capsys.readouterr().out
    assert len(features.snapshot("tx", 1)["files"]) == 1
    pd.testing.assert_frame_equal(rows(features, "tx"), expected)
    assert compaction.main([f"file://{tmp_path}", "team", "tx", "1"]) == 0  # one file: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    assert compaction.main([f"file://{tmp_path}", "other", "tx", "1"]) == 1  # another namespace has no such data
