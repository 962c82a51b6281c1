"""The one small interface through which reconcilers read and write Kubernetes objects.

Reconcilers never import a Kubernetes client. They get an object that satisfies `Kube`:
in a cluster the controller's HTTP client (`fti_operator.controller.kube_http`), under
`fti local` an in-memory API server (`fti_operator.local.memkube`). Both speak plain
camelCase dicts, both raise `ApiError` with the HTTP status the API server would answer,
and both implement the semantics the reconcilers depend on (docs/architecture.md):

- `apply` is server-side apply with the field manager `fti-operator`: one PATCH that
  creates or updates, owning only the fields in the object given. Fields other managers
  set (KServe's defaulting webhook, a user's `kubectl scale`) are left alone.
- `patch(..., subresource="status")` is a JSON merge patch of the status subresource; a
  `metadata.resourceVersion` in the patch makes it conditional (409 when stale).
- `generation` grows only on spec changes; status writes never bump it.
- owner references are kept; deleting an owner deletes what it controls (garbage collection).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

FIELD_MANAGER = "fti-operator"


class ApiError(Exception):
    """An API request that failed; `status` is the HTTP status code the API server answered."""

    def __init__(self, status: int, reason: str, body: str = ""):
        super().__init__(f"{status} {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def namespace_terminating(self) -> bool:
        """A create refused because the namespace is being deleted: permanent, not worth a retry."""
        return self.status == 403 and "NamespaceTerminating" in self.body


class Kube(Protocol):
    """Reads and writes of dict manifests. `plural` names the resource (`jobs`, `inferenceservices`)."""

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ...

    def get_metadata(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object's metadata only, or None when it does not exist: a PartialObjectMetadata
        (apiVersion meta.k8s.io/v1), without spec, status or a Secret's data. What an existence
        check reads (reconcile/store_access.py): no Secret value leaves the API server for it."""
        ...

    def list(
        self, api_version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects matching an equality-based selector (`a=b,c=d`)."""
        ...

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST; ApiError 409 when it exists. `metadata.generateName` is honoured."""
        ...

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply (field manager `fti-operator`, force): create or update the owned fields."""
        ...

    def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch (of the status subresource when `subresource="status"`)."""
        ...

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str, propagation: str = "Background") -> None:
        """Delete; a missing object is not an error."""
        ...
