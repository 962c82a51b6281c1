"""Synthetic card transactions for the feature-store benchmarks (seeded, generated once).

    rows, entities -> bench/data/features/tx_r<rows>_e<entities>.parquet

Columns: tx_id (unique string), cc_num (int), event_time (timestamp us UTC, unique per
card), amount (double), category (one of 4 strings), merchant (string), lat/long
(double), is_fraud (bool).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("FTI_BENCH_DATA") or HERE / "data") / "features"
CATEGORIES = ["grocery", "travel", "online", "retail"]

# ~8 expectations, as a FeaturePipeline would declare them
EXPECTATIONS = [
    {"column": "tx_id", "notNull": True, "unique": True},
    {"column": "tx_id", "regex": "tx[0-9]+"},
    {"column": "cc_num", "notNull": True, "dtype": "int"},
    {"column": "amount", "between": {"min": 0, "max": 100000}, "mostly": 0.999},
    {"column": "category", "in": CATEGORIES},
    {"column": "lat", "between": {"min": -90, "max": 90}},
]


def transactions(rows: int, entities: int, seed: int = 7) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"tx_r{rows}_e{entities}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    t0 = 1_788_220_800_000_000  # 2026-09-01T00:00:00Z in microseconds
    cc = rng.integers(4_000_000_000_000, 4_000_000_000_000 + entities, rows)
    # distinct microsecond offsets: no two rows share (cc_num, event_time)
    et = t0 + rng.permutation(rows).astype(np.int64) * 1_000_000
    table = pa.table(
        {
            "tx_id": pa.array(np.char.add("tx", np.arange(rows).astype(str)), pa.string()),
            "cc_num": pa.array(cc, pa.int64()),
            "event_time": pa.array(et, pa.timestamp("us", tz="UTC")),
            "amount": pa.array(np.round(rng.gamma(2.0, 40.0, rows), 2)),
            "category": pa.array(np.array(CATEGORIES)[rng.integers(0, 4, rows)], pa.string()),
            "merchant": pa.array(np.char.add("m", rng.integers(0, 5000, rows).astype(str)), pa.string()),
            "lat": pa.array(rng.uniform(25, 49, rows)),
            "long": pa.array(rng.uniform(-124, -67, rows)),
            "is_fraud": pa.array(rng.random(rows) < 0.01),
        }
    )
    pq.write_table(table, path, row_group_size=250_000)
    return path


def feature_group(rows: int, entities: int, features: int = 3, seed: int = 11) -> Path:
    """A feature group shaped like bench/training_join.py's: entity_id, event_time, `features` doubles.

    One row per (entity, event time), as ingestion guarantees.
    """
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"fg_r{rows}_e{entities}_f{features}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    t0 = 1_788_220_800_000_000
    cols = {
        "entity_id": pa.array(rng.integers(0, entities, rows), pa.int64()),
        "event_time": pa.array(t0 + rng.permutation(rows).astype(np.int64) * 1_000_000, pa.timestamp("us", tz="UTC")),
    }
    for i in range(features):
        cols[f"f{i}"] = pa.array(rng.random(rows))
    pq.write_table(pa.table(cols), path, row_group_size=512_000)
    return path


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (getrusage ru_maxrss, MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_time(fn: Callable[[], object], repeat: int, setup: Callable[[], None] | None = None) -> tuple[float, list[float]]:
    """One warm-up, then `repeat` timed runs; returns (median, all)."""
    if setup:
        setup()
    fn()
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times
