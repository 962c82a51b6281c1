"""Kopf indexes of the three kinds, and `IndexLookups`: the reconcilers' `Lookups` answered from them.

Cross-resource questions (which versions of a model exist, is a feature-group version
materialized, which revisions still read it) are answered from in-memory indexes Kopf keeps
in step with the watches: no API request, and a lookup by key, so one reconcile costs the
same with ten objects in a namespace or ten thousand. The index functions only call the
pure functions of `fti_operator.versions` that `fti local` also uses (local/lookups.py):
the two drivers cannot disagree about an answer. Index functions are async: they only
compute, and a sync one would cost a thread-pool hop per event.

The indexes are mutated on Kopf's event loop while queue workers read them from threads:
every read takes a snapshot with `list(...)`, which copies a dict's values in one step
under the GIL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from ..api.identity import FEATURE_PIPELINE, GROUP, INFERENCE_SERVICE, TRAINING_PIPELINE, VERSION
from ..versions import (
    FeatureGroupAvailability,
    ModelInfo,
    feature_availability as fg_availability,
    models_from_status,
    revision_feature_groups,
)

FP, TP, IS = FEATURE_PIPELINE.plural, TRAINING_PIPELINE.plural, INFERENCE_SERVICE.plural
# Every index, by the name Kopf passes it to handlers under.
INDEX_NAMES = (
    "models_by_name",
    "models_by_group",
    "feature_availability",
    "pipelines_by_group",
    "services_by_model",
    "revisions_by_group",
)


# What an index function returns: {key: value} for this object (our kinds are namespaced).
IndexValue = dict[Any, Any]


def _model_name(spec: Mapping[str, Any]) -> str | None:
    return (spec.get("model") or {}).get("name")


@kopf.index(GROUP, VERSION, TP)
async def models_by_name(namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any) -> IndexValue:
    """(namespace, model) -> the model versions one TrainingPipeline recorded."""
    model = _model_name(spec)
    return {(namespace, model): tuple(models_from_status(model, status, namespace=namespace, pipeline=name))} if model else {}


@kopf.index(GROUP, VERSION, TP)
async def models_by_group(namespace: str | None, spec: kopf.Spec, status: kopf.Status, **_: Any) -> IndexValue:
    """(namespace, feature group) -> models whose versions read it: the InferenceServices a
    feature-group version becoming available concerns are those of these models only."""
    model = _model_name(spec)
    if not model:
        return {}
    return {(namespace, g): model for m in models_from_status(model, status, namespace=namespace) for g, _v in m.feature_groups}


@kopf.index(GROUP, VERSION, FP)
async def feature_availability(namespace: str | None, spec: kopf.Spec, status: kopf.Status, **_: Any) -> IndexValue:
    """(namespace, group, version) -> FeatureGroupAvailability."""
    return dict(fg_availability(namespace or "", spec, status))


@kopf.index(GROUP, VERSION, FP)
async def pipelines_by_group(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> IndexValue:
    group = (spec.get("featureGroup") or {}).get("name")
    return {(namespace, group): name} if group else {}


@kopf.index(GROUP, VERSION, IS)
async def services_by_model(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> IndexValue:
    model = _model_name(spec)
    return {(namespace, model): name} if model else {}


@kopf.index(GROUP, VERSION, IS)
async def revisions_by_group(namespace: str | None, name: str, status: kopf.Status, **_: Any) -> IndexValue:
    """(namespace, group) -> ('namespace/name', versions of it the service's revisions read),
    from the revisions' own snapshots (versions.revision_feature_groups)."""
    by_group: dict[str, set[int]] = {}
    for group, version in revision_feature_groups(status):
        by_group.setdefault(group, set()).add(version)
    return {(namespace, g): (f"{namespace}/{name}", tuple(sorted(vs))) for g, vs in by_group.items()}


def values(index: kopf.Index | None, key: Any) -> list[Any]:
    """A snapshot of the values under `key` (see the module docstring)."""
    if index is None:
        return []
    store = index.get(key)
    return list(store) if store is not None else []


def keys(index: kopf.Index | None) -> list[Any]:
    return list(index) if index is not None else []


class IndexLookups:
    """`reconcile.context.Lookups` over the Kopf indexes (given at startup, live thereafter)."""

    def __init__(self, indices: Mapping[str, kopf.Index] | None = None):
        self._indices: Mapping[str, kopf.Index] = indices or {}

    def bind(self, indices: Mapping[str, kopf.Index]) -> None:
        self._indices = {name: indices[name] for name in INDEX_NAMES if name in indices}

    def index(self, name: str) -> kopf.Index | None:
        return self._indices.get(name)

    # -- Lookups ------------------------------------------------------------------------------
    def models(self, namespace: str, model: str) -> list[ModelInfo]:
        return [m for infos in values(self.index("models_by_name"), (namespace, model)) for m in infos]

    def availability(self, namespace: str, groups: Iterable[tuple[str, int]]) -> dict[tuple[str, int], FeatureGroupAvailability]:
        out: dict[tuple[str, int], FeatureGroupAvailability] = {}
        index = self.index("feature_availability")
        for group, version in groups:
            for info in values(index, (namespace, group, version)):
                out[(group, version)] = info
        return out

    def needed(self, namespace: str, group: str) -> dict[tuple[str, int], list[str]]:
        needed: dict[tuple[str, int], set[str]] = {}
        for key, versions in values(self.index("revisions_by_group"), (namespace, group)):
            for v in versions:
                needed.setdefault((group, v), set()).add(key)
        return {fg: sorted(keys) for fg, keys in needed.items()}

    # -- what the triggers ask ----------------------------------------------------------------
    def services_of_model(self, namespace: str, model: str) -> list[str]:
        return sorted(set(values(self.index("services_by_model"), (namespace, model))))

    def services_reading_group(self, namespace: str, group: str) -> list[str]:
        """InferenceServices whose models' versions read `group`, or whose revisions do."""
        names = {
            name
            for model in set(values(self.index("models_by_group"), (namespace, group)))
            for name in values(self.index("services_by_model"), (namespace, model))
        }
        names |= {key.split("/", 1)[1] for key, _v in values(self.index("revisions_by_group"), (namespace, group))}
        return sorted(names)

    def pipelines_of_group(self, namespace: str, group: str) -> list[str]:
        return sorted(set(values(self.index("pipelines_by_group"), (namespace, group))))

    def pipelines_in(self, namespace: str) -> list[str]:
        return sorted(
            {
                name
                for (ns, group) in keys(self.index("pipelines_by_group"))
                if ns == namespace
                for name in values(self.index("pipelines_by_group"), (ns, group))
            }
        )
