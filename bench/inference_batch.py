"""Batch scoring throughput and peak memory: 1M and 5M entities, same features and model.

    .venv/bin/python bench/inference_batch.py [--sizes 1000000 5000000] [--cards 100000] [--chunk 100000]

Each size runs `python -m fti_pipelines.batch_inference` in a fresh process (as a Job
would), point in time as of the run time, over an input Parquet of N (cc_num, amount,
category) rows drawn from `--cards` cards. Peak memory is the child's max RSS
(getrusage of a per-run wrapper process); the target is a flat peak from 1M to 5M.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_common import make_world

# Runs the pipeline as a child and reports its max RSS: one wrapper per run keeps runs apart.
WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run([sys.executable, "-m", "fti_pipelines.batch_inference"]).returncode
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def write_input(path: Path, n: int, cards: np.ndarray, seed: int = 1) -> None:
    """N entity rows, written in slices so generating 5M rows does not need them all in memory."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    writer = None
    step = 500_000
    for start in range(0, n, step):
        m = min(step, n - start)
        table = pa.table(
            {
                "cc_num": rng.choice(cards, m),
                "amount": rng.gamma(2.0, 40.0, m).round(2),
                "category": pa.array(rng.choice(["grocery", "online", "travel", "retail"], m)),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path / "entities.parquet", table.schema)
        writer.write_table(table, row_group_size=100_000)
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fti-bench-batch-"))
    results = {}
    try:
        world = make_world(workdir / "world", args.cards, offline=True)
        cards = world["tx"]["cc_num"].to_numpy()
        for n in args.sizes:
            inp = workdir / f"input-{n}"
            write_input(inp, n, cards)
            spec = {
                "name": "fraud-batch",
                "model": {"name": "fraud", "version": 1},
                "featureView": {"name": "fraud", "version": 1},
                "mode": "batch",
                "batch": {
                    "input": {"uri": f"file://{inp}", "format": "parquet"},
                    "output": {"uri": f"file://{workdir}/out-{n}", "format": "parquet"},
                    "asOf": "runTime",
                    "chunkRows": args.chunk,
                },
            }
            env = {
                **os.environ,
                "FTI_SPEC": json.dumps(spec),
                "FTI_ARTIFACT_STORE": world["artifact_store"],
                "FTI_RUN_TIME": "2026-11-02T00:00:00Z",
                "FTI_TERMINATION_LOG": str(workdir / f"result-{n}.json"),
                "FTI_LOG_LEVEL": "WARNING",
            }
            out = subprocess.run(
                [sys.executable, "-c", WRAPPER], env=env, capture_output=True, text=True, check=False
            )  # asserted below
            measured = json.loads(out.stdout.strip().splitlines()[-1])
            result = json.loads((workdir / f"result-{n}.json").read_text())
            assert measured["rc"] == 0 and result["ok"] and result["rowsScored"] == n, (measured, result, out.stderr[-2000:])
            scored = pq.ParquetFile(next(Path(result["outputUri"].removeprefix("file://")).glob("part-*.parquet")))
            results[n] = {
                "rows": n,
                "seconds": round(measured["seconds"], 2),
                "rows_per_s": round(n / measured["seconds"]),
                "pipeline_seconds": result.get("seconds"),
                "max_rss_mb": round(measured["max_rss_mb"], 1),
                "output_columns": scored.schema_arrow.names,
            }
            shutil.rmtree(inp)
            print(json.dumps(results[n]), flush=True)
        print(json.dumps({"cards": args.cards, "chunkRows": args.chunk, "results": results}, indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
