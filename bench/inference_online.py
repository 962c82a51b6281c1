"""Online serving over loopback: our model server (lookup + predict) vs a bare kserve.ModelServer.

    .venv/bin/python bench/inference_online.py [--cards 100000] [--n 5000] [--wrk-seconds 30]
        [--model fixture|example] [--multi 100]

The servers run side by side in subprocesses, one uvicorn worker each, the same model:
  ours   python -m fti_pipelines.serving (combined role): {"instances": [{"cc_num", "amount", "category"}]}
         -> validation, two online-store reads (SQLite), the model, versions in the answer
  bare   a minimal kserve.Model that gets the full ordered feature row and calls predict_proba
  bare const  the same minimal kserve.Model answering a constant: the floor of KServe's request path
Sequential keep-alive requests (httpx), one row each, interleaved in blocks so both see the
same machine noise; then wrk (8 connections, 30 s) against ours, bare and the floor for
throughput at saturation and errors.
`--model example` serves the fraud example's HistGradientBoosting model (compiled to numpy
tree traversal) instead of the fixture's linear one (ONNX Runtime), to both servers.
`--multi N` adds "ours v1 xN": requests of N instances (distinct cards), interleaved
with the rest, against one-instance requests to the same server.
`--scorer` only compares the CPU of one-row scoring in process: sklearn vs compiled.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fti_pipelines.serving.launch import free_port, start_server_subprocess, stop_server, v2_body, wait_ready
from fti_pipelines.serving.server import tune_request_path
from inference_common import NAMESPACE, make_world, summary

NAME = "fraud-online"


def bare_server(port: int, model_path: str) -> None:
    """The baseline: KServe's model server with the model only (no lookup, no validation).

    model_path "const" serves a model that answers a constant without looking at the
    rows: the floor of KServe's request path (HTTP, JSON, handler chain) on this machine.
    """
    import joblib
    import kserve
    from threadpoolctl import threadpool_limits

    class Bare(kserve.Model):
        def load(self):
            self.model = joblib.load(model_path)
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            x = np.array(payload["instances"], dtype=object)
            return {"predictions": self.model.predict_proba(x)[:, 1].tolist()}

    class Const(kserve.Model):
        def load(self):
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            return {"predictions": [0.5] * len(payload["instances"])}

    model = Const(NAME) if model_path == "const" else Bare(NAME)
    model.load()
    # Server settings as ours has them (serving/server.py), so the ratio compares the
    # request handling, not the settings: one BLAS thread, uvloop, no access-log line.
    threadpool_limits(1)
    server = kserve.ModelServer(http_port=port, workers=1, enable_grpc=False, enable_latency_logging=False)
    tune_request_path(server)
    server.start([model])


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def scorer_cpu(model: str, blocks: int = 10, block: int = 200) -> dict:
    """In process, one row: CPU per Scorer.score, plain sklearn vs compiled (interleaved blocks)."""
    from threadpoolctl import threadpool_limits

    from fti_pipelines.serving.predictor import Scorer
    from inference_common import example_pipeline
    from support.serving_fixtures import train_pipeline

    threadpool_limits(1)
    pipeline = example_pipeline() if model == "example" else train_pipeline()
    scorers = {"sklearn": Scorer(pipeline, compile_model=False), "compiled": Scorer(pipeline)}
    assert scorers["compiled"].compiled is not None, "the fixture model did not compile"
    rows = [[42.0, "online", 123.4, 5, "26-40", 2500.0]]
    cpu: dict[str, list[float]] = {k: [] for k in scorers}
    for _ in range(blocks):
        for name, scorer in scorers.items():
            for _ in range(block):
                t = time.thread_time()
                scorer.score(rows)
                cpu[name].append(time.thread_time() - t)
    return {name: summary(v[block:]) for name, v in cpu.items()}  # first block: warm-up


def sequential(client, url, bodies):
    out = []
    for body in bodies:
        t = time.perf_counter()
        r = client.post(url, content=body, headers={"content-type": "application/json"})
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    return out


WRK_LUA = """
local bodies = {}
local i = 0
for line in io.lines("%s") do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = (i %% #bodies) + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def run_wrk(url, bodies, seconds, workdir, tag):
    if not shutil.which("wrk"):
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    body_file = Path(workdir) / f"{tag}.bodies"
    body_file.write_text("\n".join(b.decode() for b in bodies) + "\n")
    script = Path(workdir) / f"{tag}.lua"
    script.write_text(WRK_LUA % body_file)
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {
        "requests_per_s": rps,
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
        "p50": p50.group(1) if p50 else None,
        "p99": p99.group(1) if p99 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=5000, help="sequential requests per server")
    parser.add_argument("--wrk-seconds", type=int, default=30, help="0 skips wrk")
    parser.add_argument("--scorer", action="store_true", help="only the in-process Scorer CPU comparison")
    parser.add_argument("--model", choices=["fixture", "example"], default="fixture", help="the served model")
    parser.add_argument("--multi", type=int, default=0, help="also measure requests of this many instances")
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "MODEL_PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(int(args.bare_server[0]), args.bare_server[1])
        return
    if args.scorer:
        print(json.dumps({"model": args.model, "scorer_cpu_one_row": scorer_cpu(args.model)}, indent=1))
        return
    workdir = Path(tempfile.mkdtemp(prefix="fti-bench-online-"))
    procs = []
    try:
        world = make_world(workdir, args.cards, model=args.model)
        env = {
            "FTI_ARTIFACT_STORE": world["artifact_store"],
            "FTI_ONLINE_STORE": world["online_store"],
            "FTI_LOG_LEVEL": "WARNING",
        }
        ours_port, bare_port = free_port(), free_port()
        ours = start_server_subprocess(world["spec"], env, ours_port, log_path=str(workdir / "ours.log"))
        procs.append(ours)
        # The served namespace's registry (docs/store-layout.md): the same joblib ours serves.
        model_path = f"{workdir}/artifacts/namespaces/{NAMESPACE}/models/fraud/1/model/model.joblib"
        const_port = free_port()
        with open(workdir / "bare.log", "wb") as log:  # the child keeps its own descriptor
            bare = subprocess.Popen(
                [sys.executable, __file__, "--bare-server", str(bare_port), model_path], stdout=log, stderr=subprocess.STDOUT
            )
        procs.append(bare)
        with open(workdir / "const.log", "wb") as log:
            const = subprocess.Popen(
                [sys.executable, __file__, "--bare-server", str(const_port), "const"], stdout=log, stderr=subprocess.STDOUT
            )
        procs.append(const)
        ours_url, bare_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{bare_port}"
        const_url = f"http://127.0.0.1:{const_port}"
        wait_ready(ours_url, NAME, 120, ours, str(workdir / "ours.log"))
        wait_ready(bare_url, NAME, 120, bare, str(workdir / "bare.log"))
        wait_ready(const_url, NAME, 120, const, str(workdir / "const.log"))

        rng = np.random.default_rng(5)
        tx = world["tx"].set_index("cc_num")
        prof = world["profiles"].set_index("cc_num")
        keys = rng.choice(world["tx"]["cc_num"].to_numpy(), args.n + 500).tolist()
        ours_bodies, bare_bodies, v2_bodies = [], [], []
        for k in keys:
            amount, category = float(round(rng.gamma(2.0, 40.0), 2)), str(rng.choice(["grocery", "online", "travel"]))
            inst = {"cc_num": k, "amount": amount, "category": category}
            ours_bodies.append(json.dumps({"instances": [inst]}).encode())
            v2_bodies.append(json.dumps(v2_body([inst])).encode())
            row = [
                amount,
                category,
                float(tx.at[k, "amount_sum_1d"]),
                int(tx.at[k, "tx_count_1d"]),
                str(prof.at[k, "age_group"]),
                float(prof.at[k, "credit_limit"]),
            ]
            bare_bodies.append(json.dumps({"instances": [row]}).encode())
        # The two servers must agree: same model, same features.
        with httpx.Client(timeout=30) as c:
            a = c.post(f"{ours_url}/v1/models/{NAME}:predict", content=ours_bodies[0]).json()["predictions"][0]
            b = c.post(f"{bare_url}/v1/models/{NAME}:predict", content=bare_bodies[0]).json()["predictions"][0]
        assert abs(a - b) < 1e-12, (a, b)

        lat: dict[str, list[float]] = {"ours v1": [], "bare v1": [], "ours v2": [], "bare const v1": []}
        urls = {
            "ours v1": f"{ours_url}/v1/models/{NAME}:predict",
            "bare v1": f"{bare_url}/v1/models/{NAME}:predict",
            "ours v2": f"{ours_url}/v2/models/{NAME}/infer",
            "bare const v1": f"{const_url}/v1/models/{NAME}:predict",
        }
        bodies = {"ours v1": ours_bodies, "bare v1": bare_bodies, "ours v2": v2_bodies, "bare const v1": bare_bodies}
        # Server CPU per request (user + system of the server process): unlike latency, it
        # hardly moves with the machine's load, so it compares servers across noisy runs.
        server = {"ours v1": ours, "bare v1": bare, "ours v2": ours, "bare const v1": const}
        if args.multi:
            multi = f"ours v1 x{args.multi}"
            lat[multi], urls[multi], server[multi] = [], urls["ours v1"], ours
            one = [json.loads(b)["instances"][0] for b in ours_bodies]
            bodies[multi] = [
                json.dumps({"instances": [one[(i + j) % len(one)] for j in range(args.multi)]}).encode()
                for i in range(len(ours_bodies))
            ]
        cpu = dict.fromkeys(lat, 0.0)
        with httpx.Client(timeout=30) as client:
            for name in lat:  # warm-up
                sequential(client, urls[name], bodies[name][:500])
            block = 250
            for start in range(500, len(keys), block):
                for name in lat:
                    before = cpu_seconds(server[name].pid)
                    lat[name] += sequential(client, urls[name], bodies[name][start : start + block])
                    cpu[name] += cpu_seconds(server[name].pid) - before
        results = {name: {**summary(v), "server_cpu_us_per_request": cpu[name] / len(v) * 1e6} for name, v in lat.items()}
        results["ratio ours/bare v1"] = {
            "p50": results["ours v1"]["p50_us"] / results["bare v1"]["p50_us"],
            "p99": results["ours v1"]["p99_us"] / results["bare v1"]["p99_us"],
        }
        results["ratio ours/bare const v1"] = {  # what the lookup and the model add to KServe's floor
            "p50": results["ours v1"]["p50_us"] / results["bare const v1"]["p50_us"],
            "p99": results["ours v1"]["p99_us"] / results["bare const v1"]["p99_us"],
        }
        if args.multi:
            results[f"ratio ours x{args.multi} / ours x1"] = {
                "p50": results[multi]["p50_us"] / results["ours v1"]["p50_us"],
                "p99": results[multi]["p99_us"] / results["ours v1"]["p99_us"],
                "server_cpu": results[multi]["server_cpu_us_per_request"] / results["ours v1"]["server_cpu_us_per_request"],
            }
        if args.wrk_seconds > 0:
            results["wrk ours v1"] = run_wrk(urls["ours v1"], ours_bodies[:2000], args.wrk_seconds, workdir, "ours")
            results["wrk bare v1"] = run_wrk(urls["bare v1"], bare_bodies[:2000], args.wrk_seconds, workdir, "bare")
            results["wrk bare const v1"] = run_wrk(urls["bare const v1"], bare_bodies[:2000], args.wrk_seconds, workdir, "const")
        print(json.dumps({"cards": args.cards, "model": args.model, "load": os.getloadavg(), "results": results}, indent=1))
    finally:
        for p in procs:
            stop_server(p)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("FTI_LOG_LEVEL", "WARNING")
    main()
