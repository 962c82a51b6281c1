"""Tenancy: every artifact of a namespace lives under its own prefix (docs/store-layout.md).

The operator and `fti local` give every pipeline the Kubernetes namespace of the resource it
runs for (FTI_NAMESPACE). The artifact store a pipeline works in is the root URI plus
`namespaces/<namespace>/`: feature groups, quarantined batches, training datasets, feature
views and models of two namespaces never share a path, whatever their names. The online store
is scoped the same way (store/online/tenancy.py).

A store written before namespaces has `features/`, `models/`, ... directly under the root.
Reading past them would silently start every namespace empty (and leave the old data
unreachable), so a pipeline refuses such a root with `UnscopedStoreLayout` until the one-time
move that docs/store-layout.md describes.
"""

from __future__ import annotations

import re
from typing import Any

from ..contract import PipelineContext, PipelineError
from .artifacts import ArtifactStore

NAMESPACES = "namespaces"
PREDICTIONS = "predictions"
# The top-level directories of the layout before namespaces (all now under namespaces/<ns>/).
UNSCOPED_ROOTS = ("features", "quarantine", "training_datasets", "feature_views", "models")
# A Kubernetes namespace name (RFC 1123 label): no '/', '.' or '_', so it cannot leave its prefix.
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_namespace(namespace: str) -> str:
    if not NAMESPACE.match(namespace or ""):
        raise PipelineError(
            "InvalidNamespace", f"namespace {namespace!r} is not a Kubernetes namespace name ({NAMESPACE.pattern})"
        )
    return namespace


def namespace_store(uri: str, namespace: str, storage_options: dict[str, Any] | None = None) -> ArtifactStore:
    """The artifact store of one namespace: `<uri>/namespaces/<namespace>/`.

    Refuses (PipelineError `UnscopedStoreLayout`) a root that still holds the layout from
    before namespaces, naming the directories to move.
    """
    check_namespace(namespace)
    root = ArtifactStore(uri, storage_options)
    unscoped = sorted(set(root.list()) & set(UNSCOPED_ROOTS))
    if unscoped:
        listed = ", ".join(f"{d}/" for d in unscoped)
        raise PipelineError(
            "UnscopedStoreLayout",
            f"artifact store {root.uri} has {listed} at its root: the layout from before namespaces. "
            f"Move them once under {NAMESPACES}/<namespace>/ (docs/store-layout.md, 'Stores from before namespaces'); "
            "they are not read from the old place",
            directories=unscoped,
        )
    return ArtifactStore(root.url(NAMESPACES, namespace), storage_options)


def artifact_store(ctx: PipelineContext) -> ArtifactStore:
    """The artifact store of the run's namespace (what every pipeline reads and writes)."""
    return namespace_store(ctx.artifact_store, ctx.namespace)


def predictions_dir(root: str, namespace: str, inference_service: str) -> str:
    """URI of an InferenceService's prediction log: `<root>/namespaces/<ns>/predictions/<name>`.

    The model server and batch inference write below it, monitoring reads it
    (store/prediction_log.py has the layout under it; docs/store-layout.md).
    """
    check_namespace(namespace)
    return ArtifactStore(root).url(NAMESPACES, namespace, PREDICTIONS, inference_service)
