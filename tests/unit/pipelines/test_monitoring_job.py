"""The monitoring job end to end: profile + prediction log window -> per-revision status, reports, result."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fti_pipelines.contract import run_pipeline
from fti_pipelines.monitoring.profile import build_profile
from fti_pipelines.store.tenancy import namespace_store

END = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
RNG = np.random.default_rng(11)


def write_profile(tmp_path, name="fraud", version=1, shift=0.0):
    n = 5000
    frame = pd.DataFrame(
        {
            "amount": RNG.lognormal(3 + shift, 1, n),
            "tx_count_1d": RNG.poisson(3, n).astype(float),
            "category": RNG.choice(["food", "travel", "misc"], n),
        }
    )
    profile = build_profile(
        frame,
        list(frame.columns),
        {"amount": "numeric", "tx_count_1d": "numeric", "category": "categorical"},
        scores=RNG.beta(1, 20, 1000),
        labels=RNG.integers(0, 2, n),
        dataset={"version": 1, "hash": "sha256:x"},
        split={"train": n, "test": 1000},
    )
    model_dir = tmp_path / "models" / name / str(version) / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "monitoring-profile.json").write_text(json.dumps(profile))
    return f"file://{model_dir}"


def write_log(store_uri, isvc, model_version, fv_version, n, start, end, amount_shift=0.0, files=3):
    """Rows in the contract's layout, logged uniformly over [start, end)."""
    root = namespace_store(store_uri, "default")
    times = start + (end - start) * np.sort(RNG.random(n))
    for chunk in np.array_split(np.arange(n), files):
        ts = pd.to_datetime(pd.Series(times[chunk]), utc=True)
        table = pa.table(
            {
                "request_id": [uuid.uuid4().hex for _ in chunk],
                "logged_at": pa.array(ts, pa.timestamp("us", "UTC")),
                "model_version": pa.array([model_version] * len(chunk), pa.int64()),
                "feature_view_version": pa.array([fv_version] * len(chunk), pa.int64()),
                "source": ["online"] * len(chunk),
                "entity": ['{"cc_num": 1}'] * len(chunk),
                "f.amount": RNG.lognormal(3 + amount_shift, 1, len(chunk)),
                "f.tx_count_1d": RNG.poisson(3, len(chunk)).astype(float),
                "f.category": RNG.choice(["food", "travel", "misc"], len(chunk)),
                "defaulted": pa.array([["tx_count_1d"] if i % 10 == 0 else [] for i in chunk], pa.list_(pa.string())),
                "score": RNG.beta(1, 20, len(chunk)),
                "latency_ms": RNG.random(len(chunk)),
            }
        )
        day = ts.iloc[0].strftime("%Y-%m-%d")
        path = root.path(
            "predictions",
            isvc,
            f"model_version={model_version}",
            f"feature_view_version={fv_version}",
            f"date={day}",
            f"{ts.iloc[0]:%H%M%S}-pod-{uuid.uuid4().hex[:8]}.parquet",
        )
        root.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        pq.write_table(table, path)


def run(tmp_path, spec, store_uri):
    log = tmp_path / "termination-log"
    env = {
        "FTI_SPEC": json.dumps(spec),
        "FTI_ARTIFACT_STORE": store_uri,
        "FTI_NAMESPACE": "default",
        "FTI_RUN_ID": "fraud-monitor-1",
        "FTI_RUN_TIME": END.isoformat(),
        "FTI_TERMINATION_LOG": str(log),
    }
    code = run_pipeline(lambda ctx: __import__("fti_pipelines.monitoring.job", fromlist=["main"]).main(ctx), env)
    return code, json.loads(log.read_text())


def spec_for(stable_uri, canary_uri=None, **extra):
    revisions = [
        {
            "role": "stable",
            "modelVersion": 1,
            "featureViewVersion": 1,
            "modelUri": stable_uri,
            "profileUri": stable_uri + "/monitoring-profile.json",
        }
    ]
    if canary_uri:
        revisions.append(
            {
                "role": "canary",
                "modelVersion": 2,
                "featureViewVersion": 1,
                "modelUri": canary_uri,
                "profileUri": canary_uri + "/monitoring-profile.json",
            }
        )
    return {
        "inferenceService": "fraud",
        "window": "24h",
        "minRows": 1000,
        "drift": {"method": "psi", "threshold": 0.2},
        "revisions": revisions,
        **extra,
    }


@pytest.fixture
def store_uri(tmp_path):
    return f"file://{tmp_path}/store"


def test_shifted_stable_drifts_and_canary_does_not(tmp_path, store_uri):
    stable, canary = write_profile(tmp_path, version=1), write_profile(tmp_path, version=2)
    start = END - timedelta(hours=24)
    write_log(store_uri, "fraud", 1, 1, 4000, start, END, amount_shift=1.0)
    write_log(store_uri, "fraud", 2, 1, 3000, start, END)
    # Outside the window (the day before, and after the run time): never read.
    write_log(store_uri, "fraud", 1, 1, 5000, start - timedelta(hours=30), start - timedelta(hours=1))
    write_log(store_uri, "fraud", 1, 1, 500, END, END + timedelta(hours=1), files=1)
    code, result = run(tmp_path, spec_for(stable, canary), store_uri)
    assert code == 0, result
    by_role = {r["role"]: r for r in result["revisions"]}
    s, c = by_role["stable"], by_role["canary"]
    assert (s["rows"], c["rows"]) == (4000, 3000)
    assert s["status"] == "Drifted" and s["driftedFeatures"] == 1
    assert s["features"][0]["name"] == "amount" and s["features"][0]["score"] > 0.5 and s["features"][0]["drifted"]
    assert c["status"] == "NoDrift" and c["driftedFeatures"] == 0
    assert all(f["score"] < 0.05 for f in c["features"])
    assert s["windowStart"] == "2026-03-01T06:00:00Z" and s["windowEnd"] == "2026-03-02T06:00:00Z"
    report_dir = tmp_path / "store" / "namespaces" / "default" / "monitoring" / "fraud" / "fraud-monitor-1"
    assert s["reportUri"] == f"file://{report_dir}/report.json"
    report = json.loads((report_dir / "report.json").read_text())
    stable_report = report["revisions"][0]
    assert {f["name"]: f["defaultedRows"] for f in stable_report["features"]}["tx_count_1d"] == 400
    assert stable_report["prediction"]["score"] < 0.1  # the logged scores come from the training score distribution
    page = (report_dir / "report.html").read_text()
    assert "<svg" in page and "amount" in page and "<script" not in page


def test_other_methods_agree_on_the_shift(tmp_path, store_uri):
    stable = write_profile(tmp_path)
    write_log(store_uri, "fraud", 1, 1, 3000, END - timedelta(hours=5), END, amount_shift=1.0)
    for method in ("js", "wasserstein", "ks"):
        code, result = run(tmp_path, spec_for(stable, drift={"method": method, "threshold": 0.1}), store_uri)
        r = result["revisions"][0]
        assert code == 0 and r["status"] == "Drifted", (method, r)
        assert [f["name"] for f in r["features"] if f["drifted"]] == ["amount"], (method, r)


def test_few_rows_are_not_enough_data(tmp_path, store_uri):
    stable = write_profile(tmp_path)
    write_log(store_uri, "fraud", 1, 1, 999, END - timedelta(hours=2), END, amount_shift=2.0)
    code, result = run(tmp_path, spec_for(stable), store_uri)
    r = result["revisions"][0]
    assert code == 0 and r["status"] == "NotEnoughData" and r["rows"] == 999 and r["features"] == []


def test_empty_log_is_not_enough_data(tmp_path, store_uri):
    code, result = run(tmp_path, spec_for(write_profile(tmp_path)), store_uri)
    assert code == 0 and result["revisions"][0]["status"] == "NotEnoughData" and result["revisions"][0]["rows"] == 0


def test_missing_profile_names_the_uri(tmp_path, store_uri):
    missing = f"file://{tmp_path}/models/fraud/9/model"
    code, result = run(tmp_path, spec_for(missing), store_uri)
    assert code == 1 and result["reason"] == "ProfileNotFound"
    assert f"{missing}/monitoring-profile.json" in result["error"]


def test_bad_spec_names_the_field(tmp_path, store_uri):
    code, result = run(tmp_path, spec_for(write_profile(tmp_path), drift={"method": "chi2"}), store_uri)
    assert code == 1 and result["reason"] == "InvalidSpec" and "spec.drift.method" in result["error"]
    code, result = run(tmp_path, spec_for(write_profile(tmp_path, version=3), drift={"features": ["nope"]}), store_uri)
    assert code == 1 and result["reason"] == "UnknownFeature" and "nope" in result["error"]


def test_long_feature_names_still_fit_the_termination_message():
    from fti_pipelines.monitoring.job import fit_message

    feature = {"name": "x" * 150, "method": "psi", "score": 0.5, "threshold": 0.2, "drifted": True}
    revision = {"role": "stable", "modelVersion": 1, "rows": 5000, "status": "Drifted", "features": [feature] * 10}
    fitted = fit_message([revision, {**revision, "role": "canary"}])
    assert len(json.dumps(fitted)) < 3700
    assert [r["status"] for r in fitted["revisions"]] == ["Drifted", "Drifted"]
    assert 0 < len(fitted["revisions"][0]["features"]) < 10 and fitted["revisions"][0]["featuresTruncated"]


def test_reads_what_the_prediction_log_writer_writes(tmp_path, store_uri):
    """The model server's writer (store/prediction_log.py) and this reader agree on the layout and columns."""
    from fti_pipelines.store.prediction_log import PredictionLogFiles, feature_array, log_table
    from fti_pipelines.store.tenancy import predictions_dir

    stable = write_profile(tmp_path)
    features = [("amount", True), ("tx_count_1d", True), ("category", False)]
    files = PredictionLogFiles(predictions_dir(store_uri, "default", "fraud"), 1, 1, "fraud-online-pod-1")
    n = 1500
    start = END - timedelta(hours=3)
    micros = (start.timestamp() * 1e6 + np.sort(RNG.random(n)) * 3 * 3600e6).astype(np.int64)
    files.write(
        log_table(
            features,
            request_ids=[f"r{i}" for i in range(n)],
            logged_at_us=micros,
            model_version=1,
            feature_view_version=1,
            source="online",
            entities=['{"cc_num": 1}'] * n,
            columns=[
                feature_array(RNG.lognormal(3, 1, n).tolist(), True),
                feature_array([None] * 300 + RNG.poisson(3, n - 300).astype(float).tolist(), True),
                feature_array(RNG.choice(["food", "travel", "misc"], n).tolist(), False),
            ],
            looked_up=[1],
            scores=RNG.beta(1, 20, n).tolist(),
            latency_ms=[1.0] * n,
        )
    )
    code, result = run(tmp_path, spec_for(stable), store_uri)
    r = result["revisions"][0]
    assert code == 0 and r["rows"] == n and r["status"] == "Drifted", r  # 20% of tx_count_1d suddenly missing
    assert [f["name"] for f in r["features"] if f["drifted"]] == ["tx_count_1d"]
    report = json.loads((tmp_path / "store/namespaces/default/monitoring/fraud/fraud-monitor-1/report.json").read_text())
    assert {f["name"]: f["defaultedRows"] for f in report["revisions"][0]["features"]}["tx_count_1d"] == 300
