"""The load-time guard against training/serving skew (docs/versions.md).

A revision is served only when all of these hold; otherwise the server stays up but
not ready, with the reasons in its log and on its readiness endpoints:

- the model card is the version the spec names and its verdict is Validated;
- the feature view recorded in model.json (what the model was trained on) is the one
  the spec says to serve;
- the online store holds every feature-group version the lookup reads, with every
  column it reads (and the key columns it is keyed by);
- with `missingEntity: defaults`, a default is declared for every looked-up column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import ServingConfig
from .plan import LookupPlan


@dataclass(frozen=True)
class Problem:
    reason: str  # CamelCase, e.g. FeatureViewMismatch
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def check_card(card: Mapping[str, Any], config: ServingConfig) -> list[Problem]:
    """Model identity, verdict and the feature view recorded at training time."""
    problems: list[Problem] = []
    if card.get("name") not in (None, config.model_name) or card.get("version") not in (None, config.model_version):
        problems.append(
            Problem(
                "ModelCardMismatch",
                f"model.json describes {card.get('name')} v{card.get('version')}, "
                f"the spec serves {config.model_name} v{config.model_version}",
            )
        )
    verdict = card.get("verdict")
    if verdict != "Validated":
        why = "; ".join(card.get("reasons") or []) or "no reasons recorded"
        problems.append(
            Problem(
                "ModelNotValidated",
                f"model {config.model_name} v{config.model_version} has verdict "
                f"{verdict!r}, only Validated models are served ({why})",
            )
        )
    view = card.get("featureView") or {}
    trained = (view.get("name"), view.get("version"))
    wanted = (config.feature_view_name, config.feature_view_version)
    if trained != wanted:
        problems.append(
            Problem(
                "FeatureViewMismatch",
                f"model {config.model_name} v{config.model_version} was trained on feature view "
                f"{trained[0]} v{trained[1]}, but the spec serves it with {wanted[0]} v{wanted[1]}; "
                f"serving would feed it features it never saw",
            )
        )
    return problems


def check_online_store(plan: LookupPlan, store: Any) -> list[Problem]:
    """Every feature-group version the lookup reads is materialized online, with its columns."""
    problems: list[Problem] = []
    for group in plan.groups:
        info = store.version_info(group.name, group.version)
        if info is None:
            problems.append(
                Problem(
                    "FeaturesNotMaterialized",
                    f"feature group {group.name} v{group.version} is not in the online store "
                    f"{getattr(store, 'uri', '')} (run its FeaturePipeline with online: true)",
                )
            )
            continue
        stored = {c["name"] if isinstance(c, Mapping) else c for c in info.get("columns") or []}
        missing = [c for c in (*group.columns, *([group.event_time] if group.event_time else [])) if c not in stored]
        if missing:
            problems.append(
                Problem(
                    "FeatureColumnsMissing",
                    f"online feature group {group.name} v{group.version} lacks column(s) {missing} that the model reads",
                )
            )
        keyed = list(info.get("primaryKey") or [])
        if keyed and keyed != list(group.primary_key):
            problems.append(
                Problem(
                    "FeatureKeyMismatch",
                    f"online feature group {group.name} v{group.version} is keyed by {keyed}, "
                    f"the model card says {list(group.primary_key)}",
                )
            )
    return problems


def check_defaults(plan: LookupPlan, config: ServingConfig) -> list[Problem]:
    if config.online.missing_entity != "defaults":
        return []
    declared = config.online.defaults or {}
    missing = [c for g in plan.groups for c in g.columns if c not in declared]
    if missing:
        return [
            Problem(
                "DefaultsIncomplete",
                f"spec.online.defaults has no value for looked-up column(s) {missing}; "
                f"missingEntity: defaults needs one for each",
            )
        ]
    return []


def key_kinds(plan: LookupPlan, store: Any) -> dict[str, str]:
    """Dtypes of the entity keys as the online store holds them (int / string ...)."""
    kinds: dict[str, str] = {}
    for group in plan.groups:
        info = store.version_info(group.name, group.version) or {}
        for col in info.get("columns") or []:
            if isinstance(col, Mapping) and col.get("name") in group.primary_key:
                kinds.setdefault(
                    col["name"],
                    {"int": "int64", "float": "float64", "string": "string", "bool": "bool"}.get(str(col.get("kind")), "any"),
                )
    return kinds
