"""`python -m fti_pipelines.serving [--http_port N] [--role combined|transformer|predictor] [--predictor_host h:p]`

Reads the pipeline contract (FTI_SPEC, FTI_ARTIFACT_STORE, FTI_ONLINE_STORE) and runs
KServe's model server for one revision. A spec that cannot be parsed ends the process
with the reason in the termination log; a revision that fails its checks keeps the
server up but not ready (see server.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from ..contract import PipelineContext, PipelineError, write_result
from .config import ServingConfig
from .prediction_log import LogSettings
from .server import ROLES, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fti_pipelines.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--http_port", type=int, default=int(os.environ.get("FTI_HTTP_PORT", "8080")))
    parser.add_argument("--grpc_port", type=int, default=None, help="enable KServe's gRPC server on this port")
    parser.add_argument("--role", choices=ROLES, default=os.environ.get("FTI_SERVING_ROLE", "combined"))
    parser.add_argument(
        "--model_name", default=None, help="served model name (KServe passes the InferenceService name); default spec.name"
    )
    parser.add_argument(
        "--predictor_host", default=os.environ.get("FTI_PREDICTOR_HOST"), help="host:port of the predictor (role transformer)"
    )
    # KServe's ModelServer parses sys.argv too; tolerate its options.
    args, _ = parser.parse_known_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=os.environ.get("FTI_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        ctx = PipelineContext.from_env()
        config = ServingConfig.from_spec(ctx.spec, ctx.env)
        if args.model_name:  # KServe's controller passes the name its router and predictor use
            config = dataclasses.replace(config, name=args.model_name)
        if args.role == "transformer" and not args.predictor_host:
            raise PipelineError("InvalidArguments", "--role transformer needs --predictor_host host:port")
        # The predictor role never logs: its transformer logs the whole row (serving/combined.py).
        prediction_log = LogSettings.from_env(ctx.env, config.name, config.namespace) if args.role != "predictor" else None
    except PipelineError as exc:
        write_result({"ok": False, "reason": exc.reason, "error": exc.message})
        return 1
    serve(
        config,
        ctx.artifact_store,
        ctx.online_store,
        http_port=args.http_port,
        role=args.role,
        predictor_host=args.predictor_host,
        grpc_port=args.grpc_port,
        prediction_log=prediction_log,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
