"""The operator's Prometheus families: the module that defines them, the table of
docs/operations.md and the list the integration tests assert from /metrics
(support.metrics.OPERATOR_FAMILIES) name the same series."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from fti_operator.controller import metrics
from support.metrics import OPERATOR_FAMILIES

DOCS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def _defined() -> set[str]:
    return {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}


def _documented() -> set[str]:
    section = DOCS.read_text().split("## Metrics", 1)[1].split("The reference model server", 1)[0]
    return {re.sub(r"_total$", "", name) for name in re.findall(r"^\| `(fti_[a-z_]+)`", section, re.MULTILINE)}


def test_every_exported_family_is_documented_and_asserted():
    assert _defined() == set(OPERATOR_FAMILIES), _defined() ^ set(OPERATOR_FAMILIES)
    assert _documented() == set(OPERATOR_FAMILIES), _documented() ^ set(OPERATOR_FAMILIES)


def test_last_success_timestamps():
    registry_before = metrics.FEATURE_LAST_SUCCESS.labels("ns", "g", "1")._value.get()
    exporter = metrics.PrometheusMetrics()
    exporter.feature_run("ns", "g", 1, {"succeeded": False, "finishedAt": "2026-12-01T10:00:00Z"})
    assert metrics.FEATURE_LAST_SUCCESS.labels("ns", "g", "1")._value.get() == registry_before  # a failure is not a success
    exporter.feature_run("ns", "g", 1, {"succeeded": True, "finishedAt": "2026-12-01T10:00:00Z"})
    assert metrics.FEATURE_LAST_SUCCESS.labels("ns", "g", "1")._value.get() == 1796119200.0
    exporter.model_version("ns", "m", {"version": 1, "phase": "Rejected"})
    assert ("ns", "m") not in metrics.TRAINING_LAST_SUCCESS._metrics
    exporter.model_version("ns", "m", {"version": 2, "phase": "Validated"})
    assert metrics.TRAINING_LAST_SUCCESS.labels("ns", "m")._value.get() > 1796119200.0


RULES = Path(__file__).resolve().parents[3] / "examples" / "monitoring" / "prometheusrule.yaml"
# The reference model server's families (docs/operations.md, second table).
SERVER_FAMILIES = {"fti_feature_lookup_seconds", "fti_feature_age_seconds", "fti_missing_entities", "fti_serving_ready"}


def test_prometheus_rule_alerts_on_series_that_exist():
    import yaml

    rule = yaml.safe_load(RULES.read_text())
    assert rule["kind"] == "PrometheusRule"
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    for needed in ("FtiFeaturesStale", "FtiFeatureRunsFailing", "FtiTrainingRunsFailing", "FtiRollback"):
        assert needed in alerts, needed
    for name, expr in alerts.items():
        used = {re.sub(r"_(total|count|sum|bucket)$", "", m) for m in re.findall(r"\bfti_[a-z_]+", expr)}
        assert used, name
        unknown = used - set(OPERATOR_FAMILIES) - SERVER_FAMILIES
        assert not unknown, f"{name} uses series nobody exports: {unknown}"
    assert "fti_feature_group_last_success_timestamp_seconds" in alerts["FtiFeaturesStale"]
