"""Pure parts of the reconcilers: result parsing, conditions, run triggers, child comparison, config."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fti_operator.api import TrainingPipeline
from fti_operator.api.feature_pipeline import FeaturePipelineStatus
from fti_operator.config import ConfigError, OperatorConfig
from fti_operator.reconcile.children import is_subset, up_to_date, with_hash
from fti_operator.reconcile.conditions import merge_conditions
from fti_operator.reconcile.feature import compute_status
from fti_operator.reconcile.results import feature_run, job_finished, model_version_entry, termination_result
from fti_operator.reconcile.training import run_trigger
from fti_operator.render import training as render_training
from fti_operator.versions import feature_availability as availability

from .fixtures_resources import FP, TP, variant


def pod(message, finished="2026-11-27T10:00:00Z"):
    return {"status": {"containerStatuses": [{"state": {"terminated": {"message": message, "finishedAt": finished}}}]}}


def test_termination_result_json_and_crash():
    assert termination_result([pod('{"ok":true,"rowsWritten":5}')]) == {"ok": True, "rowsWritten": 5}
    crashed = termination_result([pod("Traceback...\nKeyError: 'x'")])
    assert crashed["ok"] is False and crashed["reason"] == "PipelineCrashed" and "KeyError" in crashed["error"]
    assert termination_result([{"status": {}}]) is None
    # the newest pod wins (a retried Job)
    assert termination_result([pod('{"n":1}', "2026-11-27T10:00:00Z"), pod('{"n":2}', "2026-11-27T11:00:00Z")]) == {"n": 2}


@pytest.mark.parametrize(
    "conditions,expected",
    [
        ([], None),
        ([{"type": "Complete", "status": "True"}], True),
        ([{"type": "Failed", "status": "True"}], False),
        ([{"type": "Suspended", "status": "True"}], None),
    ],
)
def test_job_finished(conditions, expected):
    assert job_finished({"status": {"conditions": conditions}}) is expected


def test_feature_run_from_result():
    run = feature_run(
        "j1",
        True,
        {"ok": True, "rowsWritten": 10, "rowsRejected": 2, "watermark": "w", "finishedAt": "2026-11-27T10:00:00Z"},
        None,
    )
    assert run == {
        "job": "j1",
        "succeeded": True,
        "rowsWritten": 10,
        "rowsRejected": 2,
        "watermark": "w",
        "finishedAt": "2026-11-27T10:00:00Z",
    }
    failed = feature_run("j2", False, {"ok": False, "reason": "SourceMissing", "error": "source.uri: no files"}, "t")
    assert failed["succeeded"] is False and failed["message"] == "SourceMissing: source.uri: no files"


@pytest.mark.parametrize(
    "succeeded,result,phase",
    [
        (None, None, "Training"),
        (True, {"ok": True, "verdict": "Validated", "metrics": {"roc_auc": 0.9}}, "Validated"),
        (False, {"ok": False, "verdict": "Rejected", "reasons": ["roc_auc 0.6 < 0.85"]}, "Rejected"),
        (False, {"ok": False, "reason": "PipelineCrashed", "error": "boom"}, "Failed"),
        (False, None, "Failed"),
    ],
)
def test_model_version_phase(succeeded, result, phase):
    entry = model_version_entry(3, "tp-v3", succeeded, result, {"name": "fv", "version": 1}, [{"name": "g", "version": 1}])
    assert entry["phase"] == phase
    if phase == "Rejected":
        assert "roc_auc" in entry["message"]


def test_conditions_keep_transition_time():
    first = merge_conditions([], [{"type": "Ready", "status": "True", "reason": "A", "message": ""}], 1, now="t1")
    same = merge_conditions(first, [{"type": "Ready", "status": "True", "reason": "A", "message": ""}], 1, now="t2")
    assert same == first
    flipped = merge_conditions(first, [{"type": "Ready", "status": "False", "reason": "B", "message": ""}], 2, now="t3")
    assert flipped[0]["lastTransitionTime"] == "t3" and flipped[0]["observedGeneration"] == 2


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def intent_for(tp_body, **over):
    tp = TrainingPipeline.model_validate(tp_body)
    return {"version": 1, "hash": render_training.training_hash(tp), "token": None, "at": "2026-11-27T11:59:00Z", **over}


@pytest.mark.parametrize(
    "body,intent,token,expected",
    [
        (TP, None, None, "Created"),
        (TP, "same", None, None),
        (TP, "same", "now-1", "RunNow"),
        (TP, {"token": "now-1"}, "now-1", None),
        (variant(TP, "spec.model.params", {"max_iter": 5}), "base", None, "SpecChanged"),
        (variant(TP, "spec.schedule", "0 * * * *"), {"at": "2026-11-27T10:30:00Z"}, None, "Scheduled"),
        (variant(TP, "spec.schedule", "0 * * * *"), {"at": "2026-11-27T12:00:00Z"}, None, None),
    ],
)
def test_run_trigger(body, intent, token, expected):
    if intent == "same":
        intent = intent_for(body)
    elif intent == "base":
        intent = intent_for(TP)
    elif isinstance(intent, dict):
        intent = intent_for(body, **intent)
    assert run_trigger(TrainingPipeline.model_validate(body), intent, token, NOW) == expected


def test_a_version_kept_for_many_services_names_the_first_twenty_and_counts_them_all():
    readers = [f"team-{i:03d}/online" for i in range(250)]
    status = compute_status(FP, {2: ("Active", readers), 1: ("Retained", readers)}, {})
    active, kept = status["versions"]
    assert "neededBy" not in active and "neededByCount" not in active
    assert kept["neededBy"] == readers[:20] and kept["neededByCount"] == 250
    FeaturePipelineStatus.model_validate(status)  # within the schema the API server enforces (maxItems)


def test_feature_status_and_availability():
    body = {
        **FP,
        "status": {
            "versions": [
                {"version": 2, "state": "Active", "lastRun": {"job": "j", "succeeded": True, "rowsWritten": 3}},
                {"version": 1, "state": "Active"},
            ]
        },
    }
    status = compute_status(body, {2: ("Active", []), 1: ("Retained", ["fraud/online"])}, {})
    assert status["versions"][1] == {"version": 1, "state": "Retained", "neededBy": ["fraud/online"], "neededByCount": 1}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "Materialized"
    # recomputing from the written status gives the same status: no write the second time
    assert compute_status({**body, "status": status}, {2: ("Active", []), 1: ("Retained", ["fraud/online"])}, {}) == status
    avail = availability("fraud", FP["spec"], status)
    assert avail[("fraud", "card_transactions", 2)].online and not avail[("fraud", "card_transactions", 1)].materialized


def test_a_version_materialized_offline_only_is_online_once_a_run_publishes_it():
    """Turning `online` on does not fill the online store: the version waits for a run that publishes it."""
    offline_run = feature_run("fp-v2-a", True, {"ok": True, "rowsWritten": 600, "watermark": "2026-09-20T00:00:00Z"}, None)
    body = {**FP, "status": {"versions": [{"version": 2, "state": "Active"}]}}
    status = compute_status(body, {2: ("Active", [])}, {2: offline_run})
    assert status["versions"][0]["online"] is False
    online_spec = FP["spec"]  # the group is declared online now
    [avail] = availability("fraud", online_spec, status).values()
    assert avail.materialized and not avail.online and "offline only" in avail.detail
    # Recorded runs do not change it again (no write on the next reconcile) ...
    assert compute_status({**body, "status": status}, {2: ("Active", [])}, {}) == status
    # ... a run that publishes does, and a later offline run (nothing new online) does not take it back.
    online_run = feature_run(
        "fp-v2-b", True, {"ok": True, "rowsWritten": 600, "onlineRowsWritten": 600, "watermark": "2026-09-21T00:00:00Z"}, None
    )
    assert online_run["onlineRowsWritten"] == 600
    status = compute_status({**body, "status": status}, {2: ("Active", [])}, {2: online_run})
    assert (
        status["versions"][0]["online"] is True
        and availability("fraud", online_spec, status)[("fraud", "card_transactions", 2)].online
    )
    quarantined = feature_run("fp-v2-c", True, {"ok": True, "rowsWritten": 0, "rowsRejected": 5}, None)
    assert compute_status({**body, "status": status}, {2: ("Active", [])}, {2: quarantined})["versions"][0]["online"] is True
    # Statuses written before this was recorded keep counting as online.
    assert availability("fraud", online_spec, {"versions": [{"version": 2, "state": "Active", "lastRun": online_run}]})[
        ("fraud", "card_transactions", 2)
    ].online


def test_child_comparison_tolerates_server_defaults_only():
    desired = with_hash(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "x", "labels": {"a": "1"}},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"backoffLimit": 1}}},
        }
    )
    live = json.loads(json.dumps(desired))
    live["spec"]["jobTemplate"]["spec"]["completions"] = 1  # a server default
    live["metadata"]["resourceVersion"] = "7"
    assert up_to_date(desired, live)
    live["spec"]["schedule"] = "0 * * * *"  # someone edited an owned field
    assert not up_to_date(desired, live)
    assert is_subset({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2, "c": 3}], "d": 4})
    assert not is_subset({"a": [1]}, {"a": [1, 2]})


def test_with_hash_leaves_the_rendered_object_alone():
    rendered = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x", "annotations": {"k": "v"}}, "spec": {"a": 1}}
    before = json.loads(json.dumps(rendered))
    hashed = with_hash(rendered)
    assert rendered == before
    assert hashed["metadata"]["annotations"]["k"] == "v" and len(hashed["metadata"]["annotations"]) == 2
    assert with_hash({**rendered, "spec": {"a": 2}})["metadata"]["annotations"] != hashed["metadata"]["annotations"]


def test_config_from_env_errors_name_the_variable():
    with pytest.raises(ConfigError, match="FTI_METRICS_PORT"):
        OperatorConfig.from_env({"FTI_METRICS_PORT": "x"})
    with pytest.raises(ConfigError, match="FTI_ONLINE_STORE_SECRET"):
        OperatorConfig.from_env({"FTI_ONLINE_STORE_SECRET": "nokey"})
    cfg = OperatorConfig.from_env({"FTI_NAMESPACES": "a, b", "FTI_PEERING": "", "FTI_IMAGE_TRAINING": "reg/t@sha256:abc"})
    assert cfg.namespaces == ("a", "b") and cfg.peering is None and cfg.image("training") == "reg/t@sha256:abc"


def test_requeue_within_keeps_the_soonest_reason_to_come_back():
    from fti_operator.reconcile.context import Result

    result = Result()
    result.requeue_within(600.0)
    result.requeue_within(10.0)
    result.requeue_within(300.0)
    assert result.requeue_after == 10.0
