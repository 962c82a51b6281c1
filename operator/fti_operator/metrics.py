"""Prometheus metrics on /metrics (prometheus-client), read from status and termination messages.

No Pushgateway: batch pipelines report through their termination message, the operator
reads it and exposes the numbers here, labelled by feature-group / model version.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily

RECONCILES = Counter("fti_reconciles_total", "Reconciles by kind and outcome.", ["kind", "outcome"])
ERRORS = Counter("fti_reconcile_errors_total", "Reconciles that raised, by kind.", ["kind"])
DURATION = Histogram("fti_reconcile_duration_seconds", "Reconcile duration by kind.", ["kind"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ROWS_INGESTED = Counter("fti_feature_rows_ingested_total", "Rows written by feature pipeline runs.",
                        ["namespace", "feature_group", "version"])
ROWS_REJECTED = Counter("fti_feature_rows_rejected_total", "Rows rejected (quarantined) by feature pipeline runs.",
                        ["namespace", "feature_group", "version"])
FEATURE_RUNS = Counter("fti_feature_runs_total", "Finished feature pipeline runs.", ["namespace", "feature_group", "version", "succeeded"])
MODEL_METRIC = Gauge("fti_model_metric", "Evaluation metric of a model version.", ["namespace", "model", "version", "metric"])
MODEL_VERSIONS = Counter("fti_model_versions_total", "Finished training runs by phase.", ["namespace", "model", "phase"])
SERVED = Gauge("fti_served_model_version", "Model version served per InferenceService and role (serving|canary).",
               ["namespace", "inferenceservice", "role"])
SERVED_FV = Gauge("fti_served_feature_view_version", "Feature-view version served per InferenceService and role.",
                  ["namespace", "inferenceservice", "role"])
SERVED_TRAFFIC = Gauge("fti_served_traffic_percent", "Traffic share per InferenceService and role.", ["namespace", "inferenceservice", "role"])

_seen_jobs: OrderedDict[str, None] = OrderedDict()
_seen_lock = threading.Lock()
_SEEN_MAX = 20_000


def first_time(job_uid: str) -> bool:
    """Count each finished Job once, though its events are seen again on every restart/resync."""
    with _seen_lock:
        if job_uid in _seen_jobs:
            return False
        _seen_jobs[job_uid] = None
        if len(_seen_jobs) > _SEEN_MAX:
            _seen_jobs.popitem(last=False)
        return True


@contextmanager
def reconcile_timer(kind: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(kind).inc()
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - start)


def record_feature_run(namespace: str, group: str, version: int, run: Mapping[str, Any]) -> None:
    labels = (namespace, group, str(version))
    ROWS_INGESTED.labels(*labels).inc(int(run.get("rowsWritten") or 0))
    ROWS_REJECTED.labels(*labels).inc(int(run.get("rowsRejected") or 0))
    FEATURE_RUNS.labels(*labels, str(bool(run.get("succeeded"))).lower()).inc()


def record_model_version(namespace: str, model: str, entry: Mapping[str, Any]) -> None:
    MODEL_VERSIONS.labels(namespace, model, entry["phase"]).inc()
    for metric, value in (entry.get("metrics") or {}).items():
        MODEL_METRIC.labels(namespace, model, str(entry["version"]), metric).set(value)


def record_served(namespace: str, name: str, serving: Mapping[str, Any] | None, canary: Mapping[str, Any] | None) -> None:
    for role, rev in (("serving", serving), ("canary", canary)):
        if rev:
            SERVED.labels(namespace, name, role).set(rev["model"])
            SERVED_FV.labels(namespace, name, role).set(rev["featureView"])
            SERVED_TRAFFIC.labels(namespace, name, role).set(rev.get("traffic") or 0)
        else:
            for g in (SERVED, SERVED_FV, SERVED_TRAFFIC):
                with contextlib.suppress(KeyError):
                    g.remove(namespace, name, role)


class ApiCallCollector:
    """fti_operator_api_requests_total{verb,resource}: the operator's own API calls (writes show idle churn)."""

    def __init__(self, kube: Any):
        self.kube = kube

    def collect(self):
        family = CounterMetricFamily("fti_operator_api_requests", "API requests made by the operator's handlers.",
                                     labels=["verb", "resource"])
        for (verb, resource), n in sorted(self.kube.calls.items()):
            family.add_metric([verb, resource], n)
        yield family


_api_collector: ApiCallCollector | None = None


def serve(port: int, kube: Any = None, registry: CollectorRegistry = REGISTRY) -> None:
    """Expose /metrics on `port` (0: only register); the API-call counter follows the latest client."""
    global _api_collector  # noqa: PLW0603 - one collector per process registry, created on first use
    if kube is not None:
        if _api_collector is None:
            _api_collector = ApiCallCollector(kube)
            registry.register(_api_collector)
        _api_collector.kube = kube
    if port:
        start_http_server(port, registry=registry)
