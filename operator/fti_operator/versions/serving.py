"""May a (model version, feature-view version) pair be served? (docs/versions.md)

A pair is served only if the model version is Validated and every feature-group version
its feature view reads is materialized (online, for online serving). Otherwise the
current revision keeps serving and the decision says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .models import ModelInfo

MODEL_NOT_FOUND = "ModelNotFound"
MODEL_NOT_VALIDATED = "ModelNotValidated"
FEATURES_NOT_READY = "FeaturesNotReady"
SERVABLE = "Servable"


@dataclass(frozen=True)
class FeatureGroupAvailability:
    """What the FeaturePipeline status says about one feature-group version."""

    materialized: bool  # a run of this version succeeded (offline data committed)
    online: bool  # ... and the group is written to the online store
    detail: str = ""  # why not, when known (e.g. "re-materializing in Job x")


@dataclass(frozen=True)
class ServingDecision:
    allowed: bool
    reason: str
    message: str
    model: ModelInfo | None = None


def decide_pair(
    requested: int | str,
    model_name: str,
    model: ModelInfo | None,
    availability: Mapping[tuple[str, int], FeatureGroupAvailability],
    mode: str,
) -> ServingDecision:
    """Decide whether the resolved `model` may be served in `mode` ('online' | 'batch')."""
    if model is None:
        what = "no Validated version" if requested == "latest" else f"no version {requested}"
        return ServingDecision(False, MODEL_NOT_FOUND, f"model {model_name} has {what}")
    if model.phase != "Validated":
        return ServingDecision(
            False, MODEL_NOT_VALIDATED, f"model {model_name} version {model.version} is {model.phase}, not Validated", model
        )
    if not model.feature_groups:
        return ServingDecision(
            False, FEATURES_NOT_READY, f"model {model_name} version {model.version} records no feature groups", model
        )
    missing = []
    for name, version in model.feature_groups:
        info = availability.get((name, version))
        if info is None or not info.materialized:
            missing.append(f"{name} v{version} not materialized" + (f" ({info.detail})" if info and info.detail else ""))
        elif mode == "online" and not info.online:
            missing.append(f"{name} v{version} not online" + (f" ({info.detail})" if info.detail else ""))
    if missing:
        return ServingDecision(
            False, FEATURES_NOT_READY, f"model {model_name} version {model.version}: " + ", ".join(missing), model
        )
    return ServingDecision(
        True,
        SERVABLE,
        f"model {model_name} version {model.version} / feature view {model.feature_view_name} v{model.feature_view_version}",
        model,
    )


def feature_availability(
    namespace: str, spec: Mapping[str, Any], status: Mapping[str, Any] | None
) -> dict[tuple[str, str, int], FeatureGroupAvailability]:
    """(namespace, group, version) -> availability, from one FeaturePipeline's spec and status.

    Materialized: data of that version is committed — a watermark (the offline data reaches
    it; a quarantined batch reports the previous one) or rows written by a successful run.
    Online: and the group is declared online (the current spec's flag stands for older
    versions too: a group does not go offline), unless the version's runs committed it
    offline only (`online: false` in its status: no run has published it online yet). A
    Retired version is not available: its data may be cleaned up and nothing keeps it
    fresh; a Rematerializing one is not yet.
    """
    fg = spec.get("featureGroup") or {}
    online = bool(fg.get("online"))
    out = {}
    for v in (status or {}).get("versions") or []:
        run = v.get("lastRun") or {}
        materialized = bool(run.get("watermark")) or (bool(run.get("succeeded")) and (run.get("rowsWritten") or 0) > 0)
        key = (namespace, str(fg.get("name")), int(v["version"]))
        if v.get("state") == "Rematerializing":
            out[key] = FeatureGroupAvailability(False, False, f"re-materializing in Job {v.get('rematerializeJob')}")
        elif v.get("state") != "Retired":
            published = v.get("online") is not False
            detail = "" if published or not online else "materialized offline only: no run has published it online yet"
            out[key] = FeatureGroupAvailability(materialized, materialized and online and published, detail)
    return out
