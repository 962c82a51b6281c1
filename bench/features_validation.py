"""Benchmark: validating 1M rows against ~8 expectations with pandera (fti_pipelines.validation).

    .venv/bin/python bench/features_validation.py [--rows 1000000] [--repeat 3]

Side by side in one run: the same frame with Arrow-backed strings (what the feature
pipeline builds, `sources.to_pandas`) and with Python-object strings (pandas' default).
Target: >= 3M rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import pyarrow.parquet as pq

from features_data import EXPECTATIONS, median_time, peak_rss_mb, transactions
from fti_pipelines.sources import to_pandas
from fti_pipelines.validation import validate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    table = pq.read_table(transactions(args.rows, max(1, args.rows // 10)))
    checks = sum(sum(1 for k in e if k not in ("column", "mostly")) for e in EXPECTATIONS)
    frames = {"arrow_strings": to_pandas(table), "object_strings": table.to_pandas()}
    out = {"rows": args.rows, "expectations": len(EXPECTATIONS), "checks": checks, "loadavg_before": os.getloadavg()}
    for name, df in frames.items():
        report = validate(df, EXPECTATIONS)
        assert report.passed, report.summary()
        cpu0 = time.process_time()
        median, times = median_time(lambda df=df: validate(df, EXPECTATIONS), args.repeat)
        cpu = (time.process_time() - cpu0) / (args.repeat + 1)
        out[name] = {
            "median_s": round(median, 3),
            "runs_s": [round(t, 3) for t in times],
            "rows_per_s": round(args.rows / median),
            "cpu_s_per_run": round(cpu, 3),
        }
    out["peak_rss_mb"] = round(peak_rss_mb())  # the table and both frames included
    out["loadavg_after"] = os.getloadavg()
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
