"""Start a model server on a port, wait for it, and talk to it (embedded runner, tests, benchmarks).

    proc = start_server_subprocess(spec, {"FTI_ARTIFACT_STORE": ..., "FTI_ONLINE_STORE": ...}, port)
    wait_ready(f"http://127.0.0.1:{port}", spec["name"], timeout=60, process=proc)
    predict(f"http://127.0.0.1:{port}", spec["name"], [{"cc_num": 1, "amount": 9.5}])
    stop_server(proc)

`serve_in_process` runs the server in the calling (main) thread until SIGINT/SIGTERM,
for `fti local serve` in the foreground. KServe keeps one FastAPI app per process, so
use subprocesses to run several servers at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..contract import ENV_ARTIFACT_STORE, ENV_SPEC, ENV_TERMINATION_LOG


class ServerNotReadyError(RuntimeError):
    """The server did not become ready; `reason` is what its readiness endpoint said."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_server_subprocess(
    spec: Mapping[str, Any],
    env: Mapping[str, str],
    port: int,
    *,
    role: str = "combined",
    predictor_host: str | None = None,
    log_path: str | None = None,
    python: str = sys.executable,
) -> subprocess.Popen:
    """`python -m fti_pipelines.serving` for `spec` on `port`; stdout+stderr go to `log_path` (or DEVNULL)."""
    child_env = {**os.environ, **env, ENV_SPEC: json.dumps(spec)}
    child_env.setdefault(ENV_TERMINATION_LOG, os.devnull)
    cmd = [python, "-m", "fti_pipelines.serving", "--http_port", str(port), "--role", role]
    if predictor_host:
        cmd += ["--predictor_host", predictor_host]
    # The child holds its own descriptor of the log, so ours is closed once it is started.
    with open(log_path, "ab") if log_path else contextlib.nullcontext(subprocess.DEVNULL) as out:
        return subprocess.Popen(cmd, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def readiness(url: str, name: str, client: httpx.Client | None = None) -> tuple[bool, str]:
    """(ready, reason) from /v2/models/<name>/ready; the reason is the server's own message."""
    own = client is None
    client = client or httpx.Client(timeout=5)
    try:
        r = client.get(f"{url.rstrip('/')}/v2/models/{name}/ready")
        if r.status_code == 200:
            return True, ""
        try:
            return False, str(r.json().get("error", r.text))
        except ValueError:
            return False, r.text
    finally:
        if own:
            client.close()


def wait_ready(
    url: str, name: str, timeout: float = 60.0, process: subprocess.Popen | None = None, log_path: str | None = None
) -> None:
    """Poll readiness until ready; ServerNotReadyError with the server's reason on timeout or exit."""
    deadline = time.monotonic() + timeout
    reason = "no answer yet"
    with httpx.Client(timeout=2) as client:
        while True:
            if process is not None and process.poll() is not None:
                raise ServerNotReadyError(f"model server exited with code {process.returncode}{_tail(log_path)}", reason)
            try:
                ok, reason = readiness(url, name, client)
                if ok:
                    return
            except httpx.HTTPError as exc:
                reason = f"not listening yet ({type(exc).__name__})"
            if time.monotonic() > deadline:
                raise ServerNotReadyError(f"model server {name} at {url} not ready after {timeout:.0f}s: {reason}", reason)
            time.sleep(0.1)  # a poll interval, not a synchronisation sleep: the loop checks a deadline


def _tail(log_path: str | None, lines: int = 20) -> str:
    if not log_path or not os.path.exists(log_path):
        return ""
    with open(log_path, "rb") as fh:
        text = fh.read()[-8000:].decode(errors="replace")
    return "\n" + "\n".join(text.splitlines()[-lines:])


def stop_server(process: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """SIGTERM (graceful), then SIGKILL after `timeout`; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def _v2_tensor(name: str, values: Sequence[Any]) -> dict[str, Any]:
    if all(isinstance(v, bool) for v in values):
        datatype = "BOOL"
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        datatype = "INT64"
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        datatype = "FP64"
    else:
        datatype = "BYTES"
    return {"name": name, "shape": [len(values)], "datatype": datatype, "data": list(values)}


def v2_body(instances: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Open Inference Protocol body: one tensor per column of the instances."""
    names = list(dict.fromkeys(k for inst in instances for k in inst))
    return {"inputs": [_v2_tensor(n, [inst.get(n) for inst in instances]) for n in names]}


def normalize_v2(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A v2 answer in the v1 shape: predictions, labels, defaultsUsed, modelVersion, featureViewVersion."""
    outputs = {o["name"]: o.get("data") for o in answer.get("outputs", [])}
    params = answer.get("parameters") or {}
    out = {
        "predictions": outputs.get("predictions"),
        "defaultsUsed": outputs.get("defaults_used"),
        "model": answer.get("model_name"),
        "modelVersion": params.get("modelVersion", answer.get("model_version")),
        "featureViewVersion": params.get("featureViewVersion"),
    }
    if "labels" in outputs:
        out["labels"] = outputs["labels"]
    return out


def predict(
    url: str,
    name: str,
    instances: Sequence[Mapping[str, Any]],
    protocol: str = "v1",
    client: httpx.Client | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Send instances; returns the v1-shaped answer. HTTPStatusError (with the server's message) on 4xx/5xx."""
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    base = url.rstrip("/")
    try:
        if protocol == "v1":
            r = client.post(f"{base}/v1/models/{name}:predict", json={"instances": list(instances)})
        elif protocol == "v2":
            r = client.post(f"{base}/v2/models/{name}/infer", json=v2_body(instances))
        else:
            raise ValueError(f"protocol {protocol!r}: expected v1 or v2")
        if r.status_code >= 400:
            raise httpx.HTTPStatusError(f"{r.status_code} from {r.request.url}: {r.text[:500]}", request=r.request, response=r)
        return r.json() if protocol == "v1" else normalize_v2(r.json())
    finally:
        if own:
            client.close()


def serve_in_process(
    spec: Mapping[str, Any],
    artifact_store: str,
    online_store: str | None,
    port: int,
    role: str = "combined",
    predictor_host: str | None = None,
) -> None:
    """Run the server in this process's main thread until SIGINT/SIGTERM."""
    from .config import ServingConfig
    from .prediction_log import LogSettings
    from .server import serve

    config = ServingConfig.from_spec(spec)
    log_env = {**os.environ, ENV_ARTIFACT_STORE: artifact_store}
    prediction_log = LogSettings.from_env(log_env, config.name, config.namespace) if role != "predictor" else None
    serve(
        config,
        artifact_store,
        online_store,
        http_port=port,
        role=role,
        predictor_host=predictor_host,
        prediction_log=prediction_log,
    )
