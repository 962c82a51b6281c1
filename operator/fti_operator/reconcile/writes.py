"""Status writes and Events: the two things every reconciler writes about its own object.

Status is computed as a typed model (`fti_operator.api` status classes, the same ones that
generate the CRD schema) and written as a merge patch of the status subresource carrying
`metadata.resourceVersion`: a concurrent writer makes it fail with 409 instead of being
overwritten, and then the object is read again and the status recomputed. Nothing is
written when the computed status equals the current one, which is what makes a no-change
reconcile free.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from .conditions import now_iso
from .kube import ApiError, Kube

log = logging.getLogger("fti_operator")
MAX_EVENT_MESSAGE = 1024


def wire(model: BaseModel) -> dict[str, Any]:
    """A status model as the API server stores it (camelCase, no nulls, RFC 3339 times)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def typed(model_cls: type[BaseModel], status: Mapping[str, Any]) -> dict[str, Any]:
    """`status` validated by the kind's status model and dumped back: a status the CRD schema
    would prune or reject cannot leave a reconciler (it raises here instead)."""
    return wire(model_cls.model_validate(dict(status)))


def update_status(
    kube: Kube,
    api_version: str,
    plural: str,
    body: Mapping[str, Any],
    compute: Callable[[Mapping[str, Any]], dict[str, Any]],
    attempts: int = 5,
    before_write: Callable[[], None] | None = None,
) -> dict[str, Any] | None:
    """Write `compute(body)` as status when it differs from the current one; None if nothing changed.

    `before_write` runs once, before the first write (never when nothing changes): what must
    not be lost if the process dies right after the write, such as a transition's Event."""
    meta = body["metadata"]
    for _ in range(attempts):
        new = compute(body)
        old = dict(body.get("status") or {})
        # A key computed as None is removed (null in a merge patch); keys not computed stay.
        if all(old.get(k) == v for k, v in new.items()):
            return None
        if before_write is not None:
            before_write()
            before_write = None
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": new}
        try:
            return kube.patch(api_version, plural, meta.get("namespace"), meta["name"], patch, subresource="status")
        except ApiError as exc:
            if exc.not_found:
                return None
            if not exc.conflict:
                raise
        fresh = kube.get(api_version, plural, meta.get("namespace"), meta["name"])
        if fresh is None:
            return None
        body, meta = fresh, fresh["metadata"]
    raise RuntimeError(f"status of {plural}/{meta['name']} kept conflicting after {attempts} attempts")


def transition_event_name(body: Mapping[str, Any], reason: str, message: str) -> str:
    """The name of the Event of one transition from the object's current status: the same on a
    retry that starts from the same status (so the retry's create finds it), different for any
    other transition (the status, with its timestamps, never comes back exactly)."""
    meta = body["metadata"]
    key = json.dumps([meta.get("uid"), body.get("status"), reason, message], sort_keys=True, default=str)
    return f"{meta['name']}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def emit_event(
    kube: Kube,
    body: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    now: datetime | None = None,
    name: str | None = None,
) -> None:
    """A Kubernetes Event on `body` (what `kubectl describe` shows). Best effort: never fails a reconcile.

    Reconcilers call this only for a transition they have just written to status, so each
    transition gets one Event (a retry that finds the status already written emits nothing).
    A transition recorded by a child rather than by status passes `name`, derived from that
    child: a retry after a crash finds the Event already there (409) and posts no second one."""
    meta = body["metadata"]
    ns = meta.get("namespace") or "default"
    stamp = now_iso(now)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns} if name else {"generateName": f"{meta['name']}.", "namespace": ns},
        "involvedObject": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta["name"],
            "namespace": ns,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:MAX_EVENT_MESSAGE],
        "type": type_,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": "fti-operator"},
        "reportingComponent": "fti-operator",
    }
    try:
        kube.create(event)
    except ApiError as exc:
        if name and exc.conflict:  # posted before a crash: once is enough
            return
        if exc.namespace_terminating:
            # The namespace and everything in it, this Event included, is going away.
            log.debug("no event %s on %s/%s: namespace %s is terminating", reason, ns, meta["name"], ns)
            return
        log.warning("could not post event %s on %s/%s: %s", reason, ns, meta["name"], exc)
