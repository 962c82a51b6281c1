"""What admission cannot judge, the operator refuses before it creates anything: Ready=False with
reason InvalidSpec naming the field, one Warning Event, no Job or CronJob (docs/concepts.md,
"Validation"). Run through the local driver, which calls the same reconcilers as the controller."""

from __future__ import annotations

import pytest

from fti_operator.local.driver import LocalDriver
from support.manifest_corpus import invalid_cases

OPERATOR_CASES = [c for c in invalid_cases() if c.refused_by == "operator"]


def _ready(obj):
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=[c.id for c in OPERATOR_CASES])
def test_invalid_spec_is_a_condition_and_an_event_and_creates_nothing(case, tmp_path):
    driver = LocalDriver(tmp_path / "state", progress=lambda _m: None)
    try:
        driver.apply(case.doc)
        driver.settle()
        name = case.doc["metadata"]["name"]
        obj = driver.get(case.doc["kind"], "default", name)
        ready = _ready(obj)
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), ready
        assert case.field in ready["message"] and case.message.lower() in ready["message"].lower(), ready
        assert ready["observedGeneration"] == obj["metadata"]["generation"]
        for plural in ("jobs", "cronjobs"):
            assert driver.kube.list("batch/v1", plural, "default") == [], plural
        events = [e for e in driver.kube.list("v1", "events", "default") if e["reason"] == "InvalidSpec"]
        assert len(events) == 1 and events[0]["type"] == "Warning" and case.field in events[0]["message"], events

        # Reconciling again changes nothing and announces nothing new.
        driver.apply({**case.doc, "metadata": {**case.doc["metadata"], "labels": {"touched": "yes"}}})
        driver.settle()
        assert len([e for e in driver.kube.list("v1", "events", "default") if e["reason"] == "InvalidSpec"]) == 1
    finally:
        driver.stop()
