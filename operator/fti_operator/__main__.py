"""`python -m fti_operator`: run the operator (the container's entrypoint).

Config comes from the environment (config.py). /metrics is served by prometheus-client on
FTI_METRICS_PORT; Kopf's liveness endpoint on FTI_HEALTH_PORT (/healthz) answers once the
operator is up and its watches run. SIGTERM/SIGINT stop Kopf gracefully: watches close,
running handlers finish (within terminationGracePeriodSeconds), peering is released.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import signal
import sys
import threading

import kopf

from . import metrics
from .config import ConfigError, OperatorConfig
from .handlers import wiring  # noqa: F401  - registers the Kopf handlers
from .handlers.runtime import Runtime, set_runtime

log = logging.getLogger("fti_operator")


def run(config: OperatorConfig, stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None) -> None:
    """Run until stopped. Used by main() and by tests/benchmarks (in a thread, with stop_flag)."""
    rt = Runtime(config)
    set_runtime(rt)
    metrics.serve(config.metrics_port, rt.kube)
    memo = kopf.Memo(config=config)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(kopf.operator(
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=config.peering is None,
            peering_name=config.peering,
            priority=config.peering_priority,
            liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
            memo=memo,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        ))
    finally:
        # Kopf waits on a threading.Event in an executor thread; release it, or the interpreter's
        # exit would join that thread forever after a signal stopped Kopf.
        if stop_flag is not None:
            stop_flag.set()
        loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fti_operator", description=__doc__.splitlines()[0])
    parser.add_argument("--check-config", action="store_true", help="validate the environment and exit")
    args = parser.parse_args(argv)
    try:
        config = OperatorConfig.from_env()
    except ConfigError as exc:
        print(f"fti-operator: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(max(logging.INFO, logging.getLevelName(config.log_level)))
    if args.check_config:
        print(config)
        return 0
    # `kill -USR1 <pid>` dumps every thread's stack: how to see what a stuck operator waits for.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # In the main thread Kopf handles SIGTERM/SIGINT itself: stops watching, lets running
    # handlers finish, leaves the peering object, then returns.
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
