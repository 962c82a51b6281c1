"""Prometheus metrics on /metrics (prometheus-client): `reconcile.context.Metrics` for the controller.

No Pushgateway: batch pipelines report through their termination message, the owner's
reconcile records the run in status once and reports it here, labelled by feature-group /
model version; what serves is reported after every InferenceService reconcile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("fti_reconciles_total", "Reconciles by kind and outcome.", ["kind", "outcome"])
ERRORS = Counter("fti_reconcile_errors_total", "Reconciles that raised, by kind.", ["kind"])
DURATION = Histogram(
    "fti_reconcile_duration_seconds",
    "Reconcile duration by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROWS_INGESTED = Counter(
    "fti_feature_rows_ingested_total", "Rows written by feature pipeline runs.", ["namespace", "feature_group", "version"]
)
ROWS_REJECTED = Counter(
    "fti_feature_rows_rejected_total",
    "Rows rejected (quarantined) by feature pipeline runs.",
    ["namespace", "feature_group", "version"],
)
# What DataQuarantined says, for alerting (docs/data-quality.md): set from each recorded run of a
# version, so a clean run brings it back to 0.
ROWS_QUARANTINED = Gauge(
    "fti_feature_rows_quarantined",
    "Rows the last run of a feature-group version quarantined (failed validation or beyond allowedLateness).",
    ["namespace", "feature_group", "version"],
)
FEATURE_RUNS = Counter(
    "fti_feature_runs_total", "Finished feature pipeline runs.", ["namespace", "feature_group", "version", "succeeded"]
)
# For alerting on staleness: `time() - fti_feature_group_last_success_timestamp_seconds` beyond
# the schedule means the features are stale (examples/monitoring/prometheusrule.yaml). Set
# when a successful run is recorded, so an operator restart starts without the series until
# the next run; the rule uses absent() for that case.
FEATURE_LAST_SUCCESS = Gauge(
    "fti_feature_group_last_success_timestamp_seconds",
    "Unix time the last successful run of a feature-group version finished.",
    ["namespace", "feature_group", "version"],
)
TRAINING_LAST_SUCCESS = Gauge(
    "fti_training_last_success_timestamp_seconds",
    "Unix time a training run of a model last produced a Validated model version.",
    ["namespace", "model"],
)
MODEL_METRIC = Gauge("fti_model_metric", "Evaluation metric of a model version.", ["namespace", "model", "version", "metric"])
MODEL_VERSIONS = Counter("fti_model_versions_total", "Finished training runs by phase.", ["namespace", "model", "phase"])
SERVED = Gauge(
    "fti_served_model_version",
    "Model version served per InferenceService and role (serving|canary).",
    ["namespace", "inferenceservice", "role"],
)
SERVED_FV = Gauge(
    "fti_served_feature_view_version",
    "Feature-view version served per InferenceService and role.",
    ["namespace", "inferenceservice", "role"],
)
SERVED_TRAFFIC = Gauge(
    "fti_served_traffic_percent", "Traffic share per InferenceService and role.", ["namespace", "inferenceservice", "role"]
)
API_REQUESTS = Counter("fti_operator_api_requests", "API requests made by the operator's reconciles.", ["verb", "resource"])
ROLLBACKS = Counter("fti_rollbacks_total", "Automatic and requested rollbacks, by reason.", ["reason"])
# Set when a monitoring report is recorded (docs/monitoring.md): the top features of each served
# revision by drift score; a new report replaces the InferenceService's series.
FEATURE_DRIFT = Gauge(
    "fti_feature_drift",
    "Drift score of a feature of a served revision in the last monitoring report.",
    ["namespace", "inferenceservice", "feature", "method", "model_version", "feature_view_version"],
)


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


class PrometheusMetrics:
    """What reconcilers report (reconcile.context.Metrics), as process-wide Prometheus series.

    Reconcilers call `feature_run`/`model_version` only with the status write that records a
    run, so a run is counted once, however often its Job's events are seen again."""

    def __init__(self) -> None:
        self._drift_series: dict[tuple[str, str], set[tuple[str, ...]]] = {}

    def feature_run(self, namespace: str, group: str, version: int, run: Mapping[str, Any]) -> None:
        labels = (namespace, group, str(version))
        ROWS_INGESTED.labels(*labels).inc(int(run.get("rowsWritten") or 0))
        ROWS_REJECTED.labels(*labels).inc(int(run.get("rowsRejected") or 0))
        FEATURE_RUNS.labels(*labels, str(bool(run.get("succeeded"))).lower()).inc()
        ROWS_QUARANTINED.labels(*labels).set(int(run.get("rowsRejected") or 0) + int(run.get("rowsTooLate") or 0))
        if run.get("succeeded"):
            FEATURE_LAST_SUCCESS.labels(*labels).set(_timestamp(run.get("finishedAt")))

    def model_version(self, namespace: str, model: str, entry: Mapping[str, Any]) -> None:
        MODEL_VERSIONS.labels(namespace, model, entry["phase"]).inc()
        if entry["phase"] == "Validated":
            TRAINING_LAST_SUCCESS.labels(namespace, model).set(time.time())
        for metric, value in (entry.get("metrics") or {}).items():
            MODEL_METRIC.labels(namespace, model, str(entry["version"]), metric).set(value)

    def served(self, namespace: str, name: str, stable: Mapping[str, Any] | None, canary: Mapping[str, Any] | None) -> None:
        for role, rev in (("serving", stable), ("canary", canary)):
            if rev and rev.get("model") is not None:
                SERVED.labels(namespace, name, role).set(rev["model"])
                if rev.get("featureView") is not None:
                    SERVED_FV.labels(namespace, name, role).set(rev["featureView"])
                SERVED_TRAFFIC.labels(namespace, name, role).set(rev.get("traffic") or 0)
            else:
                for g in (SERVED, SERVED_FV, SERVED_TRAFFIC):
                    with suppress(KeyError):  # never set for this role
                        g.remove(namespace, name, role)

    def rollback(self, namespace: str, name: str, reason: str) -> None:
        ROLLBACKS.labels(reason).inc()

    def drift(self, namespace: str, name: str, revisions: list[Mapping[str, Any]]) -> None:
        series: set[tuple[str, ...]] = set()
        for rev in revisions:
            for f in rev.get("features") or []:
                labels = (
                    namespace,
                    name,
                    str(f["name"]),
                    str(f.get("method") or ""),
                    str(rev.get("model")),
                    str(rev.get("featureView")),
                )
                FEATURE_DRIFT.labels(*labels).set(float(f["score"]))
                series.add(labels)
        for stale in self._drift_series.get((namespace, name), set()) - series:
            with suppress(KeyError):
                FEATURE_DRIFT.remove(*stale)
        self._drift_series[(namespace, name)] = series


def _timestamp(iso: Any) -> float:
    """Unix time of an RFC 3339 status time; now when the run did not say."""
    try:
        return datetime.fromisoformat(str(iso)).timestamp()  # 3.11 reads the trailing Z
    except ValueError:
        return time.time()


def count_api_call(verb: str, resource: str) -> None:
    """fti_operator_api_requests_total{verb,resource}: the operator's own API calls (writes at rest show churn)."""
    API_REQUESTS.labels(verb, resource).inc()


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> None:
    """Expose /metrics on `port` (0: not served)."""
    if port:
        start_http_server(port, registry=registry)
