"""TrainingPipeline status mirrors the model registry: the version a run reports is the version
status records, under the Job that ran it (docs/store-layout.md, "Models").

The run's pod is written as the kubelet leaves it (its termination message); the pipeline that
allocates the version runs in tests/unit/pipelines/test_registry_versions.py and
test_training_pipeline.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fti_operator.config import OperatorConfig
from fti_operator.local.lookups import ScanLookups
from fti_operator.local.memkube import MemKube
from fti_operator.reconcile import Context, training

NS = "team-a"
T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SPEC = {
    "model": {"name": "fraud", "estimator": "sklearn.linear_model.LogisticRegression"},
    "featureView": {
        "name": "fraud",
        "version": 1,
        "label": {"featureGroup": {"name": "g", "version": 1}, "column": "y"},
        "features": [{"featureGroup": {"name": "g", "version": 1}, "columns": ["x"]}],
    },
}


def finish(kube: MemKube, job: str, result: dict) -> None:
    """The Job completes and its pod carries `result` as its termination message."""
    kube.patch(
        "batch/v1",
        "jobs",
        NS,
        job,
        {"status": {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-04T10:05:00Z"}]}},
        subresource="status",
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job}-abcde", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": job}},
        "spec": {"containers": [{"name": "pipeline", "image": "x"}]},
    }
    kube.apply(pod, field_manager="kubelet")
    terminated = {"exitCode": 0, "finishedAt": "2026-12-04T10:05:00Z", "message": json.dumps(result)}
    kube.patch(
        "v1",
        "pods",
        NS,
        pod["metadata"]["name"],
        {"status": {"containerStatuses": [{"name": "pipeline", "state": {"terminated": terminated}}]}},
        subresource="status",
    )


def result(version: int) -> dict:
    return {
        "ok": True,
        "model": "fraud",
        "version": version,
        "verdict": "Validated",
        "metrics": {"roc_auc": 0.9},
        "reasons": [],
        "featureView": {"name": "fraud", "version": 1},
        "featureGroups": [{"name": "g", "version": 1}],
        "trainingDataset": {"version": 1, "hash": "sha256:x"},
        "storageUri": f"file:///store/namespaces/{NS}/models/fraud/{version}/model",
    }


def test_status_records_the_version_the_registry_allocated_and_numbering_continues():
    kube = MemKube(clock=lambda: T0)
    ctx = Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=lambda: T0)
    body = kube.apply(
        {"apiVersion": "fti.dev/v1alpha1", "kind": "TrainingPipeline", "metadata": {"name": "m", "namespace": NS}, "spec": SPEC},
        field_manager="user",
    )
    training.reconcile(ctx, body)
    job = kube.get("batch/v1", "jobs", NS, "m-v1")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FTI_MODEL_VERSION"] == "1" and env["FTI_RESOURCE_UID"] == body["metadata"]["uid"]

    # The registry already held v1 and v2 (an earlier TrainingPipeline of the same model): the
    # run registered v3 and says so.
    finish(kube, "m-v1", result(3))
    training.reconcile(ctx, kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m"))
    status = kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m")["status"]
    assert [(mv["version"], mv["phase"], mv["job"]) for mv in status["modelVersions"]] == [(3, "Validated", "m-v1")]
    assert status["latestValidatedVersion"] == 3
    assert status["lastRun"]["modelVersion"] == 3 and status["lastRun"]["job"] == "m-v1"
    assert status["modelVersions"][0]["storageUri"].endswith("/models/fraud/3/model")

    # Settled: another reconcile starts nothing and changes nothing.
    before = kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m")
    training.reconcile(ctx, before)
    after = kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m")
    assert after["status"] == before["status"]
    assert [j["metadata"]["name"] for j in kube.list("batch/v1", "jobs", NS)] == ["m-v1"]

    # A spec change starts the next run above every number seen: v4.
    kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "TrainingPipeline",
            "metadata": {"name": "m", "namespace": NS},
            "spec": {**SPEC, "model": {**SPEC["model"], "params": {"C": 0.5}}},
        },
        field_manager="user",
    )
    training.reconcile(ctx, kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m"))
    assert kube.get("batch/v1", "jobs", NS, "m-v4") is not None
    status = kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m")["status"]
    assert [(mv["version"], mv["phase"]) for mv in status["modelVersions"]] == [(4, "Training"), (3, "Validated")]


def tp_body(name: str, features: list[str], view_version: int = 1) -> dict:
    view = {
        **SPEC["featureView"],
        "version": view_version,
        "features": [{"featureGroup": {"name": "g", "version": 1}, "columns": features}],
    }
    return {
        "apiVersion": "fti.dev/v1alpha1",
        "kind": "TrainingPipeline",
        "metadata": {"name": name, "namespace": NS},
        "spec": {**SPEC, "featureView": view},
    }


def events(kube: MemKube, reason: str) -> list[dict]:
    return [e for e in kube.list("v1", "events", NS) if e.get("reason") == reason]


def test_a_feature_view_version_redefined_is_refused_before_any_job():
    kube = MemKube(clock=lambda: T0)
    ctx = Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=lambda: T0)
    training.reconcile(ctx, kube.apply(tp_body("m", ["x"]), field_manager="user"))
    assert kube.get("batch/v1", "jobs", NS, "m-v1") is not None

    # Another TrainingPipeline declares feature view fraud v1 with other columns.
    training.reconcile(ctx, kube.apply(tp_body("n", ["x", "z"]), field_manager="user"))
    for _ in range(2):  # a second reconcile changes nothing and emits no second Event
        training.reconcile(ctx, kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "n"))
    assert kube.get("batch/v1", "jobs", NS, "n-v1") is None
    status = kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "n")["status"]
    cond = {c["type"]: c for c in status["conditions"]}
    accepted = cond["FeatureViewAccepted"]
    assert accepted["status"] == "False" and accepted["reason"] == "FeatureViewRedefined"
    assert "feature view fraud v1 is already defined differently (Job m-v1)" in accepted["message"]
    assert "features of g v1: added z" in accepted["message"] and accepted["message"].endswith("bump featureView.version")
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "FeatureViewRedefined"
    assert [e["type"] for e in events(kube, "FeatureViewRedefined")] == ["Warning"]

    # The pipeline that ran v1 first keeps running it: a run-now is not refused.
    m = kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "m")
    m["metadata"].setdefault("annotations", {})["fti.dev/run"] = "again"
    training.reconcile(ctx, kube.apply({**tp_body("m", ["x"]), "metadata": m["metadata"]}, field_manager="user"))
    assert kube.get("batch/v1", "jobs", NS, "m-v2") is not None

    # Bumping the version is the way: the new definition gets its own version and runs.
    training.reconcile(ctx, kube.apply(tp_body("n", ["x", "z"], view_version=2), field_manager="user"))
    assert kube.get("batch/v1", "jobs", NS, "n-v1") is not None
    cond = {c["type"]: c for c in kube.get("fti.dev/v1alpha1", "trainingpipelines", NS, "n")["status"]["conditions"]}
    assert cond["FeatureViewAccepted"]["status"] == "True"
