"""The run bookkeeping of TrainingPipelines (status.lastRun, read back from Jobs after a crash),
and the pure helpers that keep a reconcile from writing or reading what it need not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fti_operator.api import TrainingPipeline
from fti_operator.config import OperatorConfig
from fti_operator.reconcile.training import (
    INTENT_ANNOTATION,
    compute_status,
    intent_from_job,
    intent_to_status,
    last_intent,
    run_trigger,
)
from fti_operator.render import training as render_training

from .fixtures_resources import TP

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TPM = TrainingPipeline.model_validate(TP)
HASH = render_training.training_hash(TPM)


def intent(version, **over):
    return {"version": version, "hash": HASH, "token": None, "at": "2026-11-27T11:00:00Z", "trigger": "Created", **over}


def job_for(version, token=None, trigger="RunNow"):
    job = render_training.render(TPM, version, OperatorConfig(), trigger=trigger, token=token)
    job["metadata"]["creationTimestamp"] = "2026-11-27T11:30:00Z"
    return job


def test_last_run_in_status_round_trips_without_churn():
    status = compute_status(TP, TPM, {1: "fraud-model-v1"}, intent(1), {})
    assert status["lastRun"] == {
        "modelVersion": 1,
        "trigger": "Created",
        "trainingHash": HASH,
        "startedAt": "2026-11-27T11:00:00Z",
        "job": "fraud-model-v1",
    }  # no token: no null to merge
    again = last_intent(status, {}, [])
    assert run_trigger(TPM, again, None, NOW) is None
    # Recomputed from its own status, the status is the same: a level-based reconcile writes nothing.
    assert compute_status({**TP, "status": status}, TPM, {1: "fraud-model-v1"}, again, {}) == status


def test_job_ahead_of_status_is_the_last_run():
    """Crash after the Job's create, before the status patch: the Job tells which run it is."""
    status = {"lastRun": intent_to_status(intent(1), "fraud-model-v1")}
    found = last_intent(status, {}, [job_for(1, trigger="Created"), job_for(2, token="now-1")])
    assert found["version"] == 2 and found["token"] == "now-1" and found["hash"] == HASH
    assert found["at"] == "2026-11-27T11:30:00Z"
    # Same token, same spec: no third run; a new token would be one.
    assert run_trigger(TPM, found, "now-1", NOW) is None
    assert run_trigger(TPM, found, "now-2", NOW) == "RunNow"


def test_status_wins_over_older_jobs_and_legacy_annotation_is_read():
    status = {"lastRun": intent_to_status(intent(3, token="t3", trigger="RunNow"), "fraud-model-v3")}
    assert last_intent(status, {}, [job_for(1), job_for(2)])["version"] == 3
    legacy = {INTENT_ANNOTATION: json.dumps(intent(4, trigger="SpecChanged"))}
    assert last_intent(status, legacy, [])["version"] == 4
    assert last_intent(None, legacy, [])["trigger"] == "SpecChanged"
    assert last_intent(None, {}, []) is None
    assert intent_from_job({"metadata": {"labels": {}}}) is None
