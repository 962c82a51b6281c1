"""Which feature-group versions are still needed (docs/versions.md).

A version stays materialized while any revision that is serving, in canary, or within
the rollback history needs it, even after its FeaturePipeline moved to a newer version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .models import ModelInfo


def served_model_versions(status: Mapping[str, Any] | None) -> list[int]:
    """Model versions of an InferenceService's serving, canary and history revisions."""
    status = status or {}
    revisions = [status.get("serving"), status.get("canary"), *(status.get("history") or [])]
    return [int(r["model"]) for r in revisions if r and r.get("model")]


def needed_feature_groups(
    services: Iterable[tuple[str, str, list[int]]],
    models: Mapping[tuple[str, int], ModelInfo],
) -> dict[tuple[str, int], list[str]]:
    """(feature group, version) -> sorted 'namespace/name' of the InferenceServices needing it.

    services: (key 'ns/name', model name, model versions in serving/canary/history).
    models: (model name, version) -> ModelInfo with its feature groups.
    """
    needed: dict[tuple[str, int], set[str]] = {}
    for key, model_name, versions in services:
        for v in versions:
            info = models.get((model_name, v))
            for fg in info.feature_groups if info else ():
                needed.setdefault(fg, set()).add(key)
    return {fg: sorted(keys) for fg, keys in needed.items()}


def fg_version_states(
    group: str,
    current_version: int,
    known_versions: Iterable[int],
    needed: Mapping[tuple[str, int], list[str]],
) -> dict[int, tuple[str, list[str]]]:
    """version -> (state, neededBy): Active (current), Retained (older but needed), Retired."""
    out: dict[int, tuple[str, list[str]]] = {}
    for v in sorted(set(known_versions) | {current_version}, reverse=True):
        by = list(needed.get((group, v), []))
        if v == current_version:
            out[v] = ("Active", by)
        elif by:
            out[v] = ("Retained", by)
        else:
            out[v] = ("Retired", [])
    return out


def revision_feature_groups(status: Mapping[str, Any] | None) -> set[tuple[str, int]]:
    """Feature-group versions an InferenceService's revisions read, from their own snapshots.

    Every revision the service serves or may serve again — stable, target (a canary too),
    pinned, pending (asked, waiting for its features), the rollback history and every
    revision KServe's traffic still routes requests to (`routed`, which outlives the others:
    an aborted canary, the old stable while traffic moves; versions/traffic.py); a failed
    one is not among them unless still routed — records the feature-group versions it reads,
    so retention never has to ask another resource (a deleted TrainingPipeline changes
    nothing that serves; docs/versions.md)."""
    status = status or {}
    revisions = [
        status.get("stable"),
        status.get("target"),
        status.get("pinned"),
        status.get("pending"),
        *(status.get("history") or []),
        *(status.get("routed") or []),
    ]
    out: set[tuple[str, int]] = set()
    for r in revisions:
        for g in (r or {}).get("featureGroups") or []:
            out.add((str(g["name"]), int(g["version"])))
    return out


def needed_by_services(services: Iterable[tuple[str, Mapping[str, Any] | None]]) -> dict[tuple[str, int], list[str]]:
    """(feature group, version) -> sorted 'namespace/name' of the services whose revisions read it.

    services: ('namespace/name', InferenceService status). Both drivers answer
    `Lookups.needed` with this, from their own view of the InferenceServices."""
    needed: dict[tuple[str, int], set[str]] = {}
    for key, status in services:
        for fg in revision_feature_groups(status):
            needed.setdefault(fg, set()).add(key)
    return {fg: sorted(keys) for fg, keys in needed.items()}
