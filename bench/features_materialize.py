"""Benchmark: materialising the latest values of 5M offline rows into the online store.

    .venv/bin/python bench/features_materialize.py [--rows 5000000] [--entities 200000 1000000] [--repeat 3]
                                                   [--backends sqlite redis] [--other-keys N]

The data is a feature group shaped like the training-join benchmark's (entity_id,
event_time, three double features; 200k entities by default, as there). It is first
ingested into the offline store (not timed); then, timed, the version's Parquet files are
read and their latest row per entity written into a fresh online store
(`FeatureStore.table` + `OnlineStore.write`, which computes the latest row per key
itself: what the feature pipeline does when the online copy must catch up). SQLite (the
embedded default) and Redis (a private redis-server, if installed), for each entity
count. `latest_per_key_s` times the read plus that computation alone, separately.
`--other-keys N` first fills the Redis with N keys of another feature group, as a Redis that
serves several groups holds them (a write that SCANs walks those too); between runs the
version is then dropped (not timed) instead of the database flushed.
Target: <= 2 s (bench/RESULTS.md compares it with Feast).
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
from features_ingest import server_cpu, start_redis, stop_redis
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.online import open_online_store


def materialize(features: FeatureStore, online_uri: str) -> tuple[float, int, float, float, float]:
    start = time.perf_counter()
    features.latest_per_key("tx", 1)  # the read + latest-per-key part alone, for the breakdown
    part = time.perf_counter() - start
    cpu0, server0 = time.process_time(), server_cpu(online_uri)
    start = time.perf_counter()
    with open_online_store(online_uri) as online:
        # the committed data is unique on key + event time (ingestion deduplicates)
        written = online.write("tx", 1, ["entity_id"], "event_time", features.table("tx", 1), unique_events=True)
    end = time.perf_counter()
    return end - start, written, part, time.process_time() - cpu0, server_cpu(online_uri) - server0


def fill_other_group(url: str, keys: int, batch: int = 10_000) -> None:
    """`keys` entities of another feature group's version, each a record of three values."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=600)
    client.flushdb()
    conn = client.connection_pool.get_connection()
    try:
        for start in range(0, keys, batch):
            stop = min(start + batch, keys)
            record = b"1767225600000000\x1f1\x1f2.5"
            conn.send_command(b"MSET", *(x for k in range(start, stop) for x in (b"fti:other:v1#1:%d" % k, record)))
            conn.read_response()
    finally:
        client.connection_pool.release(conn)
    assert client.dbsize() >= keys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--entities", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"])
    ap.add_argument("--other-keys", type=int, default=0, help="Redis: keys of another group already in the server")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mat-"))
    redis_server = start_redis() if "redis" in args.backends else None
    out: dict = {"rows": args.rows, "other_keys": args.other_keys, "loadavg_before": os.getloadavg(), "runs": []}
    try:
        for entities in args.entities:
            features = FeatureStore(ArtifactStore(f"file://{work}/store-{entities}"))
            features.ingest(
                "tx",
                1,
                pq.read_table(feature_group(args.rows, entities)),
                primary_key=["entity_id"],
                event_time="event_time",
                mode="full",
            )
            backends = (
                {"sqlite": lambda i, entities=entities: f"sqlite:///{work}/online-{entities}-{i}.db"}
                if "sqlite" in args.backends
                else {}
            )
            if redis_server:
                if args.other_keys:
                    fill_other_group(redis_server[1], args.other_keys)

                def redis_uri(i: int, url: str = redis_server[1]) -> str:
                    import redis

                    if args.other_keys:
                        with open_online_store(url) as online:
                            online.drop_version("tx", 1)
                    else:  # 1M keys take more than the default 5 s under load
                        redis.Redis.from_url(url, socket_timeout=600).flushdb()
                    return url

                backends["redis"] = redis_uri
            for backend, make_uri in backends.items():
                runs = [materialize(features, make_uri(i)) for i in range(args.repeat + 1)][1:]  # first = warm-up
                times = sorted(r[0] for r in runs)
                out["runs"].append(
                    {
                        "backend": backend,
                        "entities": entities,
                        "keys_written": runs[0][1],
                        "median_s": round(statistics.median(times), 3),
                        "runs_s": [round(t, 3) for t in times],
                        "latest_per_key_s": round(statistics.median(r[2] for r in runs), 3),
                        "cpu_s": round(statistics.median(r[3] for r in runs), 3),
                        "server_cpu_s": round(statistics.median(r[4] for r in runs), 3),
                    }
                )
                print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
    finally:
        stop_redis(redis_server)
        shutil.rmtree(work, ignore_errors=True)
    out["loadavg_after"] = os.getloadavg()
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
