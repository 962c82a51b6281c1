"""Assemble and run `kserve.ModelServer` for one role of one revision.

Two things differ from a stock `ModelServer().start([model])`:

- A revision that fails its load-time checks is still registered, so the server
  comes up *not ready* and its readiness endpoints say why (KServe would exit with
  NoModelReady). `/v2/health/ready` also reports not ready then (a custom DataPlane),
  so a kubelet probe on either endpoint keeps traffic away.
- Our 4xx handlers, the body-size limit and the `X-Request-Id` header (request_id.py)
  are installed on KServe's FastAPI app.
- With FTI_PREDICTION_LOG set, the model logs its scored rows (prediction_log.py); the
  log is flushed when the server stops (SIGTERM: uvicorn finishes the requests in flight,
  KServe unloads the model, whose `stop` writes the queue; `serve` makes sure of it).
- The request path is kept short: uvloop as KServe's `--event_loop auto` promises (its
  single-worker start runs plain asyncio), and no log line per request unless
  FTI_ACCESS_LOG=true (Prometheus metrics count requests already): neither uvicorn's
  access line nor the two `kserve.trace` lines (wall and CPU time) KServe's timing
  middleware writes for every request at INFO, the server's default log level.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

import kserve
from kserve.errors import ModelNotReady, ServerNotReady
from kserve.model_server import app as kserve_app
from kserve.predictor_config import PredictorConfig
from kserve.protocol.dataplane import DataPlane
from threadpoolctl import threadpool_limits

from ..store.online import transient_errors
from .config import ServingConfig
from .errors import install_error_handling
from .prediction_log import LogSettings
from .request_id import RequestIdMiddleware
from .revision import Revision

log = logging.getLogger("fti_pipelines.serving")

ROLES = ("combined", "transformer", "predictor")


class RevisionDataPlane(DataPlane):
    """Server readiness = every registered model ready (KServe's default is always True)."""

    async def ready(self) -> bool:
        for model in self.model_registry.get_models().values():
            try:
                await model.healthy()
            except ModelNotReady as exc:
                raise ServerNotReady(str(exc)) from exc
        return await super().ready()


def build_model(
    role: str,
    config: ServingConfig,
    artifact_store: str,
    online_store: str | None,
    prediction_log: LogSettings | None = None,
) -> kserve.Model:
    """The kserve.Model of a role, loaded (ready or not, with its reasons)."""
    from .combined import CombinedModel
    from .predictor import PredictorModel
    from .transformer import TransformerModel

    if role == "combined":
        model: kserve.Model = CombinedModel(config.name, Revision(config, artifact_store, online_store), prediction_log)
    elif role == "transformer":
        model = TransformerModel(config.name, Revision(config, artifact_store, online_store, with_model=False), prediction_log)
    elif role == "predictor":
        model = PredictorModel(config.name, Revision(config, artifact_store, online_store, with_lookup=False))
    else:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    model.load()
    return model


def make_server(
    http_port: int,
    *,
    max_body_bytes: int,
    predictor_host: str | None = None,
    grpc_port: int | None = None,
    latency_logging: bool = False,
    store_unavailable: tuple[type[BaseException], ...] = (),
) -> kserve.ModelServer:
    """A ModelServer with our readiness and error handling (one per process: KServe's app is global).

    store_unavailable: the online store's transient errors, answered 503 (errors.py)."""
    predictor_config = PredictorConfig(predictor_host=predictor_host, predictor_protocol="v1") if predictor_host else None
    kwargs: dict[str, Any] = {
        "http_port": http_port,
        "workers": 1,
        "enable_latency_logging": latency_logging,
        "enable_grpc": grpc_port is not None,
    }
    if grpc_port is not None:
        kwargs["grpc_port"] = grpc_port
    if predictor_config is not None:
        kwargs["predictor_config"] = predictor_config
    server = kserve.ModelServer(**kwargs)
    server.dataplane = RevisionDataPlane(model_registry=server.registered_models)
    install_error_handling(kserve_app, max_body_bytes, store_unavailable)
    kserve_app.add_middleware(RequestIdMiddleware)  # added last: outermost of ours, so every answer has the id
    return server


def limit_threads(config: ServingConfig) -> None:
    """One BLAS/OpenMP thread per server process.

    A request scores a handful of rows: fanning that out over OpenMP threads costs more
    in wake-ups than it saves, and on a busy node the threads wait on each other
    (bench/RESULTS.md, "Inference"). Scale out with replicas instead.
    FTI_SERVING_THREADS overrides.
    """
    threads = int(os.environ.get("FTI_SERVING_THREADS", "1"))
    threadpool_limits(threads)
    log.info("%s: %d BLAS/OpenMP thread(s) per process", config.name, threads)


def event_loop_policy(event_loop: str) -> asyncio.AbstractEventLoopPolicy | None:
    """uvloop's policy for KServe's event_loop "auto"/"uvloop" when installed, else None (asyncio).

    uvloop cuts the server's CPU per request (bench/RESULTS.md, "Inference").
    """
    if event_loop not in ("auto", "uvloop"):
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            log.warning("event loop uvloop requested but not installed; using asyncio")
        return None
    return uvloop.EventLoopPolicy()


def access_log_level(env: Mapping[str, str]) -> int:
    """Level of uvicorn's access log: a line per request costs the request path CPU, so off by default."""
    return logging.INFO if env.get("FTI_ACCESS_LOG", "").strip().lower() in ("1", "true", "yes") else logging.WARNING


# The loggers that write a line per request: uvicorn's access log and KServe's timing trace.
REQUEST_LOGGERS = ("uvicorn.access", "kserve.trace")


def tune_request_path(server: kserve.ModelServer, env: Mapping[str, str] | None = None) -> None:
    """Event loop and per-request log lines for the server that start() runs (see the module docstring)."""
    level = access_log_level(os.environ if env is None else env)
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(level)
    policy = event_loop_policy(server.event_loop)
    if policy is not None:
        asyncio.set_event_loop_policy(policy)
        # KServe's start() asks for the current loop before asyncio.run() makes its own.
        asyncio.set_event_loop(asyncio.new_event_loop())


def serve(
    config: ServingConfig,
    artifact_store: str,
    online_store: str | None,
    *,
    http_port: int,
    role: str = "combined",
    predictor_host: str | None = None,
    grpc_port: int | None = None,
    prediction_log: LogSettings | None = None,
) -> None:
    """Load the revision and serve until SIGTERM/SIGINT (blocking; call from the main thread)."""
    if role == "transformer" and not predictor_host:
        raise ValueError("role transformer needs --predictor_host host:port")
    server = make_server(
        http_port,
        max_body_bytes=config.max_body_bytes,
        predictor_host=predictor_host,
        grpc_port=grpc_port,
        store_unavailable=transient_errors(online_store) if online_store else (),
    )
    model = build_model(role, config, artifact_store, online_store, prediction_log)
    limit_threads(config)  # after loading: the limit applies to the libraries loaded so far
    # Registered even when not ready: the server stays up and its readiness says why.
    server.register_model(model)
    log.info("model server %s (%s) on port %d, ready=%s", config.name, role, http_port, model.ready)
    tune_request_path(server)
    try:
        server.start([])
    finally:
        logger = getattr(model, "prediction_log", None)
        if logger is not None:  # KServe's unload closed it already on a signal; closing twice is harmless
            logger.close()
