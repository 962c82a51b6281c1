"""May a (model version, feature-view version) pair be served? (DESIGN §4.2)

A pair is served only if the model version is Validated and every feature-group version
its feature view reads is materialized (online, for online serving). Otherwise the
current revision keeps serving and the decision says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
        return ServingDecision(False, MODEL_NOT_VALIDATED,
                               f"model {model_name} version {model.version} is {model.phase}, not Validated", model)
    if not model.feature_groups:
        return ServingDecision(False, FEATURES_NOT_READY,
                               f"model {model_name} version {model.version} records no feature groups", model)
    missing = []
    for name, version in model.feature_groups:
        info = availability.get((name, version))
        if info is None or not info.materialized:
            missing.append(f"{name} v{version} not materialized")
        elif mode == "online" and not info.online:
            missing.append(f"{name} v{version} not online")
    if missing:
        return ServingDecision(False, FEATURES_NOT_READY,
                               f"model {model_name} version {model.version}: " + ", ".join(missing), model)
    return ServingDecision(True, SERVABLE, f"model {model_name} version {model.version} / feature view "
                           f"{model.feature_view_name} v{model.feature_view_version}", model)
