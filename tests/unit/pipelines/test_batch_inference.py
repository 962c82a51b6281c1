"""Batch inference: point-in-time features, predictions equal the model's, versions on every row, atomic runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fti_pipelines.batch_inference.scoring import score_run
from fti_pipelines.contract import PipelineContext, PipelineError, run_pipeline
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.tenancy import namespace_store
from support.serving_fixtures import COLUMNS, PROFILES, TX, build_revision, feature_frames

T1 = pd.Timestamp("2026-11-01T12:00:00Z")
T2 = pd.Timestamp("2026-11-02T12:00:00Z")


@pytest.fixture
def served(tmp_path):
    """A registered model plus offline features with two versions in time of each card's aggregates."""
    rev = build_revision(tmp_path)
    tx, profiles = feature_frames()
    early = tx.assign(event_time=T1)
    late = tx.assign(event_time=T2, amount_sum_1d=tx["amount_sum_1d"] + 1000.0, tx_count_1d=tx["tx_count_1d"] + 50)
    fs = FeatureStore(namespace_store(rev.artifact_store, "default"))
    fs.ingest(TX[0], TX[1], pd.concat([early, late]), primary_key=["cc_num"], event_time="event_time", mode="full")
    fs.ingest(PROFILES[0], PROFILES[1], profiles, primary_key=["cc_num"], event_time="event_time", mode="full")
    return rev, early, late, profiles


def write_input(path, frame):
    path.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path / "entities.parquet", index=False)
    return f"file://{path}"


def run(rev, tmp_path, input_uri, run_time, as_of="runTime", chunk_rows=1000):
    spec = {**rev.spec, "mode": "batch"}
    spec.pop("online")
    spec["batch"] = {
        "input": {"uri": input_uri, "format": "parquet"},
        "output": {"uri": f"file://{tmp_path}/predictions", "format": "parquet"},
        "asOf": as_of,
        "chunkRows": chunk_rows,
    }
    env = {
        "FTI_SPEC": json.dumps(spec),
        "FTI_ARTIFACT_STORE": rev.artifact_store,
        "FTI_RUN_TIME": run_time,
        "FTI_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }
    return score_run(PipelineContext.from_env(env)), env


def expected_predictions(rev, entities, features, profiles):
    merged = entities.merge(features.drop(columns=["event_time", "amount", "category"]), on="cc_num", how="left").merge(
        profiles.drop(columns="event_time"), on="cc_num", how="left"
    )
    rows = np.empty((len(merged), len(COLUMNS)), dtype=object)
    for i, c in enumerate(COLUMNS):
        rows[:, i] = merged[c].to_numpy(dtype=object)
    return rev.pipeline.predict_proba(rows)[:, 1]


def read_run(result):
    table = pq.read_table(result["outputUri"].removeprefix("file://"))
    return table.to_pandas()


def test_scores_as_of_the_run_time_with_versions_on_every_row(served, tmp_path):
    rev, early, _late, profiles = served
    entities = early[["cc_num", "amount", "category"]].head(min(len(early), 2500))
    entities = pd.concat([entities] * 30, ignore_index=True)  # several chunks
    result, _ = run(rev, tmp_path, write_input(tmp_path / "in", entities), "2026-11-02T00:00:00Z")
    assert result["rowsScored"] == len(entities) and result["rowsMissingFeatures"] == 0
    assert (result["modelVersion"], result["featureViewVersion"]) == (1, 1)
    assert result["outputUri"].endswith("/predictions/run=20261102T000000Z")
    out = read_run(result)
    assert len(out) == len(entities)
    assert out["prediction"].to_numpy() == pytest.approx(expected_predictions(rev, entities, early, profiles))
    assert set(out["model_version"]) == {1} and set(out["feature_view_version"]) == {1}
    assert set(out["run_time"]) == {pd.Timestamp("2026-11-02T00:00:00Z")}
    assert out["cc_num"].tolist() == entities["cc_num"].tolist()  # input order kept


def test_latest_takes_the_newest_feature_rows(served, tmp_path):
    rev, early, late, profiles = served
    entities = early[["cc_num", "amount", "category"]]
    result, _ = run(rev, tmp_path, write_input(tmp_path / "in", entities), "2026-11-02T00:00:00Z", as_of="latest")
    out = read_run(result)
    assert out["prediction"].to_numpy() == pytest.approx(expected_predictions(rev, entities, late, profiles))


def test_per_row_event_time_is_point_in_time_correct(served, tmp_path):
    rev, early, late, profiles = served
    entities = pd.concat(
        [
            early[["cc_num", "amount", "category"]].assign(event_time=T1 + pd.Timedelta(hours=1)),
            early[["cc_num", "amount", "category"]].assign(event_time=T2 + pd.Timedelta(hours=1)),
        ],
        ignore_index=True,
    )
    result, _ = run(rev, tmp_path, write_input(tmp_path / "in", entities), "2026-11-05T00:00:00Z")
    out = read_run(result)
    n = len(early)
    first = expected_predictions(rev, entities.iloc[:n].drop(columns="event_time"), early, profiles)
    second = expected_predictions(rev, entities.iloc[n:].drop(columns="event_time"), late, profiles)
    assert out["prediction"].to_numpy() == pytest.approx(np.concatenate([first, second]))


def test_unknown_entities_are_scored_flagged_and_counted(served, tmp_path):
    rev, _early, _, _ = served
    entities = pd.DataFrame({"cc_num": [1000, 999_999], "amount": [5.0, 5.0], "category": ["online", "online"]})
    result, _ = run(rev, tmp_path, write_input(tmp_path / "in", entities), "2026-11-02T00:00:00Z")
    assert result["rowsMissingFeatures"] == 1
    assert read_run(result)["features_missing"].tolist() == [False, True]


def test_a_retried_run_is_not_written_twice(served, tmp_path):
    rev, early, _, _ = served
    uri = write_input(tmp_path / "in", early[["cc_num", "amount", "category"]])
    first, _ = run(rev, tmp_path, uri, "2026-11-02T00:00:00Z")
    again, _ = run(rev, tmp_path, uri, "2026-11-02T00:00:00Z")
    assert again["alreadyCommitted"] and again["rowsScored"] == first["rowsScored"]


def test_input_without_entity_keys_fails_naming_the_column(served, tmp_path):
    rev, early, _, _ = served
    uri = write_input(tmp_path / "in", early[["amount", "category"]])
    with pytest.raises(PipelineError) as err:
        run(rev, tmp_path, uri, "2026-11-02T00:00:00Z")
    assert err.value.reason == "InputMissingColumn" and "cc_num" in err.value.message


def test_skewed_feature_view_is_refused_and_reported_per_contract(served, tmp_path):
    rev, early, _, _ = served
    uri = write_input(tmp_path / "in", early[["cc_num", "amount", "category"]])
    _, env = run(rev, tmp_path, uri, "2026-11-02T00:00:00Z")
    spec = json.loads(env["FTI_SPEC"])
    spec["featureView"]["version"] = 2
    env = {**env, "FTI_SPEC": json.dumps(spec), "FTI_RUN_TIME": "2026-11-03T00:00:00Z"}
    assert run_pipeline(score_run, env) == 1
    result = json.loads((tmp_path / "termination-log").read_text())
    assert result["reason"] == "FeatureViewMismatch" and not result["ok"]
