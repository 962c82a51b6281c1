"""`Lookups` for `fti local`: the same answers the controller's indexes give, by scanning.

The in-memory API server holds a handful of objects, so a scan per question is cheaper than
keeping indexes in step; the answers come from the same pure functions of
`fti_operator.versions` the controller's indexes use, so the two drivers agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api.identity import API_VERSION
from ..reconcile.kube import Kube
from ..versions import FeatureGroupAvailability, ModelInfo, feature_availability, models_from_status, needed_by_services


class ScanLookups:
    def __init__(self, kube: Kube):
        self.kube = kube

    def models(self, namespace: str, model: str) -> list[ModelInfo]:
        return [
            m
            for tp in self.kube.list(API_VERSION, "trainingpipelines", namespace)
            if (tp.get("spec") or {}).get("model", {}).get("name") == model
            for m in models_from_status(model, tp.get("status"), namespace=namespace, pipeline=tp["metadata"]["name"])
        ]

    def availability(self, namespace: str, groups: Iterable[tuple[str, int]]) -> dict[tuple[str, int], FeatureGroupAvailability]:
        wanted = set(groups)
        out: dict[tuple[str, int], FeatureGroupAvailability] = {}
        for fp in self.kube.list(API_VERSION, "featurepipelines", namespace):
            for (_ns, group, version), info in feature_availability(namespace, fp.get("spec") or {}, fp.get("status")).items():
                if (group, version) in wanted:
                    out[(group, version)] = info
        return out

    def needed(self, namespace: str, group: str) -> dict[tuple[str, int], list[str]]:
        services = [
            (f"{namespace}/{s['metadata']['name']}", s.get("status"))
            for s in self.kube.list(API_VERSION, "inferenceservices", namespace)
        ]
        return {fg: keys for fg, keys in needed_by_services(services).items() if fg[0] == group}
