"""Quarantined rows in FeaturePipeline status: DataQuarantined, Ready by maxRejectedFraction, the run's Event, the gauge."""

from __future__ import annotations

import copy

import pytest

from fti_operator.api import FeaturePipeline
from fti_operator.controller import metrics
from fti_operator.reconcile import quarantine
from fti_operator.reconcile.feature import compute_status
from fti_operator.reconcile.results import feature_run

from .fixtures_resources import FP

STATES = {2: ("Active", [])}
URI = "s3://fti/namespaces/fraud/quarantine/card_transactions/v2/fp-v2-b"
REJECTED = {
    "ok": True,
    "rowsRead": 10,
    "rowsWritten": 0,
    "rowsRejected": 10,
    "quarantineUri": URI,
    "message": "validation failed: between on 'amount': 2 of 10 rows failed (mostly=1.0)",
    "rejectedExamples": ["row 3: between on 'amount' (amount=-5.0)", "row 7: between on 'amount' (amount=9000.0)"],
}
LATE = {"ok": True, "rowsRead": 100, "rowsWritten": 98, "rowsRejected": 0, "rowsTooLate": 2, "lateQuarantineUri": URI + "-late"}


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def body(max_fraction: float | None = None, status: dict | None = None) -> dict:
    b = copy.deepcopy(FP)
    if max_fraction is not None:
        b["spec"].setdefault("validation", {})["maxRejectedFraction"] = max_fraction
    b["status"] = status or {"versions": [{"version": 2, "state": "Active"}]}
    FeaturePipeline.model_validate(b)  # a valid object: the field is in the API
    return b


def test_a_run_with_rejected_rows_sets_data_quarantined_and_ready_false_by_default():
    run = feature_run("fp-v2-b", True, REJECTED, "2026-12-01T10:00:00Z")
    assert run["rejectedExamples"] == REJECTED["rejectedExamples"] and run["rowsRead"] == 10
    c = conditions(compute_status(body(), STATES, {2: run}))
    assert c["Materialized"]["status"] == "True"  # the run succeeded: the rows are kept, not lost
    dq = c["DataQuarantined"]
    assert (dq["status"], dq["reason"]) == ("True", "RowsQuarantined")
    for needle in ("v2: 10 rows quarantined by fp-v2-b", URI, "between on 'amount'", "row 3:", "amount=-5.0"):
        assert needle in dq["message"], needle
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "DataQuarantined")
    assert "above maxRejectedFraction 0" in c["Ready"]["message"]


def test_late_rows_within_max_rejected_fraction_keep_ready_true_and_still_show():
    run = feature_run("fp-v2-b", True, LATE, None)
    c = conditions(compute_status(body(max_fraction=0.05), STATES, {2: run}))
    assert c["DataQuarantined"]["status"] == "True"
    assert "2 beyond allowedLateness (LateRow) at " + URI + "-late" in c["DataQuarantined"]["message"]
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("True", "Materialized")
    assert "2.0% quarantined, within maxRejectedFraction 0.05" in c["Ready"]["message"]
    c = conditions(compute_status(body(max_fraction=0.01), STATES, {2: run}))
    assert c["Ready"]["status"] == "False"


def test_a_clean_later_run_clears_it_and_recomputing_writes_nothing():
    first = compute_status(body(), STATES, {2: feature_run("fp-v2-b", True, REJECTED, None)})
    clean = feature_run("fp-v2-c", True, {"ok": True, "rowsRead": 5, "rowsWritten": 5, "rowsRejected": 0}, None)
    status = compute_status(body(status=first), STATES, {2: clean})
    c = conditions(status)
    assert (c["DataQuarantined"]["status"], c["DataQuarantined"]["reason"]) == ("False", "NoRowsQuarantined")
    assert c["Ready"]["status"] == "True"
    assert compute_status(body(status=status), STATES, {}) == status


@pytest.mark.parametrize(
    "run, expected",
    [
        (None, ("Unknown", "WaitingForFirstRun")),
        ({"job": "j", "succeeded": False, "message": "PipelineCrashed: oom"}, ("Unknown", "NoRunResult")),
        ({"job": "j", "succeeded": False, "rowsRejected": 4, "message": "ValidationFailed"}, ("True", "RowsQuarantined")),
    ],
)
def test_condition_without_counts(run, expected):
    c = quarantine.data_quarantined(2, run)
    assert (c["status"], c["reason"]) == expected


def test_the_run_event_is_a_warning_only_when_rows_were_quarantined():
    reason, message, kind = quarantine.run_event("card_transactions", 2, feature_run("fp-v2-b", True, LATE, None))
    assert (reason, kind) == ("DataQuarantined", "Warning")
    assert "card_transactions v2: 2 rows quarantined by fp-v2-b" in message and "wrote 98 rows" in message
    clean = feature_run("fp-v2-c", True, {"ok": True, "rowsWritten": 5, "rowsRejected": 0}, None)
    assert quarantine.run_event("card_transactions", 2, clean)[::2] == ("RunSucceeded", "Normal")
    failed = feature_run("fp-v2-d", False, {"ok": False, "error": "boom"}, None)
    assert quarantine.run_event("card_transactions", 2, failed)[::2] == ("RunFailed", "Warning")


def test_the_gauge_holds_the_last_runs_quarantined_rows():
    exporter = metrics.PrometheusMetrics()
    exporter.feature_run("ns-q", "g", 3, feature_run("j1", True, LATE | {"rowsRejected": 3}, None))
    assert metrics.ROWS_QUARANTINED.labels("ns-q", "g", "3")._value.get() == 5
    exporter.feature_run("ns-q", "g", 3, feature_run("j2", True, {"ok": True, "rowsWritten": 1, "rowsRejected": 0}, None))
    assert metrics.ROWS_QUARANTINED.labels("ns-q", "g", "3")._value.get() == 0


def test_max_rejected_fraction_is_bounded_at_admission():
    schema = FeaturePipeline.model_json_schema(by_alias=True)
    field = schema["$defs"]["ValidationSpec"]["properties"]["maxRejectedFraction"]
    options = field.get("anyOf", [field])
    number = next(o for o in options if o.get("type") == "number")
    assert (number["minimum"], number["maximum"]) == (0, 1)
