"""Benchmark: materialising the latest values of 5M offline rows into the online store.

    .venv/bin/python bench/features_materialize.py [--rows 5000000] [--entities 200000 1000000] [--repeat 3]

The data is a feature group shaped like the training-join benchmark's (entity_id,
event_time, three double features; 200k entities by default, as there). It is first ingested into the offline store (not timed); then, timed,
the latest row per card is computed over the version's Parquet files and upserted into
a fresh online store (`FeatureStore.latest_per_key` + `OnlineStore.write`, what the
feature pipeline does when the online copy must catch up). SQLite (the embedded
default) and Redis (a private redis-server, if installed), for each entity count.
Target (issue 2): <= 2 s (Feast's materialize took 15 s on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from features_data import feature_group
from features_ingest import start_redis

from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.online import open_online_store


def materialize(features: FeatureStore, online_uri: str) -> tuple[float, int, float, float]:
    cpu0 = time.process_time()
    start = time.perf_counter()
    latest = features.latest_per_key("tx", 1)
    mid = time.perf_counter()
    with open_online_store(online_uri) as online:
        written = online.write("tx", 1, ["entity_id"], "event_time", latest, unique_events=True)
    end = time.perf_counter()
    return end - start, written, mid - start, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--entities", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mat-"))
    redis_server = start_redis()
    out: dict = {"rows": args.rows, "loadavg_before": os.getloadavg(), "runs": []}
    try:
        for entities in args.entities:
            features = FeatureStore(ArtifactStore(f"file://{work}/store-{entities}"))
            features.ingest("tx", 1, pq.read_table(feature_group(args.rows, entities)),
                            primary_key=["entity_id"], event_time="event_time", mode="full")
            backends = {"sqlite": lambda i: f"sqlite:///{work}/online-{entities}-{i}.db"}
            if redis_server:
                def redis_uri(i: int, url: str = redis_server[1]) -> str:
                    import redis

                    redis.Redis.from_url(url).flushdb()
                    return url
                backends["redis"] = redis_uri
            for backend, make_uri in backends.items():
                runs = [materialize(features, make_uri(i)) for i in range(args.repeat + 1)][1:]  # first = warm-up
                times = sorted(r[0] for r in runs)
                out["runs"].append({
                    "backend": backend, "entities": entities, "keys_written": runs[0][1],
                    "median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times],
                    "latest_per_key_s": round(statistics.median(r[2] for r in runs), 3),
                    "cpu_s": round(statistics.median(r[3] for r in runs), 3),
                })
                print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
    finally:
        if redis_server:
            redis_server[0].terminate()
            redis_server[0].wait()
            shutil.rmtree(redis_server[2], ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    out["loadavg_after"] = os.getloadavg()
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
