"""Online feature lookup alone, in process: SQLite and Redis, side by side with Feast 0.67.

    .venv/bin/python bench/inference_lookup.py [--cards 100000] [--n 20000]

Per entity (one cc_num), measured over N random keys after a warm-up:
  store.get    one feature group read through the OnlineStore API (fti_pipelines.store.online)
  lookup       the model server's whole lookup: validate the instance, read both feature groups,
               build the row in model order, observe the metrics (FeatureLookup.lookup)
  sqlite raw   the floor: one prepared keyed SELECT on the same table with the sqlite3 module
  feast        Feast 0.67 get_online_features for the same four features (SQLite online store),
               in bench/.venv-feast (skipped when that venv is absent)
Redis needs Debian's redis-server (started on a free port in a temp dir).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_common import ROOT, make_world, summary  # noqa: E402

from fti_pipelines.serving.config import ServingConfig  # noqa: E402
from fti_pipelines.serving.revision import Revision  # noqa: E402


def time_calls(fn, args_list, warmup=1000):
    for a in args_list[:warmup]:
        fn(a)
    out = []
    for a in args_list[warmup:]:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return out


def measure_backend(world, keys, label):
    config = ServingConfig.from_spec(world["spec"])
    rev = Revision(config, world["artifact_store"], world["online_store"])
    assert rev.load(), rev.reason
    store, lookup = rev.store, rev.lookup
    cols = ["amount_sum_1d", "tx_count_1d", "event_time"]
    res = {
        f"{label} store.get (1 group)": summary(time_calls(lambda k: store.get("card_transactions", 2, (k,), cols), keys)),
        f"{label} lookup (entity, 2 groups)": summary(time_calls(
            lambda k: lookup.lookup([{"cc_num": k, "amount": 12.5, "category": "online"}]), keys)),
    }
    sample = lookup.lookup([{"cc_num": keys[0], "amount": 12.5, "category": "online"}]).rows[0]
    assert sample[2] is not None and sample[4] is not None, sample
    store.close()
    return res


def measure_sqlite_raw(world, keys):
    import sqlite3

    path = world["online_store"].removeprefix("sqlite:///")
    con = sqlite3.connect("/" + path.lstrip("/"))
    sql = 'SELECT "amount_sum_1d", "tx_count_1d", "event_time" FROM "fg__card_transactions__v2" WHERE "cc_num" = ?'
    assert con.execute(sql, (keys[0],)).fetchone() is not None
    out = summary(time_calls(lambda k: con.execute(sql, (k,)).fetchone(), keys))
    con.close()
    return out


def start_redis(workdir):
    from fti_pipelines.serving.launch import free_port

    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    import redis

    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)  # poll until redis answers, bounded by the deadline


def measure_feast(workdir, world, n):
    python = ROOT / "bench" / ".venv-feast" / "bin" / "python"
    if not python.exists():
        return {"skipped": "bench/.venv-feast not found (bench/feast/setup.sh creates it)"}
    feast_dir = Path(workdir) / "feast"
    feast_dir.mkdir()
    tx_path, prof_path = feast_dir / "tx.parquet", feast_dir / "profiles.parquet"
    world["tx"][["cc_num", "event_time", "amount_sum_1d", "tx_count_1d"]].to_parquet(tx_path, index=False)
    world["profiles"].to_parquet(prof_path, index=False)
    out = subprocess.run([str(python), str(ROOT / "bench" / "inference_feast_lookup.py"), str(feast_dir), str(tx_path),
                          str(prof_path), str(n), "7"], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fti-bench-lookup-"))
    try:
        world = make_world(workdir / "sqlite", args.cards)
        keys = np.random.default_rng(3).choice(world["tx"]["cc_num"].to_numpy(), args.n + 1000).tolist()
        results = measure_backend(world, keys, "sqlite")
        results["sqlite raw SELECT (floor)"] = measure_sqlite_raw(world, keys)
        if shutil.which("redis-server"):
            proc, port = start_redis(workdir)
            try:
                rworld = make_world(workdir / "redis", args.cards, online=f"redis://127.0.0.1:{port}/0")
                results.update(measure_backend(rworld, keys, "redis"))
            finally:
                proc.terminate()
                proc.wait(10)
        else:
            results["redis"] = {"skipped": "redis-server not installed (apt-get install redis-server)"}
        results["feast 0.67 get_online_features (entity, 2 views)"] = measure_feast(workdir, world, args.n)
        print(json.dumps({"cards": args.cards, "results": results}, indent=1))
        for name, r in results.items():
            if "p50_us" in r:
                print(f"{name:48s} p50 {r['p50_us']:8.1f} us   p99 {r['p99_us']:8.1f} us")
            else:
                print(f"{name:48s} {r}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("FTI_LOG_LEVEL", "WARNING")
    main()
