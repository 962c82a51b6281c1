"""Benchmark: feature ingestion end to end - read source, validate, write offline Parquet, upsert online.

    .venv/bin/python bench/features_ingest.py [--rows 1000000] [--entities 100000] [--repeat 3]
                                              [--targets offline_only offline+sqlite offline+redis]

Runs the real pipeline (`fti_pipelines.feature.run`, as `python -m fti_pipelines.feature`
would) on a Parquet source of `--rows` transactions over `--entities` cards, with the
expectations of features_data.EXPECTATIONS, into a fresh store each time:
offline only, offline + SQLite online, offline + Redis online (a private redis-server,
if the Debian package is installed). Reports the median wall time, rows/s and the
pipeline's own per-stage timings of the median run. Target: >= 1M rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from features_data import EXPECTATIONS, peak_rss_mb, transactions
from fti_pipelines.contract import PipelineContext
from fti_pipelines.feature import run


def start_redis() -> tuple[subprocess.Popen, str, str] | None:
    binary = shutil.which("redis-server")
    if not binary:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", workdir


def stop_redis(server: tuple[subprocess.Popen, str, str] | None) -> None:
    """Stop what `start_redis` started and remove its directory."""
    if server:
        server[0].terminate()
        server[0].wait()
        shutil.rmtree(server[2], ignore_errors=True)


def server_cpu(online_uri: str | None) -> float:
    """redis-server's own CPU seconds so far (0 without Redis: SQLite runs in this process)."""
    if not online_uri or not online_uri.startswith("redis"):
        return 0.0
    import redis

    cpu = redis.Redis.from_url(online_uri).info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def one_run(source: Path, online: str | None, workdir: Path) -> tuple[float, dict]:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    spec = {
        "featureGroup": {
            "name": "card_transactions",
            "version": 1,
            "primaryKey": ["cc_num"],
            "eventTime": "event_time",
            "online": online is not None,
        },
        "source": {"uri": f"file://{source}", "format": "parquet"},
        "ingestion": "incremental",
        "validation": {"onFailure": "fail", "expectations": EXPECTATIONS},
    }
    if online and online.startswith("redis"):
        import redis

        redis.Redis.from_url(online, socket_timeout=600).flushdb()  # 1M keys take more than the default 5 s under load
    online_uri = None if online is None else (f"sqlite:///{workdir}/online.db" if online == "sqlite" else online)
    ctx = PipelineContext(
        spec=spec,
        artifact_store=f"file://{workdir}/store",
        online_store=online_uri,
        namespace="bench",
        resource="bench",
        run_id="bench",
        run_time=None,
    )  # type: ignore[arg-type]
    server0 = server_cpu(online_uri)
    cpu0 = time.process_time()
    start = time.perf_counter()
    result = run(ctx)
    elapsed = time.perf_counter() - start
    result["cpu_s"] = time.process_time() - cpu0  # this process, all threads (not redis-server)
    result["server_cpu_s"] = server_cpu(online_uri) - server0
    assert result["rowsWritten"] > 0 and result["rowsRejected"] == 0, result
    return elapsed, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--targets",
        nargs="+",
        choices=["offline_only", "offline+sqlite", "offline+redis"],
        default=["offline_only", "offline+sqlite", "offline+redis"],
    )
    args = ap.parse_args()
    data = transactions(args.rows, args.entities)
    source = Path(tempfile.mkdtemp(prefix="bench-src-"))
    shutil.copy(data, source / "part-0.parquet")
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    redis_server = start_redis() if "offline+redis" in args.targets else None
    targets: list[tuple[str, str | None]] = [
        t for t in [("offline_only", None), ("offline+sqlite", "sqlite")] if t[0] in args.targets
    ]
    if redis_server:
        targets.append(("offline+redis", redis_server[1]))
    out: dict = {"rows": args.rows, "entities": args.entities, "loadavg_before": os.getloadavg()}
    try:
        for name, online in targets:
            one_run(source, online, workdir / name)  # warm-up
            runs = [one_run(source, online, workdir / name) for _ in range(args.repeat)]
            runs.sort(key=lambda r: r[0])
            median_time, median_result = runs[len(runs) // 2]
            out[name] = {
                "median_s": round(median_time, 3),
                "runs_s": [round(r[0], 3) for r in runs],
                "rows_per_s": round(args.rows / median_time),
                "online_rows": median_result.get("onlineRowsWritten"),
                "cpu_s": round(median_result["cpu_s"], 3),
                "server_cpu_s": round(median_result["server_cpu_s"], 3),
                "stages_s": median_result["details"]["timings"],
            }
    finally:
        stop_redis(redis_server)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)
    out["peak_rss_mb"] = round(peak_rss_mb())  # the data read, every run (and SQLite) included
    out["loadavg_after"] = os.getloadavg()
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
