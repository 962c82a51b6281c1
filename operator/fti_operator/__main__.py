"""`python -m fti_operator`: run the operator (the container's entrypoint).

Config comes from the environment (config.py). /metrics is served by prometheus-client on
FTI_METRICS_PORT; Kopf's liveness endpoint on FTI_HEALTH_PORT (/healthz) answers once the
operator is up and its watches run. SIGTERM/SIGINT stop Kopf gracefully: watches close,
running handlers finish (within terminationGracePeriodSeconds), peering is released.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys

from .config import ConfigError, OperatorConfig


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
    # handlers finish, leaves the peering object, then returns. Imported here: --check-config
    # and --help need neither Kopf nor the Kubernetes client.
    from .controller.app import run

    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
