"""The Kopf operator: settings, login, startup/cleanup, and `run()`.

The decisions live in `fti_operator.reconcile`; this package only delivers events to them
(docs/architecture.md). How Kopf is set up, and why:
- Watches: `watching.server_timeout`/`client_timeout` are set, so a watch is re-established
  at least every few minutes (a silently dropped connection otherwise leaves the operator
  blind forever).
- Persistence: only `on.event` handlers are registered (triggers.py), so Kopf writes no
  diff-base or progress records; the settings still keep both in annotations under
  `fti.dev/` so `status` stays entirely ours should a change handler ever be added.
- Peering: one replica (Deployment strategy Recreate) plus mandatory Kopf peering. A second
  instance of lower priority starts paused and stays so while the first is alive; two of
  equal priority both freeze — they never fight (tested in tests/integration). Kopf peering
  is not leader election: for HA, run a standby with a lower FTI_PEERING_PRIORITY.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from ..api.identity import FINALIZER_KOPF, GROUP
from ..config import OperatorConfig
from . import indexes, metrics, triggers  # noqa: F401  - importing registers the Kopf handlers
from .indexes import INDEX_NAMES
from .runtime import Runtime

log = logging.getLogger("fti_operator")
WATCH_SERVER_TIMEOUT = 300
WATCH_CLIENT_TIMEOUT = 330
# Waiting for the running reconciles at shutdown: within terminationGracePeriodSeconds.
STOP_TIMEOUT = 20


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = 30
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = FINALIZER_KOPF
    # Kopf would post an Event for every handler success; the reconcilers post the meaningful ones.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    if config.peering:
        # Mandatory peering starts the operator paused until it has seen the peers, so a
        # lower-priority instance never handles an object before it knows to stand back.
        settings.peering.name = config.peering
        settings.peering.mandatory = True
        settings.peering.priority = config.peering_priority


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    rt: Runtime | None = getattr(memo, "runtime", None)
    if rt is None:  # started by `kopf run`, not by run()
        rt = memo.runtime = Runtime(OperatorConfig.from_env())
    configure(settings, rt.config)
    # Kopf pre-populates the (empty) indexes for startup handlers: the same live objects the
    # queue workers read from now on.
    rt.start({name: kwargs[name] for name in INDEX_NAMES if name in kwargs})
    log.info("fti-operator started: artifact store %s, namespaces %s", rt.config.artifact_store, rt.config.namespaces or "all")


@kopf.on.cleanup()
def _cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt: Runtime | None = getattr(memo, "runtime", None)
    if rt is not None:
        rt.stop(timeout=STOP_TIMEOUT)


@kopf.on.login()
def _login(**kwargs: Any):
    # In a pod: the service account; elsewhere: $KUBECONFIG (read at login time, not import time).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def run(
    config: OperatorConfig,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run until stopped. Used by `python -m fti_operator` and by tests/benchmarks (in a thread,
    with stop_flag; pass `runtime` to look at its API-call counter)."""
    rt = runtime or Runtime(config)
    metrics.serve(config.metrics_port)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(
            kopf.operator(
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                standalone=config.peering is None,
                peering_name=config.peering,
                priority=config.peering_priority,
                liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
                memo=kopf.Memo(config=config, runtime=rt),
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        )
    finally:
        rt.stop()
        # Kopf waits on a threading.Event in an executor thread; release it, or the interpreter's
        # exit would join that thread forever after a signal stopped Kopf.
        if stop_flag is not None:
            stop_flag.set()
        loop.close()
