"""One object holding what the controller's handlers and queue workers share: no module globals.

`Runtime` owns the Kube client, the lookups over Kopf's indexes, the work queue and the
little state the event triggers keep (what was last reconciled, the newest watched body of
each queued key, the last value of each cross-resource trigger). `app.run` builds it (or is
given one, so a test can look at its API-call counter) and hands it to the handlers in
Kopf's `memo`; the startup handler binds the indexes and starts the queue, the cleanup
handler stops it.

Reconcile model (docs/architecture.md): events only enqueue a key; a worker takes the
newest body, calls the kind's reconciler and honours `Result.requeue_after` with a delayed
re-add. A write conflict (409: the body was stale) is reconciled again at once from a fresh
read; any other failure is retried by the queue with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

from ..api.identity import (
    API_VERSION,
    FINALIZER_FEATURE_VERSIONS,
    KIND_FEATURE_PIPELINE,
    KIND_INFERENCE_SERVICE,
    KIND_TRAINING_PIPELINE,
)
from ..config import OperatorConfig
from ..reconcile import ApiError, Context, Kube, Result, feature, inference, training
from . import metrics
from .indexes import FP, IS, TP, IndexLookups
from .kube_http import KubeHttp, load_api_client
from .queue import WorkQueue

log = logging.getLogger("fti_operator")
Key = tuple[str, str, str]  # (plural, namespace, name)

RECONCILERS: dict[str, tuple[str, Callable[[Context, Mapping[str, Any]], Result]]] = {
    FP: (KIND_FEATURE_PIPELINE, feature.reconcile),
    TP: (KIND_TRAINING_PIPELINE, training.reconcile),
    IS: (KIND_INFERENCE_SERVICE, inference.reconcile),
}
_NOTHING = object()
# Write conflicts of one key retried at once before the queue's backoff takes over: a conflict
# clears with a fresh read unless something keeps writing the object as fast as we do.
CONFLICT_RETRIES = 3


def signature(body: Mapping[str, Any]) -> tuple:
    """What, changed, asks for a reconcile: the spec (generation), annotations (run-now tokens),
    deletion and finalizers. A status-only change (our own status patch) does not."""
    meta = body["metadata"]
    return (
        meta.get("generation"),
        tuple(sorted((meta.get("annotations") or {}).items())),
        bool(meta.get("deletionTimestamp")),
        tuple(meta.get("finalizers") or ()),
    )


# Finalizers a reconciler releases: an object being deleted is reconciled only while it carries
# one; otherwise the reconcile would re-apply children the garbage collector is removing.
RECONCILER_FINALIZERS = frozenset({FINALIZER_FEATURE_VERSIONS})


def ours_to_finalize(meta: Mapping[str, Any]) -> bool:
    return any(f in RECONCILER_FINALIZERS for f in meta.get("finalizers") or [])


class Runtime:
    def __init__(self, config: OperatorConfig, kube: Kube | None = None, lookups: IndexLookups | None = None):
        self.config = config
        if kube is None:
            kube = KubeHttp(load_api_client(pool_size=max(32, config.workers)), observe=metrics.count_api_call)
        self.kube = kube
        self.lookups = lookups or IndexLookups()
        self.context = Context(kube=kube, lookups=self.lookups, config=config, metrics=metrics.PrometheusMetrics())
        self.queue: WorkQueue | None = None
        self._lock = threading.Lock()
        # key -> signature of the body its last reconcile started from.
        self._reconciled: dict[Key, tuple] = {}
        # The newest body the watch delivered for each queued key (the informer-cache pattern):
        # the reconcile starts from it instead of a GET. Held only while the key waits, so memory
        # at rest does not grow with the number of objects. A stale body is harmless: child writes
        # are idempotent, status patches carry resourceVersion (a conflict re-reads), and the newer
        # event queues the key again.
        self._bodies: dict[Key, dict[str, Any]] = {}
        # trigger key -> the value last seen (model versions, availability, revisions' groups...).
        self._last_seen: dict[Hashable, Any] = {}
        # key -> write conflicts in a row, retried at once up to CONFLICT_RETRIES (then backoff).
        self._conflicts: dict[Key, int] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, indices: Mapping[str, Any]) -> None:
        """Bind Kopf's indexes and start the workers (the startup handler calls this)."""
        self.lookups.bind(indices)
        with self._lock:
            if self.queue is None or self.queue.stopped:
                self.queue = WorkQueue(self.process, workers=self.config.workers, name="fti-reconcile")

    def stop(self, timeout: float | None = None) -> None:
        with self._lock:
            queue = self.queue
        if queue is not None:
            queue.stop(timeout)

    # -- what the event handlers call ---------------------------------------------------------
    def enqueue(self, plural: str, namespace: str, name: str) -> None:
        queue = self.queue
        if queue is not None:
            queue.add((plural, namespace, name))

    def own_event(self, plural: str, body: Mapping[str, Any], type_: str | None) -> None:
        """An event of one of our kinds: queue its reconcile when its signature changed since the
        last reconcile, on the initial listing (a restart resumes everything), and keep the newest
        body for a key that waits."""
        meta = body["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        with self._lock:
            if type_ == "DELETED":
                self._reconciled.pop(key, None)
                self._bodies.pop(key, None)
                return
            queue = type_ is None or self._reconciled.get(key) != signature(body)
            if queue or key in self._bodies:
                self._bodies[key] = dict(body)
        if queue:
            self.enqueue(*key)

    def changed(self, key: Hashable, value: Any, initial: Any = _NOTHING) -> bool:
        """Did `value` change since the last call for `key` (the first call compares with `initial`)?"""
        with self._lock:
            old = self._last_seen.get(key, initial)
            self._last_seen[key] = value
        return old != value

    def last_seen(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._last_seen.get(key, default)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._last_seen.pop(key, None)

    # -- what the queue workers run -----------------------------------------------------------
    def _conflict_again(self, key: Key) -> bool:
        """Count a write conflict of `key`; True while an immediate retry is still worth it."""
        with self._lock:
            n = self._conflicts[key] = self._conflicts.get(key, 0) + 1
            if n > CONFLICT_RETRIES:
                self._conflicts.pop(key, None)
                return False
            return True

    def _body(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            body = self._bodies.pop(key, None)
        if body is not None:
            return body
        plural, ns, name = key
        return self.kube.get(API_VERSION, plural, ns, name)

    def process(self, key: Hashable) -> None:
        plural, ns, name = cast(Key, key)
        body = self._body((plural, ns, name))
        if body is None:
            return
        # Recorded before the reconcile: the events of its own status patch arrive while it runs
        # and must not queue it again (a failed reconcile is retried by the queue anyway).
        with self._lock:
            self._reconciled[(plural, ns, name)] = signature(body)
        meta = body["metadata"]
        if meta.get("deletionTimestamp") and not ours_to_finalize(meta):
            return
        kind, reconcile = RECONCILERS[plural]
        try:
            with metrics.reconcile_timer(kind):
                result = reconcile(self.context, body)
        except ApiError as exc:
            if exc.conflict and self._conflict_again((plural, ns, name)):
                # Someone wrote the object after the body this pass started from (the usual case: a
                # watch event racing our own write). The fix is a fresh read, now, not a backoff and a
                # stack trace; a conflict that keeps coming back goes to the queue's backoff below.
                log.info("%s %s/%s: changed while reconciled (409); reconciling it again", kind, ns, name)
                with self._lock:
                    self._bodies.pop((plural, ns, name), None)
                if self.queue is not None:
                    self.queue.add(key)
                return
            if not exc.namespace_terminating:
                raise  # the queue retries with backoff
            # Nothing can be created there any more, and the namespace controller deletes the object
            # next (its deletion event queues the finalizer step): a retry would only add requests.
            log.info("%s %s/%s: namespace is being deleted, not retrying", kind, ns, name)
            return
        with self._lock:
            self._conflicts.pop((plural, ns, name), None)
        if result.actions:
            log.debug("%s %s/%s: %s", kind, ns, name, result.actions)
        if result.requeue_after is not None and self.queue is not None:
            self.queue.add_after(key, result.requeue_after)
