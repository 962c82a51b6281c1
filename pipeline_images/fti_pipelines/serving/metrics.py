"""Prometheus metrics of the feature lookup, beside KServe's own request histograms.

They live in prometheus-client's default registry, which KServe's `/metrics` serves.
Every series carries the revision (model and feature-view versions) so a canary and
the serving revision can be told apart. Children are bound once per server
(`RevisionMetrics`), so the request path only calls `observe`/`inc`.

The two histograms (lookup latency, feature age) are observed once per entity and
feature group, so their cost is part of the lookup's latency budget: prometheus-client's
`Histogram.observe` (a lock, a Python loop over the buckets, two locked increments) costs
a noticeable share of a whole lookup. Here `observe` is a bare `list.append` and the
values are binned by numpy when /metrics is scraped (a custom collector in the same
registry, same names, labels and buckets as a prometheus-client Histogram). The rare
events (missing entities, readiness) stay plain prometheus-client Counter and Gauge.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

_REVISION = ("model", "model_version", "feature_view", "feature_view_version")

LOOKUP_NAME = "fti_feature_lookup_seconds"
LOOKUP_HELP = "Time to turn one request into feature vectors (validation + online store reads)."
LOOKUP_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
AGE_NAME = "fti_feature_age_seconds"
AGE_HELP = "Age of the looked-up feature rows at serving time (now minus the row's event time)."
AGE_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400)

MISSING_ENTITIES = Counter(
    "fti_missing_entities",
    "Entity keys with no row in the online store, by what happened (rejected or served with defaults).",
    (*_REVISION, "feature_group", "action"),
)
SERVING_READY = Gauge(
    "fti_serving_ready",
    "1 when this revision passed its load-time checks (skew guard, features materialized, verdict).",
    _REVISION,
)
# The prediction log (serving/prediction_log.py): rows written, and rows lost with the reason
# (queue_full: the request path never waits; write_failed: the store refused them for too long).
PREDICTION_LOG_ROWS = Counter(
    "fti_prediction_log_rows_written",
    "Prediction-log rows written to the artifact store.",
    _REVISION,
)
PREDICTION_LOG_DROPPED = Counter(
    "fti_prediction_log_dropped",
    "Prediction-log rows dropped instead of written, by reason (queue_full, write_failed).",
    (*_REVISION, "reason"),
)

PENDING_CAP = 4096  # values a series buffers before it is folded without waiting for a scrape


class BufferedHistogram:
    """One labelled histogram series: `observe` appends, `fold` bins the pending values.

    Lock-free for observers: `list.append` is atomic under the GIL. `fold` takes the
    first n pending values and deletes exactly those (`del pending[:n]`, also atomic),
    so a value appended while it runs stays pending for the next fold — none is lost.
    """

    def __init__(self, buckets: Iterable[float]):
        self.bounds = np.asarray([*buckets, math.inf], dtype=np.float64)
        self.counts = np.zeros(len(self.bounds), dtype=np.int64)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()
        self.pending: list[float] = []
        self.observe = self.pending.append
        self._lock = threading.Lock()

    def fold(self) -> None:
        with self._lock:
            pending = self.pending
            n = len(pending)
            if not n:
                return
            values = np.array(pending[:n], dtype=np.float64)
            del pending[:n]
            # side="left": a value equal to a bound counts in that bucket (Prometheus `le`).
            # NaN sorts past +Inf: like prometheus-client, it is in no bucket but in the sum.
            index = np.searchsorted(self.bounds, values, side="left")
            self.counts += np.bincount(index, minlength=len(self.bounds) + 1)[: len(self.bounds)]
            self.sum += float(values.sum())

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """(cumulative (le, count) buckets ending with +Inf, sum) after folding what is pending."""
        self.fold()
        with self._lock:
            cumulative = np.cumsum(self.counts).tolist()
            total = self.sum
        return [(floatToGoString(b), float(c)) for b, c in zip(self.bounds.tolist(), cumulative, strict=True)], total


class _HistogramCollector:
    """The buffered histograms' families, for the registry; one per metric name."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]):
        self.name, self.documentation, self.labelnames, self.buckets = name, documentation, labelnames, buckets
        self._series: dict[tuple[str, ...], BufferedHistogram] = {}
        self._lock = threading.Lock()

    def labels(self, **labels: str) -> BufferedHistogram:
        """The series of these label values (the same object on every call, like prometheus-client)."""
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(labels)}")
        key = tuple(str(labels[n]) for n in self.labelnames)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = BufferedHistogram(self.buckets)
        return series

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = list(self._series.items())
        for values, histogram in series:
            buckets, total = histogram.snapshot()
            family.add_metric(values, buckets, total)
            family.add_sample(self.name + "_created", dict(zip(self.labelnames, values, strict=True)), histogram.created)
        return [family]


LOOKUP_SECONDS = _HistogramCollector(LOOKUP_NAME, LOOKUP_HELP, _REVISION, LOOKUP_BUCKETS)
FEATURE_AGE_SECONDS = _HistogramCollector(AGE_NAME, AGE_HELP, (*_REVISION, "feature_group"), AGE_BUCKETS)
REGISTRY.register(LOOKUP_SECONDS)
REGISTRY.register(FEATURE_AGE_SECONDS)


class RevisionMetrics:
    """The metric children of one served revision."""

    def __init__(self, labels: Mapping[str, str], groups: list[str]):
        self.labels = dict(labels)
        self.lookup = LOOKUP_SECONDS.labels(**labels)
        self.age = {g: FEATURE_AGE_SECONDS.labels(**labels, feature_group=g) for g in groups}
        self.rejected = {g: MISSING_ENTITIES.labels(**labels, feature_group=g, action="rejected") for g in groups}
        self.defaulted = {g: MISSING_ENTITIES.labels(**labels, feature_group=g, action="defaults") for g in groups}
        self.ready = SERVING_READY.labels(**labels)
        self._buffered = (self.lookup, *self.age.values())

    def settle(self) -> None:
        """Fold any series holding PENDING_CAP values, so memory stays bounded without scrapes."""
        for histogram in self._buffered:
            if len(histogram.pending) >= PENDING_CAP:
                histogram.fold()
