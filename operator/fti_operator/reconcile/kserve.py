"""What KServe reports about a child and how the cluster's KServe is configured.

Three readings the InferenceService reconciler needs beyond readiness (docs/rollouts.md):

- the traffic table (`status.components.predictor.traffic[]`: `revisionName`, `percent`,
  `latestRevision`, `tag`), so that retention keeps the features of every pair KServe still
  routes requests to;
- the deployment mode, because only Serverless (Knative) splits traffic for a canary:
  the `serving.kserve.io/deploymentMode` annotation (ours or the child's) or the mode KServe
  reports in the child's status and, when none says, the cluster default in KServe's
  `inferenceservice-config` ConfigMap (key `deploy`, JSON `defaultDeploymentMode`), read
  through the Kube interface and cached;
- what a live child serves (its annotation and labels), to adopt it when status does not
  know it (status lost, restored from a backup) instead of re-targeting it with a fresh
  deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.identity import ANNOTATION_REVISION, LABEL_FV_VERSION, LABEL_MODEL_VERSION
from ..versions import ModelInfo
from .kube import FIELD_MANAGER, ApiError, Kube

log = logging.getLogger(__name__)

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
SERVERLESS, RAW_DEPLOYMENT = "Serverless", "RawDeployment"
# Modes in which KServe splits traffic between revisions (Knative routes); every other mode
# (RawDeployment, its newer name Standard, ModelMesh) ignores canaryTrafficPercent.
SPLITTING_MODES = frozenset({SERVERLESS, "Knative"})
CONFIG_MAP = "inferenceservice-config"
CONFIG_KEY = "deploy"


def predictor_traffic(child: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """KServe's traffic table of the predictor (empty where KServe reports none: RawDeployment)."""
    components = ((child or {}).get("status") or {}).get("components") or {}
    return [dict(t) for t in (components.get("predictor") or {}).get("traffic") or [] if isinstance(t, Mapping)]


def mode_from(spec_annotations: Mapping[str, str] | None, child: Mapping[str, Any] | None) -> str | None:
    """The mode our annotation, the child's annotation or KServe's status names; None when none does.
    A mode that cannot split traffic wins over one that can: that is the one to be truthful about."""
    theirs = (((child or {}).get("metadata") or {}).get("annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION)
    reported = ((child or {}).get("status") or {}).get("deploymentMode")
    named = [m for m in ((spec_annotations or {}).get(DEPLOYMENT_MODE_ANNOTATION), theirs, reported) if m]
    return next((m for m in named if m not in SPLITTING_MODES), named[0] if named else None)


def default_mode_of(config_map: Mapping[str, Any] | None) -> str | None:
    """`defaultDeploymentMode` of KServe's inferenceservice-config (None: not set or unreadable)."""
    raw = ((config_map or {}).get("data") or {}).get(CONFIG_KEY)
    try:
        value = json.loads(raw).get("defaultDeploymentMode") if raw else None
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


@dataclass
class KServeDefaults:
    """The cluster's default deployment mode, read from KServe's ConfigMap at most once per `ttl`.

    A missing ConfigMap (KServe not installed there, or a different namespace) and a refused
    read (the chart grants `get` on that one ConfigMap only) mean KServe's own default,
    Serverless; each such outcome is logged once, not on every reconcile."""

    ttl: float = 300.0
    now: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, str]] = field(default_factory=dict)
    _logged: dict[str, str] = field(default_factory=dict)

    def mode(self, kube: Kube, namespace: str) -> str:
        cached = self._cache.get(namespace)
        if cached is not None and self.now() - cached[0] < self.ttl:
            return cached[1]
        try:
            found = kube.get("v1", "configmaps", namespace, CONFIG_MAP)
            mode = default_mode_of(found)
            why = None if mode else (f"{namespace}/{CONFIG_MAP} not found" if found is None else "no defaultDeploymentMode in it")
        except ApiError as exc:
            if exc.status not in (401, 403):
                raise
            mode, why = None, f"reading {namespace}/{CONFIG_MAP} was refused ({exc.status})"
        if why and self._logged.get(namespace) != why:
            log.info("KServe's default deployment mode: %s; assuming %s", why, SERVERLESS)
        self._logged[namespace] = why or ""
        value = mode or SERVERLESS
        self._cache[namespace] = (self.now(), value)
        return value


def splits_traffic(mode: str) -> bool:
    return mode in SPLITTING_MODES


@dataclass(frozen=True)
class ChildPair:
    """What a live KServe child serves, by its own annotation and labels."""

    revision: int
    model: int
    feature_view: int
    storage_uri: str | None


def served_by(child: Mapping[str, Any] | None) -> ChildPair | None:
    """The revision and pair a child renders (None: not one of ours, or made before the labels)."""
    meta = (child or {}).get("metadata") or {}
    number = str((meta.get("annotations") or {}).get(ANNOTATION_REVISION, ""))
    labels = meta.get("labels") or {}
    model, fv = str(labels.get(LABEL_MODEL_VERSION, "")), str(labels.get(LABEL_FV_VERSION, ""))
    if not (number.isdigit() and model.isdigit() and fv.isdigit()):
        return None
    storage = (((child or {}).get("spec") or {}).get("predictor") or {}).get("model") or {}
    return ChildPair(int(number), int(model), int(fv), storage.get("storageUri"))


def served_revision(
    child: Mapping[str, Any] | None,
    owner_uid: str | None,
    models: Iterable[ModelInfo],
    snapshot: Callable[[ModelInfo], dict[str, Any]],
) -> dict[str, Any] | None:
    """The revision a live child of this object renders, with its snapshot: from the registry
    when the model version is still known there (its feature groups), else what the child says."""
    served = served_by(child)
    owners = ((child or {}).get("metadata") or {}).get("ownerReferences") or []
    if served is None or not any(ref.get("uid") == owner_uid for ref in owners):
        return None  # only a child this object owns: a same-named one of someone else is not ours
    info = next(
        (m for m in models if m.version == served.model and int(m.feature_view_version or 0) == served.feature_view), None
    )
    if info is not None:
        return {"revision": served.revision, **snapshot(info)}
    out: dict[str, Any] = {
        "revision": served.revision,
        "model": served.model,
        "featureView": served.feature_view,
        "featureGroups": [],
    }
    if served.storage_uri:
        out["storageUri"] = served.storage_uri
    return out


def written_at(child: Mapping[str, Any] | None) -> str | None:
    """When the operator last wrote the child, as the API server recorded it (managedFields)."""
    entries = ((child or {}).get("metadata") or {}).get("managedFields") or []
    times = [str(e["time"]) for e in entries if e.get("manager") == FIELD_MANAGER and e.get("time")]
    return max(times) if times else None
