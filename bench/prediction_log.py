"""Prediction logging's cost on the request path, and whether it keeps up.

    .venv/bin/python bench/prediction_log.py [--cards 20000] [--n 2000] [--rate 1000] [--seconds 60]

1. Latency, logging on vs off: two servers side by side (combined role, the fraud example's
   HistGradientBoosting model, `--model example` of inference_online.py), one with
   FTI_PREDICTION_LOG (every request logged, flush every 5 s), one without; sequential
   keep-alive one-row requests interleaved in blocks of 250, so both see the same noise.
   `--logger-only`: the logger alone in process at `--rate` rows/s (no HTTP, no model).
2. Throughput: the logging server alone under an open-loop load of `--rate` requests/s for
   `--seconds` (a raw-asyncio HTTP/1.1 client, each request with its own X-Request-Id), then
   SIGTERM, then the log is read back: dropped rows (the server's counter) and every request id
   answered 200 that is missing from the log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fti_pipelines.serving.launch import free_port, start_server_subprocess, stop_server, wait_ready
from fti_pipelines.store.prediction_log import read_log
from inference_common import make_world, summary
from inference_online import cpu_seconds, sequential

NAME = "fraud-online"


def bodies_for(world, n: int, seed: int = 5) -> list[bytes]:
    rng = np.random.default_rng(seed)
    keys = rng.choice(world["tx"]["cc_num"].to_numpy(), n).tolist()
    out = []
    for k in keys:
        amount, category = float(round(rng.gamma(2.0, 40.0), 2)), str(rng.choice(["grocery", "online", "travel"]))
        out.append(json.dumps({"instances": [{"cc_num": k, "amount": amount, "category": category}]}).encode())
    return out


def latency_on_off(urls: dict[str, str], procs: dict, bodies: list[bytes], block: int = 250) -> dict:
    lat: dict[str, list[float]] = {name: [] for name in urls}
    cpu = dict.fromkeys(urls, 0.0)
    with httpx.Client(timeout=30) as client:
        for url in urls.values():  # warm-up
            sequential(client, url, bodies[:500])
        for start in range(500, len(bodies), block):
            for name, url in urls.items():
                before = cpu_seconds(procs[name].pid)
                lat[name] += sequential(client, url, bodies[start : start + block])
                cpu[name] += cpu_seconds(procs[name].pid) - before
    results = {name: {**summary(v), "server_cpu_us_per_request": cpu[name] / len(v) * 1e6} for name, v in lat.items()}
    on, off = results["logging on"], results["logging off"]
    results["ratio on/off"] = {
        "p50": on["p50_us"] / off["p50_us"],
        "p99": on["p99_us"] / off["p99_us"],
        "server_cpu": on["server_cpu_us_per_request"] / off["server_cpu_us_per_request"],
    }
    return results


async def open_loop(port: int, path: str, bodies: list[bytes], rate: float, seconds: float, connections: int = 48) -> dict:
    """Request i is due at start + i/rate; `connections` keep-alive connections take the next due request."""
    total = int(rate * seconds)
    next_i = 0
    answered: list[str] = []
    failed = 0
    late = []
    start = time.perf_counter() + 0.5

    async def worker() -> None:
        nonlocal next_i, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while next_i < total:
            i = next_i
            next_i += 1
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late.append(-delay)
            body = bodies[i % len(bodies)]
            rid = f"bench-{i}"
            writer.write(
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"X-Request-Id: {rid}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            echoed = re.search(rb"(?i)x-request-id: *([^\r]+)", head)
            if status == 200 and echoed and echoed.group(1).decode() == rid:
                answered.append(rid)
            else:
                failed += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began - 0.5
    return {
        "offered_rate": rate,
        "requests": total,
        "answered_200": len(answered),
        "failed": failed,
        "achieved_rate": total / elapsed,
        "late_p99_ms": float(np.percentile(late, 99) * 1e3) if late else 0.0,
        "ids": answered,
    }


def logger_at_rate(workdir: Path, rate: float, seconds: float) -> dict:
    """The logger alone, in process: `rate` one-row records/s for `seconds` (the server's request
    path without HTTP), flushing every 5 s to file://, then close() and read back."""
    from fti_pipelines.serving.prediction_log import LogSettings, PredictionLogger
    from fti_pipelines.store.prediction_log import PredictionLogFiles

    uri = f"file://{workdir}/logger-only"
    features = [("amount", True), ("category", False), ("amount_sum_1d", True), ("tx_count_1d", True)]
    features += [("age_group", False), ("credit_limit", True)]
    labels = {"model": "fraud", "model_version": "1", "feature_view": "fraud", "feature_view_version": "1"}
    logger = PredictionLogger(LogSettings(uri), PredictionLogFiles(uri, 1, 1, "bench"), features, [2, 3, 4, 5], labels)
    logger.start()
    total, start, record_cpu = int(rate * seconds), time.perf_counter(), []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.thread_time()
        logger.record([{"cc_num": i}], [[42.0, "online", 123.4, 5, "26-40", 2500.0]], [()], [0.5], {"x-request-id": f"r{i}"})
        record_cpu.append(time.thread_time() - t)
    elapsed = time.perf_counter() - start
    logger.close()
    ids = set(read_log(uri)["request_id"].to_pylist())
    return {
        "records": total,
        "achieved_rate": total / elapsed,
        "dropped_rows": logger.dropped._value.get(),
        "missing_ids": sum(1 for i in range(total) if f"r{i}" not in ids),
        "record_cpu_us": summary(record_cpu),
    }


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--n", type=int, default=2000, help="sequential requests per server (latency part)")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s of the throughput part (0 skips it)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--logger-only", action="store_true", help="only the in-process logger at --rate for --seconds")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fti-bench-predlog-"))
    if args.logger_only:
        try:
            print(json.dumps({"load": os.getloadavg(), "logger": logger_at_rate(workdir, args.rate, args.seconds)}, indent=1))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    procs: dict = {}
    try:
        world = make_world(workdir, args.cards, model="example")
        env = {
            "FTI_ARTIFACT_STORE": world["artifact_store"],
            "FTI_ONLINE_STORE": world["online_store"],
            "FTI_LOG_LEVEL": "WARNING",
        }
        log_uri = f"file://{workdir}/predictions/{NAME}"
        ports = {"logging on": free_port(), "logging off": free_port()}
        for name, port in ports.items():
            server_env = (
                {**env, "FTI_PREDICTION_LOG": json.dumps({"uri": log_uri, "flushSeconds": 5})} if name == "logging on" else env
            )
            procs[name] = start_server_subprocess(world["spec"], server_env, port, log_path=str(workdir / f"{port}.log"))
        for name, port in ports.items():
            wait_ready(f"http://127.0.0.1:{port}", NAME, 180, procs[name], str(workdir / f"{port}.log"))
        path = f"/v1/models/{NAME}:predict"
        bodies = bodies_for(world, args.n + 500)
        load_before = os.getloadavg()
        results: dict = {"latency": latency_on_off({k: f"http://127.0.0.1:{p}{path}" for k, p in ports.items()}, procs, bodies)}
        stop_server(procs.pop("logging off"))
        if args.rate > 0:
            run = asyncio.run(open_loop(ports["logging on"], path, bodies, args.rate, args.seconds))
            metrics = httpx.get(f"http://127.0.0.1:{ports['logging on']}/metrics", timeout=30).text
            code = stop_server(procs.pop("logging on"), timeout=120)
            ids = set(read_log(log_uri)["request_id"].to_pylist())
            answered = run.pop("ids")
            results["throughput"] = {
                **run,
                "dropped_rows": metric(metrics, "fti_prediction_log_dropped_total"),
                "rows_written_before_sigterm": metric(metrics, "fti_prediction_log_rows_written_total"),
                "exit_code": code,
                "rows_in_log": len(ids),
                "answered_ids_missing_from_log": sum(1 for r in answered if r not in ids),
            }
        print(json.dumps({"cards": args.cards, "load_before": load_before, "load_after": os.getloadavg(), **results}, indent=1))
    finally:
        for p in procs.values():
            stop_server(p)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
