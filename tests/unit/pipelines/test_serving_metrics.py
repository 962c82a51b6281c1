"""Lookup metrics: the buffered histograms expose what prometheus-client's Histogram would.

The lookup observes into list-backed series folded at scrape time (serving/metrics.py);
these tests hold them to the same text exposition as a prometheus-client Histogram fed
the same values, to exactly N observations after N lookups, and to bounded memory.
"""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fti_pipelines.serving import metrics as m

VALUES = [0.0, 0.00001, 0.0000100001, 0.00003, 0.0001, 0.0007, 0.025, 0.9, 1.0, 1.5, 1e9, float("inf"), float("nan")]


def samples(text: str, name: str, **labels: str) -> dict[tuple, float]:
    """{(sample name, le or None): value} of one series in an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(name) and all(s.labels.get(k) == v for k, v in labels.items()):
                out[(s.name, s.labels.get("le"))] = s.value
    return out


def same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN sums compare equal


def test_buffered_histogram_exposes_what_prometheus_client_would():
    labels = {"model": "equiv", "model_version": "1", "feature_view": "v", "feature_view_version": "1"}
    reference_registry = CollectorRegistry()
    reference = Histogram(
        m.LOOKUP_NAME, m.LOOKUP_HELP, list(labels), buckets=m.LOOKUP_BUCKETS, registry=reference_registry
    ).labels(**labels)
    ours = m.LOOKUP_SECONDS.labels(**labels)
    for v in VALUES * 3:
        reference.observe(v)
        ours.observe(v)
    expected = samples(generate_latest(reference_registry).decode(), m.LOOKUP_NAME, **labels)
    got = samples(generate_latest(REGISTRY).decode(), m.LOOKUP_NAME, **labels)
    assert set(got) == set(expected)
    for key, value in expected.items():
        if not key[0].endswith("_created"):
            assert same(got[key], value), (key, got[key], value)
    assert got[(m.LOOKUP_NAME + "_bucket", "1e-05")] == 6  # 0 and the bound itself: `le` is inclusive
    assert got[(m.LOOKUP_NAME + "_count", None)] == 36  # NaN is in no bucket, as prometheus-client does


def test_same_labels_give_the_same_series_and_bad_labels_are_refused():
    labels = {"model": "same", "model_version": "1", "feature_view": "v", "feature_view_version": "1"}
    assert m.LOOKUP_SECONDS.labels(**labels) is m.LOOKUP_SECONDS.labels(**labels)
    with pytest.raises(ValueError, match="expected labels"):
        m.LOOKUP_SECONDS.labels(model="x")


def test_no_observation_is_lost_while_scrapes_fold_concurrently():
    series = m.BufferedHistogram(m.AGE_BUCKETS)
    per_thread, threads = 20_000, 4

    def observe():
        for i in range(per_thread):
            series.observe(float(i % 100))

    workers = [threading.Thread(target=observe) for _ in range(threads)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        series.fold()
    for w in workers:
        w.join()
    buckets, total = series.snapshot()
    assert buckets[-1] == ("+Inf", float(per_thread * threads))
    assert total == threads * (per_thread // 100) * sum(range(100))


def test_settle_bounds_what_a_series_keeps_pending():
    metrics = m.RevisionMetrics(
        {"model": "settle", "model_version": "1", "feature_view": "v", "feature_view_version": "1"}, ["g@v1"]
    )
    for _ in range(m.PENDING_CAP):
        metrics.age["g@v1"].observe(5.0)
        metrics.lookup.observe(0.001)
    metrics.settle()
    assert metrics.lookup.pending == [] and metrics.age["g@v1"].pending == []
    assert metrics.age["g@v1"].snapshot()[0][1] == ("10.0", float(m.PENDING_CAP))
