"""A feature view version's definition, its hash, and what differs between two definitions.

A feature view (`TrainingPipeline.spec.featureView`) is numbered by hand; a version is
immutable (docs/versions.md): two models "on feature view v1" must read the same columns the
same way. The definition is what decides the training rows and the model's inputs: the label,
the feature columns per pinned feature-group version (the join keys are those versions'
primary keys, immutable with them) and the transformations. The operator compares it with the
definitions its Jobs and the namespace's other TrainingPipelines ran or declare
(reconcile/training.py); the training pipeline registers it in the artifact store and refuses
a different one under the same version (fti_pipelines/feature_view/definitions.py). Both say
the same thing through `redefinition_message`.

Pure functions on wire (camelCase) dicts, so both sides hash exactly the same JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

BUMP = "bump featureView.version"


def definition(view: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a feature view (wire form) its version stands for; name and version excluded."""
    return {
        "label": dict(view.get("label") or {}),
        "features": [dict(f) for f in view.get("features") or []],
        "transformations": [dict(t) for t in view.get("transformations") or []],
    }


def definition_hash(view: Mapping[str, Any]) -> str:
    text = json.dumps(definition(view), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _group(ref: Mapping[str, Any]) -> str:
    return f"{ref.get('name')} v{ref.get('version')}"


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs from `old` to `new` (wire forms), one short phrase per difference."""
    a, b = definition(old), definition(new)
    out: list[str] = []
    if a["label"] != b["label"]:
        old_label, new_label = (f"{_group(x.get('featureGroup') or {})}.{x.get('column')}" for x in (a["label"], b["label"]))
        out.append(f"label {old_label} -> {new_label}")
    fa = {_group(f.get("featureGroup") or {}): list(f.get("columns") or []) for f in a["features"]}
    fb = {_group(f.get("featureGroup") or {}): list(f.get("columns") or []) for f in b["features"]}
    for g in sorted(set(fa) | set(fb)):
        if g not in fb:
            out.append(f"features: {g} removed")
        elif g not in fa:
            out.append(f"features: {g} added")
        elif fa[g] != fb[g]:
            added = [c for c in fb[g] if c not in fa[g]]
            removed = [c for c in fa[g] if c not in fb[g]]
            parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
            out.append(f"features of {g}: " + ("; ".join(parts) if parts else "columns reordered"))
    if [_group(f.get("featureGroup") or {}) for f in a["features"]] != [
        _group(f.get("featureGroup") or {}) for f in b["features"]
    ] and set(fa) == set(fb):
        out.append("features: feature groups reordered")
    ta = {t.get("column"): t.get("type") for t in a["transformations"]}
    tb = {t.get("column"): t.get("type") for t in b["transformations"]}
    out.extend(
        f"transformation of {col}: {ta.get(col) or 'none'} -> {tb.get(col) or 'none'}"
        for col in sorted(set(ta) | set(tb), key=str)
        if ta.get(col) != tb.get(col)
    )
    return out or ["definition differs"]


def redefinition_message(name: str, version: int, where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The refusal both sides give: what differs, where the other definition comes from, what to do."""
    return (
        f"feature view {name} v{version} is already defined differently ({where}): {'; '.join(changes(old, new))}. "
        f"A feature view version is immutable: {BUMP}"
    )
