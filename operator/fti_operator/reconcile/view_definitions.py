"""A TrainingPipeline's feature view against the definitions already in use under its version.

The operator never reads the stores, so it compares with what it can see: the feature views
the namespace's training Jobs ran (each Job carries its resolved spec in FTI_SPEC), its own
and other TrainingPipelines'. Definitions that ran, not the ones declared: a newcomer that
redefines a version is refused, the pipeline already training on it is not. A different
definition under the same name and version is refused before a Job starts
(docs/store-layout.md, "Feature views"); the training pipeline checks the store's registered
definition too, which also covers Jobs deleted since.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..api.feature_views import definition_hash, redefinition_message
from ..api.identity import ENV_SPEC


def job_view(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The feature view (wire form) a training Job ran with, from its container's FTI_SPEC."""
    containers = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    for c in containers:
        for e in c.get("env") or []:
            if e.get("name") == ENV_SPEC and e.get("value"):
                try:
                    view = json.loads(e["value"]).get("featureView")
                except (json.JSONDecodeError, AttributeError):
                    return None
                return view if isinstance(view, dict) else None
    return None


def in_use(jobs: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, feature view) for every definition a training Job of the namespace ran with."""
    out = []
    for job in jobs:
        view = job_view(job)
        if view:
            out.append((f"Job {job['metadata']['name']}", view))
    return out


def redefinition(view: Mapping[str, Any], used: Iterable[tuple[str, Mapping[str, Any]]]) -> str | None:
    """The refusal message when a definition in use differs under `view`'s name and version (pure)."""
    digest = definition_hash(view)
    for where, other in used:
        same_version = other.get("name") == view.get("name") and other.get("version") == view.get("version")
        if same_version and definition_hash(other) != digest:
            return redefinition_message(str(view["name"]), int(view["version"]), where, other, view)
    return None
