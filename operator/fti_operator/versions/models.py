"""Model versions: the next number to assign, and what `latest` or a number resolves to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """One model version as the TrainingPipeline status records it."""

    name: str
    version: int
    phase: str
    feature_view_name: str | None = None
    feature_view_version: int | None = None
    feature_groups: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    storage_uri: str | None = None
    namespace: str | None = None
    pipeline: str | None = None  # the TrainingPipeline that trained it
    profile_uri: str | None = None  # its training profile, when the run reported one (docs/monitoring.md)


def models_from_status(
    model_name: str, status: Mapping[str, Any] | None, *, namespace: str | None = None, pipeline: str | None = None
) -> list[ModelInfo]:
    """TrainingPipeline `status` (camelCase dict) -> ModelInfo per model version."""
    out = []
    for mv in (status or {}).get("modelVersions") or []:
        fv = mv.get("featureView") or {}
        out.append(
            ModelInfo(
                name=model_name,
                version=int(mv["version"]),
                phase=mv.get("phase", "Training"),
                feature_view_name=fv.get("name"),
                feature_view_version=fv.get("version"),
                feature_groups=tuple((g["name"], int(g["version"])) for g in mv.get("featureGroups") or []),
                storage_uri=mv.get("storageUri"),
                namespace=namespace,
                pipeline=pipeline,
                profile_uri=mv.get("profileUri"),
            )
        )
    return out


def next_model_version(existing: Iterable[int]) -> int:
    """Versions only grow: max + 1, never reusing a number (artifacts are immutable, docs/versions.md)."""
    return max(existing, default=0) + 1


def latest_validated(models: Iterable[ModelInfo]) -> ModelInfo | None:
    validated = [m for m in models if m.phase == "Validated"]
    return max(validated, key=lambda m: m.version, default=None)


def resolve_model(requested: int | str, models: Iterable[ModelInfo]) -> ModelInfo | None:
    """`latest` -> the newest Validated version; a number -> that version in any phase (or None)."""
    models = list(models)
    if requested == "latest":
        return latest_validated(models)
    for m in models:
        if m.version == int(requested):
            return m
    return None
