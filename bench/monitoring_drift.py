"""Drift check of a prediction-log window: 1M logged rows x 20 features, against Evidently.

    .venv/bin/python bench/monitoring_drift.py [--rows 1000000] [--train-rows 200000]
        [--methods psi ks wasserstein js] [--evidently-venv /tmp/drift/evidently-venv] [--no-evidently]

Ours: the monitoring job (`fti_pipelines.monitoring.job.run`, what `python -m
fti_pipelines.monitoring` runs) reads the window from Parquet in the contract's layout
(10 files of 100 000 rows), scores 16 numeric and 4 categorical features against the
training profile and writes report.json/report.html. Timed in a fresh process after the
imports (the job's own work: read + score + reports) and as a whole `python -m` run; peak
memory is the process's max RSS.

Evidently: DataDriftPreset (its defaults: Wasserstein/Jensen-Shannon for this size) in its
own virtualenv (Evidently needs pandas < 3), on the same window and the training rows
the profile was built from (Evidently keeps no profile: it needs the reference rows).
The venv is created when missing:

    python3 -m venv /tmp/drift/evidently-venv
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt /tmp/drift/evidently-venv/bin/pip install evidently "pandas<3"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC = 16
CATEGORICAL = 4
SHIFTED = ("n0", "n5", "c1")  # the window's deliberately shifted features
END = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

OURS = """
import json, resource, sys, time
t0 = time.perf_counter()
from fti_pipelines.contract import PipelineContext
from fti_pipelines.monitoring.job import run
imported = time.perf_counter()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
ctx = PipelineContext.from_env()
result = run(ctx)
done = time.perf_counter()
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": imported - t0, "job_s": done - imported, "cpu_s": cpu, "max_rss_mb": rss,
                  "drifted": [r["driftedFeatures"] for r in result["revisions"]],
                  "rows": [r["rows"] for r in result["revisions"]],
                  "top": [[f["name"], f["score"]] for f in result["revisions"][0]["features"][:4]]}))
"""

EVIDENTLY = """
import glob, json, resource, sys, time
t0 = time.perf_counter()
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
imported = time.perf_counter()
log_dir, reference_file, columns = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
files = sorted(glob.glob(log_dir + "/**/*.parquet", recursive=True))
current = pd.concat([pd.read_parquet(f, columns=["f." + c for c in columns]) for f in files])
current.columns = columns
reference = pd.read_parquet(reference_file, columns=columns)
read = time.perf_counter()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
done = time.perf_counter()
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
metrics = snapshot.dict()["metrics"]
drifted = [m for m in metrics if "DriftedColumnsCount" in str(m.get("metric_id", m.get("metric_name", "")))]
print(json.dumps({"import_s": imported - t0, "read_s": read - imported, "drift_s": done - read, "job_s": done - imported,
                  "cpu_s": cpu,
                  "metric_names": [str(m.get("metric_id", m.get("metric_name", "")))[:60] for m in metrics[:3]],
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": len(current),
                  "drifted": drifted[0]["value"] if drifted else None}))
"""


def features(rng: np.random.Generator, n: int, shift: bool) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i in range(NUMERIC):
        kind = i % 4
        moved = shift and f"n{i}" in SHIFTED
        if kind == 0:
            cols[f"n{i}"] = rng.lognormal(3 + (0.5 if moved else 0), 1, n)
        elif kind == 1:
            cols[f"n{i}"] = rng.normal(0 + (0.5 if moved else 0), 1, n)
        elif kind == 2:
            cols[f"n{i}"] = rng.poisson(3, n).astype(float)
        else:
            cols[f"n{i}"] = rng.uniform(0, 100, n)
    for i in range(CATEGORICAL):
        p = np.array([0.4, 0.3, 0.2, 0.1]) if not (shift and f"c{i}" in SHIFTED) else np.array([0.1, 0.2, 0.3, 0.4])
        cols[f"c{i}"] = np.array(["alpha", "beta", "gamma", "delta"], dtype=object)[rng.choice(4, n, p=p)]
    return cols


def prepare(work: Path, rows: int, train_rows: int) -> tuple[str, str, Path]:
    """The training profile, the training rows (Evidently's reference) and the logged window."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline_images"))
    from fti_pipelines.monitoring.profile import build_profile

    rng = np.random.default_rng(5)
    train = pd.DataFrame(features(rng, train_rows, shift=False))
    names = list(train.columns)
    t = time.perf_counter()
    profile = build_profile(
        train,
        names,
        {c: "numeric" if c.startswith("n") else "categorical" for c in names},
        rng.beta(1, 20, train_rows // 4),
        rng.integers(0, 2, train_rows),
        {"version": 1, "hash": "sha256:bench"},
        {"train": train_rows, "test": train_rows // 4},
    )
    print(f"profile of {train_rows} rows x {len(names)} features: {time.perf_counter() - t:.2f} s")
    model_dir = work / "models" / "bench" / "1" / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "monitoring-profile.json").write_text(json.dumps(profile))
    train.to_parquet(work / "training.parquet")
    log_root = work / "store" / "namespaces" / "default" / "predictions" / "bench" / "model_version=1" / "feature_view_version=1"
    files = 10
    for k in range(files):
        n = rows // files
        logged = END - timedelta(hours=23) + timedelta(hours=2 * k) + pd.to_timedelta(np.sort(rng.random(n)) * 3600, unit="s")
        cols = features(rng, n, shift=True)
        table = pa.table(
            {
                "request_id": pa.array([uuid.uuid4().hex for _ in range(n)]),
                "logged_at": pa.array(pd.Series(logged).dt.floor("us"), pa.timestamp("us", "UTC")),
                "model_version": pa.array(np.ones(n, dtype=np.int64)),
                "feature_view_version": pa.array(np.ones(n, dtype=np.int64)),
                "source": pa.array(["online"] * n),
                "entity": pa.array(['{"id": 1}'] * n),
                **{f"f.{c}": pa.array(v) for c, v in cols.items()},
                "defaulted": pa.array([[]] * n, pa.list_(pa.string())),
                "score": rng.beta(1, 20, n),
                "latency_ms": rng.random(n),
            }
        )
        day = logged[0].strftime("%Y-%m-%d")
        (log_root / f"date={day}").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, log_root / f"date={day}" / f"{logged[0]:%H%M%S}-bench-{uuid.uuid4().hex[:8]}.parquet")
    return f"file://{model_dir}", json.dumps(names), log_root


def run_ours(work: Path, model_uri: str, method: str) -> dict:
    spec = {
        "inferenceService": "bench",
        "window": "24h",
        "minRows": 1000,
        "drift": {"method": method, "threshold": {"psi": 0.2, "js": 0.1, "wasserstein": 0.1, "ks": 0.1}[method]},
        "revisions": [{"role": "stable", "modelVersion": 1, "featureViewVersion": 1, "modelUri": model_uri}],
    }
    env = {
        **os.environ,
        "FTI_SPEC": json.dumps(spec),
        "FTI_ARTIFACT_STORE": f"file://{work}/store",
        "FTI_NAMESPACE": "default",
        "FTI_RUN_ID": f"bench-{method}",
        "FTI_RUN_TIME": END.isoformat(),
        "FTI_TERMINATION_LOG": str(work / "termination-log"),
        "FTI_LOG_LEVEL": "WARNING",
    }
    out = subprocess.run([sys.executable, "-c", OURS], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fti_pipelines.monitoring"], env=env, capture_output=True, check=True)
    result["process_s"] = time.perf_counter() - t
    return result


def ensure_evidently(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        env = {**os.environ, "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "evidently", "pandas<3"], env=env, check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--methods", nargs="+", default=["psi", "ks", "wasserstein", "js"])
    parser.add_argument("--work", default="/tmp/drift/bench")
    parser.add_argument("--evidently-venv", default="/tmp/drift/evidently-venv")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evidently-repeat", type=int, default=1)
    args = parser.parse_args()
    work = Path(args.work)
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()}")
    model_uri, names, log_root = prepare(work, args.rows, args.train_rows)
    for method in args.methods:
        runs = [run_ours(work, model_uri, method) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["job_s"])
        times = ", ".join(f"{r['job_s']:.3f}" for r in runs)
        print(
            f"ours {method}: job {best['job_s']:.3f} s wall, {best['cpu_s']:.2f} s CPU (runs {times}), "
            f"imports {best['import_s']:.2f} s, whole process {best['process_s']:.2f} s, "
            f"max RSS {max(r['max_rss_mb'] for r in runs):.0f} MB, "
            f"rows {best['rows']}, drifted {best['drifted']}, top {best['top']}",
            flush=True,
        )
    if args.no_evidently:
        return
    try:
        python = ensure_evidently(Path(args.evidently_venv))
    except subprocess.CalledProcessError as exc:
        print(f"evidently: could not install: {exc}")
        return
    for _ in range(args.evidently_repeat):
        out = subprocess.run(
            [str(python), "-c", EVIDENTLY, str(log_root), str(work / "training.parquet"), names],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            print("evidently failed:", out.stderr[-3000:])
            return
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"evidently DataDriftPreset: job {r['job_s']:.2f} s wall (read {r['read_s']:.2f} s, drift {r['drift_s']:.2f} s, "
            f"drift CPU {r['cpu_s']:.2f} s), "
            f"imports {r['import_s']:.2f} s, max RSS {r['max_rss_mb']:.0f} MB, rows {r['rows']}, "
            f"drifted {r['drifted']} {r['metric_names']}",
            flush=True,
        )
    print(f"done {datetime.now(UTC):%H:%M} UTC, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
