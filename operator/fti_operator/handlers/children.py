"""get -> compare owned fields -> create or replace: the only way children are written.

A child carries `fti.dev/spec-hash` (hash of the rendered spec, labels and owner). It is
up to date when that hash matches AND every field we render still has our value on the
server (the server may add defaults; it may not change what we set). Nothing else is
compared, so API-server defaulting never causes a write and a no-change reconcile
makes no write call.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping

from ..render.pods import ANNOTATION_SPEC_HASH, spec_hash
from .kube import PLURALS, ApiError, Kube

log = logging.getLogger(__name__)
# Jobs' pod templates are immutable: a changed run gets a new name from the renderer.
IMMUTABLE_KINDS = frozenset({"Job"})


def is_subset(desired: Any, live: Any) -> bool:
    """Every value in `desired` is present and equal in `live` (dicts recursively, lists by position)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(is_subset(d, l) for d, l in zip(desired, live))
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)) and not isinstance(desired, bool):
        return desired == live
    return desired == live


def with_hash(desired: Mapping[str, Any]) -> dict[str, Any]:
    """`desired` plus its spec-hash annotation; `desired` itself is left as it was. Only metadata
    and its annotations are copied: a deep copy of a whole pod template per child was a
    measurable share of the operator's CPU in a burst, and nothing below mutates the rest."""
    meta = dict(desired["metadata"])
    digest = spec_hash({"spec": desired.get("spec"), "labels": meta.get("labels"), "owners": meta.get("ownerReferences")})
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_SPEC_HASH: digest}
    return {**desired, "metadata": meta}


def up_to_date(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    dmeta, lmeta = desired["metadata"], live.get("metadata", {})
    if (lmeta.get("annotations") or {}).get(ANNOTATION_SPEC_HASH) != dmeta["annotations"][ANNOTATION_SPEC_HASH]:
        return False
    return (is_subset(dmeta.get("labels") or {}, lmeta.get("labels") or {})
            and is_subset(dmeta.get("annotations") or {}, lmeta.get("annotations") or {})
            and is_subset(dmeta.get("ownerReferences") or [], lmeta.get("ownerReferences") or [])
            and is_subset(desired.get("spec") or {}, live.get("spec") or {}))


def apply_child(kube: Kube, desired: Mapping[str, Any], live: Mapping[str, Any] | None = None,
                fetched: bool = False) -> tuple[str, dict[str, Any]]:
    """Make the child match `desired`; returns (action, object) with action created|updated|unchanged.

    `live`/`fetched`: the caller may pass an object it already listed, saving the GET.
    """
    obj = with_hash(desired)
    meta = obj["metadata"]
    plural = PLURALS[(obj["apiVersion"], obj["kind"])]
    if not fetched:
        live = kube.get(obj["apiVersion"], plural, meta.get("namespace"), meta["name"])
    if live is None:
        try:
            return "created", kube.create(obj)
        except ApiError as exc:
            if exc.status != 409:  # a concurrent reconcile created it: fine, level-based
                raise
            live = kube.get(obj["apiVersion"], plural, meta.get("namespace"), meta["name"]) or {}
    if up_to_date(obj, live) or obj["kind"] in IMMUTABLE_KINDS:
        return "unchanged", dict(live)
    updated = copy.deepcopy(dict(live))
    umeta = updated.setdefault("metadata", {})
    umeta["labels"] = {**(umeta.get("labels") or {}), **(meta.get("labels") or {})}
    umeta["annotations"] = {**(umeta.get("annotations") or {}), **(meta.get("annotations") or {})}
    if meta.get("ownerReferences"):
        umeta["ownerReferences"] = meta["ownerReferences"]
    updated["spec"] = obj["spec"]  # replace: fields we stopped rendering (canaryTrafficPercent) go too
    updated.pop("status", None)
    return "updated", kube.replace(updated)
