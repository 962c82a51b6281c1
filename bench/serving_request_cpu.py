"""CPU per request of the whole model-server app in process: KServe's FastAPI app, our
middlewares, handlers, lookup and model, driven with ASGI messages (no HTTP, no client).

    .venv/bin/python bench/serving_request_cpu.py ours|const [--n 5500] [--reps 4] [--cards 20000]

`ours` builds the app as `serve` does (combined role, the fraud example's HistGradientBoosting
model, SQLite online store); `const` is bench/inference_online.py's floor model on KServe's
stock app. Prints the thread CPU per request of each repetition (after a warm-up): a number
that moves far less with the machine's load than latency does. To compare two trees of the
serving code, run it alternately with PYTHONPATH pointing at the other tree's pipeline_images
(e.g. `git archive main pipeline_images | tar -x -C /tmp/base`), as in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import kserve
from kserve.model_server import app
from kserve.protocol.rest.server import RESTServer
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.server import build_model, make_server, tune_request_path
from inference_common import make_world

NAME = "fraud-online"
PATH = f"/v1/models/{NAME}:predict"


class Const(kserve.Model):
    def load(self) -> bool:
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        return {"predictions": [0.5] * len(payload["instances"])}


def build(what: str, workdir: Path, cards: int, n: int) -> list[bytes]:
    """Register the model on KServe's app as the server would; the request bodies."""
    if what == "ours":
        world = make_world(workdir, cards, model="example")
        config = ServingConfig.from_spec(world["spec"])
        server = make_server(0, max_body_bytes=config.max_body_bytes)
        model = build_model("combined", config, world["artifact_store"], world["online_store"])
        keys = world["tx"]["cc_num"].sample(n, random_state=1, replace=True).tolist()
        bodies = [json.dumps({"instances": [{"cc_num": k, "amount": 12.5, "category": "online"}]}).encode() for k in keys]
    else:
        server = kserve.ModelServer(http_port=0, workers=1, enable_grpc=False, enable_latency_logging=False)
        model = Const(NAME)
        model.load()
        bodies = [json.dumps({"instances": [[42.0, "online", 1.0, 3, "26-40", 2500.0]]}).encode()] * n
    threadpool_limits(1)
    server.register_model(model)
    tune_request_path(server)
    RESTServer("kserve.model_server:app", server.dataplane, server.model_repository_extension, 0).create_application()
    return bodies


async def request(body: bytes) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 5555),
        "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"answered {sent[0]['status']}: {sent[1:]}")


async def run(bodies: list[bytes], reps: int) -> list[float]:
    warm, timed = bodies[:500], bodies[500:]
    for body in warm:
        await request(body)
    out = []
    for _ in range(reps):
        started = time.thread_time()
        for body in timed:
            await request(body)
        out.append((time.thread_time() - started) / len(timed) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["ours", "const"])
    parser.add_argument("--n", type=int, default=5500)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--cards", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="fti-bench-request-cpu-"))
    try:
        bodies = build(args.what, workdir, args.cards, args.n)
        cpu = asyncio.run(run(bodies, args.reps))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per_rep = [round(c, 1) for c in cpu]
    print(json.dumps({"what": args.what, "cpu_us_per_request": per_rep, "min": min(per_rep), "load": os.getloadavg()}))


if __name__ == "__main__":
    os.environ.setdefault("FTI_LOG_LEVEL", "WARNING")
    main()
