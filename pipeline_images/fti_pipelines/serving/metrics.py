"""Prometheus metrics of the feature lookup, beside KServe's own request histograms.

They live in prometheus-client's default registry, which KServe's `/metrics` serves.
Every series carries the revision (model and feature-view versions) so a canary and
the serving revision can be told apart. Children are bound once per server
(`RevisionMetrics`), so the request path only calls `observe`/`inc`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_REVISION = ("model", "model_version", "feature_view", "feature_view_version")

LOOKUP_SECONDS = Histogram(
    "fti_feature_lookup_seconds",
    "Time to turn one request into feature vectors (validation + online store reads).",
    _REVISION,
    buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
)
MISSING_ENTITIES = Counter(
    "fti_missing_entities",
    "Entity keys with no row in the online store, by what happened (rejected or served with defaults).",
    _REVISION + ("feature_group", "action"),
)
FEATURE_AGE_SECONDS = Histogram(
    "fti_feature_age_seconds",
    "Age of the looked-up feature rows at serving time (now minus the row's event time).",
    _REVISION + ("feature_group",),
    buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400, float("inf")),
)
SERVING_READY = Gauge(
    "fti_serving_ready",
    "1 when this revision passed its load-time checks (skew guard, features materialized, verdict).",
    _REVISION,
)


class RevisionMetrics:
    """The metric children of one served revision."""

    def __init__(self, labels: dict[str, str], groups: list[str]):
        self.labels = labels
        self.lookup = LOOKUP_SECONDS.labels(**labels)
        self.age = {g: FEATURE_AGE_SECONDS.labels(**labels, feature_group=g) for g in groups}
        self.rejected = {g: MISSING_ENTITIES.labels(**labels, feature_group=g, action="rejected") for g in groups}
        self.defaulted = {g: MISSING_ENTITIES.labels(**labels, feature_group=g, action="defaults") for g in groups}
        self.ready = SERVING_READY.labels(**labels)
