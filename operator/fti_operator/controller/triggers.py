"""Watch events -> work-queue keys: which event concerns which object's reconcile.

Handlers are `on.event` and async: they only compare and enqueue (a sync handler costs a
thread-pool hop per event). Kopf's create/update handlers are not used: they write a
diff-base annotation after every change and progress records on retries — writes that buy
nothing when the reconcile is level-based anyway (docs/architecture.md).

- Our three kinds: a key is queued when the object's signature (generation, annotations,
  deletion, finalizers) changed since its last reconcile, and on the initial listing.
- Cross-resource: a TrainingPipeline's model versions changing queues the InferenceServices
  of that model (`latest` may resolve anew); a feature-group version's availability changing
  queues the InferenceServices that read the group; the feature-group versions an
  InferenceService's revisions read changing (or the service going) queues the
  FeaturePipelines of those groups (retention, the deletion finalizer).
- Children: a Job of ours finishing queues its owner, whose reconcile records the run (one
  writer of status); a KServe InferenceService of ours changing what we report (conditions,
  url, components' revisions and traffic, the generation it observed, its deployment mode)
  or going away queues its owner.

On the initial listing (`type is None`) cross-resource triggers only remember what they saw:
every object of our kinds is reconciled anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.identity import (
    API_VERSION,
    FEATURE_PIPELINE,
    GROUP,
    INFERENCE_SERVICE,
    KIND_INFERENCE_SERVICE,
    KSERVE_GROUP,
    KSERVE_PLURAL,
    KSERVE_VERSION,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_RESOURCE,
    MANAGED_BY,
    TRAINING_PIPELINE,
    VERSION,
)
from ..reconcile.results import job_finished
from ..versions import feature_availability as fg_availability, models_from_status, revision_feature_groups
from .indexes import FP, IS, TP
from .runtime import Runtime

# LABEL_KIND on a child -> the owner's plural.
PLURAL_OF_KIND = {k.singular: k.plural for k in (FEATURE_PIPELINE, TRAINING_PIPELINE, INFERENCE_SERVICE)}
OURS = {LABEL_MANAGED_BY: MANAGED_BY}


def _runtime(memo: Any) -> Runtime:
    return memo.runtime


@kopf.on.event(GROUP, VERSION, TP)
async def training_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    rt = _runtime(memo)
    rt.own_event(TP, body, type)
    meta, spec = body["metadata"], body.get("spec") or {}
    ns, name, model = meta["namespace"], meta["name"], (spec.get("model") or {}).get("name")
    if not model:
        return
    versions = () if type == "DELETED" else tuple(models_from_status(model, body.get("status"), namespace=ns))
    key = ("tp", ns, name)
    if rt.changed(key, versions, initial=()) and type is not None:
        for isvc in rt.lookups.services_of_model(ns, model):
            rt.enqueue(IS, ns, isvc)
    if type == "DELETED":
        rt.forget(key)


@kopf.on.event(GROUP, VERSION, FP)
async def feature_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    rt = _runtime(memo)
    rt.own_event(FP, body, type)
    meta, spec = body["metadata"], body.get("spec") or {}
    ns, name, group = meta["namespace"], meta["name"], (spec.get("featureGroup") or {}).get("name")
    if not group:
        return
    state = frozenset() if type == "DELETED" else frozenset(fg_availability(ns, spec, body.get("status")).items())
    key = ("fp", ns, name)
    if rt.changed(key, state, initial=frozenset()) and type is not None:
        for isvc in rt.lookups.services_reading_group(ns, group):
            rt.enqueue(IS, ns, isvc)
    if type == "DELETED":
        rt.forget(key)


@kopf.on.event(GROUP, VERSION, IS)
async def inference_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    rt = _runtime(memo)
    rt.own_event(IS, body, type)
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    key = ("is", ns, name)
    old = rt.last_seen(key, frozenset())
    new = frozenset() if type == "DELETED" else frozenset(revision_feature_groups(body.get("status")))
    rt.changed(key, new)
    if type == "DELETED":
        rt.forget(key)
    if old == new or type is None:
        return
    # The groups of the versions that came or went: their pipelines re-decide retention.
    for group in sorted({g for g, _v in old ^ new}):
        for fp in rt.lookups.pipelines_of_group(ns, group):
            rt.enqueue(FP, ns, fp)


def owner_name(body: Mapping[str, Any], kind: str) -> str | None:
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("apiVersion") == API_VERSION and ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name")
    return None


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A Job of ours finished: its owner's reconcile reads the result and records the run."""
    rt = _runtime(memo)
    meta = body["metadata"]
    key = ("job", meta["namespace"], meta.get("uid") or meta["name"])
    if type == "DELETED":
        rt.forget(key)
        return
    finished = job_finished(body)
    if finished is None or not rt.changed(key, finished, initial=None) or type is None:
        return
    labels = meta.get("labels") or {}
    plural, owner = PLURAL_OF_KIND.get(labels.get(LABEL_KIND, "")), labels.get(LABEL_RESOURCE)
    if plural and owner:
        rt.enqueue(plural, meta["namespace"], owner)


def kserve_signature(body: Mapping[str, Any]) -> tuple:
    """What of a KServe InferenceService's status our owner reports or decides on."""
    status = body.get("status") or {}
    conditions = tuple(
        sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in status.get("conditions") or [])
    )
    components = tuple(
        sorted(
            (
                name,
                c.get("latestReadyRevision"),
                c.get("latestCreatedRevision"),
                tuple(
                    sorted(
                        (t.get("revisionName"), t.get("percent"), bool(t.get("latestRevision"))) for t in c.get("traffic") or []
                    )
                ),
            )
            for name, c in (status.get("components") or {}).items()
        )
    )
    # observedGeneration: KServe has seen the spec we applied; deploymentMode: whether it can split traffic.
    return conditions, status.get("url"), components, status.get("observedGeneration"), status.get("deploymentMode")


# A child KServe has not reported on yet (the ADDED event of one we just created): the status
# the reconcile that created it wrote already says so.
NOT_REPORTED = kserve_signature({})


@kopf.on.event(KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL, labels=OURS)
async def kserve_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    rt = _runtime(memo)
    meta = body["metadata"]
    key = ("kserve", meta["namespace"], meta["name"])
    if type == "DELETED":
        rt.forget(key)  # and the owner puts it back, unless it is going too
    elif not rt.changed(key, kserve_signature(body), initial=NOT_REPORTED) or type is None:
        return
    owner = owner_name(body, KIND_INFERENCE_SERVICE)
    if owner:
        rt.enqueue(IS, meta["namespace"], owner)
