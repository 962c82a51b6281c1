"""Process-wide operator state shared by the handlers: client, config, per-object locks, events.

Kopf calls sync handlers in a thread pool, and one object can be reconciled from its own
handler and from a cross-resource trigger (a new model version, a materialized feature
group) at once; a lock per object serialises those.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Callable, Mapping

from ..conditions import now_iso
from ..config import OperatorConfig
from .kube import ApiError, Kube

log = logging.getLogger("fti_operator")
GROUP, VERSION = "fti.dev", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Runtime:
    def __init__(self, config: OperatorConfig, kube: Kube | None = None):
        self.config = config
        self.kube = kube or Kube()
        self._locks: defaultdict[tuple[str, str, str], threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    def lock(self, kind: str, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[(kind, namespace, name)]

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._locks_guard:
            self._locks.pop((kind, namespace, name), None)

    def event(self, body: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        """A Kubernetes Event on `body` (what `kubectl describe` shows). Best effort: never fails a reconcile."""
        meta = body["metadata"]
        ns = meta.get("namespace") or "default"
        now = now_iso()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": ns},
            "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "name": meta["name"],
                               "namespace": ns, "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message[:1024], "type": type_,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": "fti-operator"}, "reportingComponent": "fti-operator",
        }
        try:
            self.kube.create(event)
        except ApiError as exc:
            log.warning("could not post event %s on %s/%s: %s", reason, ns, meta["name"], exc)

    def update_status(self, plural: str, body: Mapping[str, Any], compute: Callable[[Mapping[str, Any]], dict[str, Any]],
                      attempts: int = 5) -> dict[str, Any] | None:
        """Write `compute(body)` as status when it differs from the current one; None if nothing changed.

        The patch carries resourceVersion, so a concurrent writer makes it fail (409) rather than
        being overwritten; then the object is read again and the status recomputed.
        """
        meta = body["metadata"]
        for _ in range(attempts):
            new = compute(body)
            old = dict(body.get("status") or {})
            if all(old.get(k) == v for k, v in new.items()):
                return None
            patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": new}
            try:
                return self.kube.patch(API_VERSION, plural, meta.get("namespace"), meta["name"], patch, subresource="status")
            except ApiError as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise
            fresh = self.kube.get(API_VERSION, plural, meta.get("namespace"), meta["name"])
            if fresh is None:
                return None
            body, meta = fresh, fresh["metadata"]
        raise RuntimeError(f"status of {plural}/{meta['name']} kept conflicting after {attempts} attempts")


_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("fti-operator runtime not initialised (the startup handler sets it)")
    return _runtime
