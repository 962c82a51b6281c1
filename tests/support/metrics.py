"""Read an operator's /metrics the way Prometheus does (its text format, parsed by
prometheus_client's parser), for tests that assert series after real events."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# Every family the operator exports (operator/fti_operator/controller/metrics.py; the table
# in docs/operations.md). tests/unit/operator/test_metrics.py keeps the three in step.
OPERATOR_FAMILIES = (
    "fti_reconciles",
    "fti_reconcile_errors",
    "fti_reconcile_duration_seconds",
    "fti_feature_rows_ingested",
    "fti_feature_rows_rejected",
    "fti_feature_rows_quarantined",
    "fti_feature_runs",
    "fti_feature_group_last_success_timestamp_seconds",
    "fti_training_last_success_timestamp_seconds",
    "fti_model_metric",
    "fti_model_versions",
    "fti_served_model_version",
    "fti_served_feature_view_version",
    "fti_served_traffic_percent",
    "fti_operator_api_requests",
    "fti_rollbacks",
    "fti_feature_drift",
)


@dataclass(frozen=True)
class Scrape:
    families: frozenset[str]  # declared families (HELP/TYPE), with or without samples
    samples: tuple[tuple[str, dict[str, str], float], ...]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample `name` whose labels include `labels` (None when there is none)."""
        found = [v for n, lbl, v in self.samples if n == name and labels.items() <= lbl.items()]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples: give more labels"
        return found[0] if found else None

    def values(self, name: str, **labels: str) -> list[float]:
        return [v for n, lbl, v in self.samples if n == name and labels.items() <= lbl.items()]


def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    families = list(text_string_to_metric_families(text))
    return Scrape(
        frozenset(f.name for f in families),
        tuple((s.name, dict(s.labels), s.value) for f in families for s in f.samples),
    )
