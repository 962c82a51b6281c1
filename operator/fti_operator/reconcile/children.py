"""Children are written by server-side apply, and only when they differ from what is live.

A child carries `fti.dev/spec-hash` (a hash of the rendered spec, labels and owner). It is
up to date when that hash matches AND every field we render still has our value on the
server (API-server defaulting and KServe's webhook may add fields; nobody may change ours).
Nothing else is compared, so defaulting never causes a write and a no-change reconcile
makes no write call. A write is one server-side apply with the field manager
`fti-operator`: it owns exactly the fields we render, so a field we stop rendering
(`canaryTrafficPercent` after a promotion) is removed, and other managers' fields stay
(docs/architecture.md, "Writing children").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.identity import ANNOTATION_SPEC_HASH, API_VERSION, KINDS, KSERVE_API_VERSION, KSERVE_KIND, KSERVE_PLURAL
from ..render.pods import spec_hash
from .kube import ApiError, Kube

# Jobs' pod templates are immutable: a changed run gets a new name from the renderer.
IMMUTABLE_KINDS = frozenset({"Job"})


def is_subset(desired: Any, live: Any) -> bool:
    """Every value in `desired` is present and equal in `live` (dicts recursively, lists by position)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and is_subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, x) for d, x in zip(desired, live, strict=True))
        )
    return bool(desired == live)


def with_hash(desired: Mapping[str, Any]) -> dict[str, Any]:
    """`desired` plus its spec-hash annotation; `desired` itself is left as it was. Only metadata
    and its annotations are copied: a deep copy of a whole pod template per child is a
    measurable share of the operator's CPU in a burst, and nothing below mutates the rest."""
    meta = dict(desired["metadata"])
    digest = spec_hash({"spec": desired.get("spec"), "labels": meta.get("labels"), "owners": meta.get("ownerReferences")})
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_SPEC_HASH: digest}
    return {**desired, "metadata": meta}


def up_to_date(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    dmeta, lmeta = desired["metadata"], live.get("metadata", {})
    if (lmeta.get("annotations") or {}).get(ANNOTATION_SPEC_HASH) != dmeta["annotations"][ANNOTATION_SPEC_HASH]:
        return False
    return (
        is_subset(dmeta.get("labels") or {}, lmeta.get("labels") or {})
        and is_subset(dmeta.get("annotations") or {}, lmeta.get("annotations") or {})
        and is_subset(dmeta.get("ownerReferences") or [], lmeta.get("ownerReferences") or [])
        and is_subset(desired.get("spec") or {}, live.get("spec") or {})
    )


def apply_child(
    kube: Kube, desired: Mapping[str, Any], live: Mapping[str, Any] | None = None, fetched: bool = False
) -> tuple[str, dict[str, Any]]:
    """Make the child match `desired`; returns (action, object) with action created|updated|unchanged.

    `live`/`fetched`: the caller may pass the object it already listed (or say that it knows
    there is none), saving the GET.
    """
    obj = with_hash(desired)
    meta = obj["metadata"]
    api_version, plural = obj["apiVersion"], plural_of(obj)
    if not fetched:
        live = kube.get(api_version, plural, meta.get("namespace"), meta["name"])
    if live is None:
        if obj["kind"] in IMMUTABLE_KINDS:
            try:
                return "created", kube.create(obj)
            except ApiError as exc:
                if not exc.conflict:  # a concurrent or earlier reconcile created it: fine, level-based
                    raise
                return "unchanged", kube.get(api_version, plural, meta.get("namespace"), meta["name"]) or {}
        return "created", kube.apply(obj)
    if obj["kind"] in IMMUTABLE_KINDS or up_to_date(obj, live):
        return "unchanged", dict(live)
    return "updated", kube.apply(obj)


# (apiVersion, kind) -> plural, for the kinds reconcilers write.
PLURALS = {
    ("batch/v1", "Job"): "jobs",
    ("batch/v1", "CronJob"): "cronjobs",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    (KSERVE_API_VERSION, KSERVE_KIND): KSERVE_PLURAL,
    **{(API_VERSION, k.kind): k.plural for k in KINDS},
}


def plural_of(obj: Mapping[str, Any]) -> str:
    return PLURALS[(obj["apiVersion"], obj["kind"])]
