"""Feature view versions are registered with their definition, and are immutable.

The first training run of a feature view version writes `feature_views/<name>/v<version>.json`
(in the namespace's store: docs/store-layout.md) with the definition and its hash, created
exclusively (`ArtifactStore.create_exclusive`), so of two racing runs one registers and the
other compares. A later run of the same version with a different definition (label, feature
columns per pinned feature-group version, transformations) is refused before anything is
trained or written, naming what differs: two models "on feature view v1" always read the same
columns the same way. The operator refuses the same change before starting a Job
(reconcile/training.py); both word it through fti_operator.api.feature_views.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fti_operator.api.feature_views import changes, definition, definition_hash, redefinition_message

from ..contract import PipelineError
from ..store.artifacts import ArtifactStore

ROOT = "feature_views"


def register_definition(store: ArtifactStore, view: Mapping[str, Any]) -> str:
    """Register `view` (wire form) under its version, or check it matches the registered one;
    returns the definition hash. PipelineError `FeatureViewRedefined` when it does not match."""
    name, version = str(view["name"]), int(view["version"])
    digest = definition_hash(view)
    parts = (ROOT, name, f"v{version}.json")
    record = {"name": name, "version": version, "hash": digest, "definition": definition(view)}
    if store.create_exclusive(*parts, json.dumps(record, indent=2, sort_keys=True).encode()):
        return digest
    registered = store.read_json(*parts)
    if registered.get("hash") != digest:
        old = registered.get("definition") or {}
        raise PipelineError(
            "FeatureViewRedefined",
            redefinition_message(name, version, f"registered in {store.url(*parts)}", old, view),
            differences=changes(old, view),
        )
    return digest
