"""The controller's `Kube` (reconcile/kube.py): a thin JSON client over the Kubernetes REST API.

Reconcilers work on plain camelCase dicts (what the API server speaks and what the
renderers produce), so this skips the kubernetes client's model (de)serialisation and
uses its ApiClient only for configuration: auth (a token refresh hook included), TLS and
the connection pool. Requests go straight to that pool with orjson bodies: in a burst of
thousands of creates the client's generic serialisation was a measurable part of the
operator's CPU. Every call is counted by verb, which is how tests and benchmarks prove
that a no-change reconcile writes nothing.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from kubernetes import client as k8s, config as k8s_config

from ..reconcile.children import PLURALS
from ..reconcile.kube import FIELD_MANAGER, ApiError

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The API server's metadata-only representation of any object (what `kubectl get -o name` reads).
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def load_api_client(pool_size: int = 32) -> k8s.ApiClient:
    """In-cluster config when running in a pod, else KUBECONFIG / ~/.kube/config."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        # KUBECONFIG is read now, not at import time as the client's default does.
        k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration)
    # Reconciles run on the work queue's threads: a connection per worker avoids pool churn.
    configuration.connection_pool_maxsize = pool_size
    return k8s.ApiClient(configuration)


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


class KubeHttp:
    """get/list/create/apply/patch/delete on dict manifests; `calls` counts (HTTP verb, plural)."""

    def __init__(self, api_client: k8s.ApiClient | None = None, observe: Callable[[str, str], None] | None = None):
        self.api_client = api_client or load_api_client()
        self.calls: Counter[tuple[str, str]] = Counter()
        self._observe = observe  # also told of every call (the /metrics counter)
        self._lock = threading.Lock()
        self._timeout = urllib3.Timeout(total=60)

    # -- counting ---------------------------------------------------------------------------
    def writes(self) -> int:
        return sum(n for (verb, _), n in self.calls.items() if verb in WRITE_VERBS)

    def _request(
        self,
        method: str,
        path: str,
        plural: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        with self._lock:
            self.calls[(method, plural)] += 1
        if self._observe is not None:
            self._observe(method, plural)
        configuration = self.api_client.configuration
        headers = {"Accept": accept}
        # Called per request: the in-cluster token is re-read through the client's refresh hook.
        for auth in configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = orjson.dumps(body)
        url = configuration.host + path + (f"?{urlencode(query)}" if query else "")
        resp = self.api_client.rest_client.pool_manager.request(method, url, body=payload, headers=headers, timeout=self._timeout)
        data = resp.data
        if resp.status >= 400:
            raise ApiError(resp.status, resp.reason or "", data.decode(errors="replace") if data else "")
        return orjson.loads(data) if data else None

    # -- verbs -------------------------------------------------------------------------------
    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", f"{collection_path(api_version, plural, namespace)}/{name}", plural)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def get_metadata(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self._request(
                "GET", f"{collection_path(api_version, plural, namespace)}/{name}", plural, accept=PARTIAL_METADATA
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        out = self._request("GET", collection_path(api_version, plural, namespace), plural, query=query)
        return list(out.get("items") or [])

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        plural = PLURALS[(obj["apiVersion"], obj["kind"])]
        ns = obj["metadata"].get("namespace")
        return self._request("POST", collection_path(obj["apiVersion"], plural, ns), plural, body=dict(obj))

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply: one PATCH that creates or updates the fields in `obj`, owned by the
        field manager `fti-operator`; `force` takes over a field another manager set last (ours
        win on the fields we render, docs/architecture.md). JSON is valid YAML, so the body is
        the same orjson bytes as every other request."""
        plural = PLURALS[(obj["apiVersion"], obj["kind"])]
        meta = obj["metadata"]
        return self._request(
            "PATCH",
            f"{collection_path(obj['apiVersion'], plural, meta.get('namespace'))}/{meta['name']}",
            plural,
            body=dict(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = f"{collection_path(api_version, plural, namespace)}/{name}" + (f"/{subresource}" if subresource else "")
        return self._request(
            "PATCH",
            path,
            plural + (f"/{subresource}" if subresource else ""),
            body=dict(patch),
            content_type="application/merge-patch+json",
        )

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str, propagation: str = "Background") -> None:
        try:
            self._request(
                "DELETE",
                f"{collection_path(api_version, plural, namespace)}/{name}",
                plural,
                body={"propagationPolicy": propagation},
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
