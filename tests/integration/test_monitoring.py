"""Monitoring on the real control plane, the operator running as the chart's ServiceAccount
(docs/monitoring.md): an InferenceService with spec.monitoring gets its monitoring CronJob; a
monitoring run's result in its pod's termination message becomes status, the Drifted
condition, one Event and the fti_feature_drift gauge; with onDrift: retrain exactly one
training run is asked for per report, and none within the cooldown.

The monitoring runs are Jobs made from the CronJob's own template, as `kubectl create job
--from=cronjob/...` would, run by the pod runner with the shell image writing the result the
drift pipeline writes (the pipeline itself is tested with the pipeline images). The model
version monitored is written into the TrainingPipeline's status as a finished training run
leaves it (training itself runs in test_operator.py and test_rollouts.py).
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from controlplane.pod_runner import SHELL_IMAGE
from support.examples import example
from support.rollouts import GROUP, VERSION, apply, condition, custom, events, get, online
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = 7


def drift_result(status: str) -> dict:
    return {
        "ok": True,
        "revisions": [
            {
                "role": "stable",
                "modelVersion": MODEL,
                "featureViewVersion": 1,
                "rows": 4000,
                "status": status,
                "driftedFeatures": int(status == "Drifted"),
                "features": [
                    {"name": "amount", "method": "psi", "score": 0.41, "threshold": 0.2, "drifted": status == "Drifted"},
                    {"name": "category", "method": "psi", "score": 0.02, "threshold": 0.2, "drifted": False},
                ],
                "reportUri": "file:///store/namespaces/x/monitoring/fraud-online/run/report.json",
                "windowStart": "2026-12-03T10:00:00Z",
                "windowEnd": "2026-12-04T10:00:00Z",
            }
        ],
    }


def run_monitoring(k8s, ns: str, name: str, result: dict) -> None:
    """A Job from the monitoring CronJob's template whose container reports `result`."""
    batch = client.BatchV1Api(k8s)
    cron = k8s.sanitize_for_serialization(batch.read_namespaced_cron_job("fraud-online-monitor", ns))
    template = cron["spec"]["jobTemplate"]
    [container] = template["spec"]["template"]["spec"]["containers"]
    container["image"] = SHELL_IMAGE
    container["command"] = ["sh", "-c", 'printf "%s" "$RESULT" > "$FTI_TERMINATION_LOG"']
    container["env"].append({"name": "RESULT", "value": json.dumps(result)})
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": template["metadata"]["labels"]}}
    batch.create_namespaced_job(ns, {**job, "spec": template["spec"]})


def wait_report(k8s, ns: str, job: str) -> dict:
    """The InferenceService once its status records the monitoring run `job`."""

    def recorded() -> dict | None:
        obj = get(k8s, ns, "inferenceservices", "fraud-online")
        return obj if ((obj.get("status") or {}).get("monitoring") or {}).get("job") == job else None

    return wait_until(recorded, timeout=120, description=f"monitoring run {job} recorded")


def training_jobs(k8s, ns: str, trigger: str) -> list:
    jobs = client.BatchV1Api(k8s).list_namespaced_job(ns, label_selector="fti.dev/kind=trainingpipeline").items
    return [j for j in jobs if (j.metadata.annotations or {}).get("fti.dev/trigger") == trigger]


def test_drift_report_condition_event_metric_and_one_retraining(op, k8s, namespace, pod_runner):
    ns = namespace
    apply(k8s, example("training-pipeline.yaml", ns))
    # Its first run finds no features and fails: then model MODEL is recorded as trained.
    first = wait_until(
        lambda: next(
            (
                m
                for m in (get(k8s, ns, "trainingpipelines", "fraud-model").get("status") or {}).get("modelVersions") or []
                if m["phase"] != "Training"
            ),
            None,
        ),
        timeout=300,
        description="the first training run finished",
    )
    validated = {
        "version": MODEL,
        "phase": "Validated",
        "featureView": {"name": "fraud", "version": 1},
        "featureGroups": [],
        "storageUri": f"file:///store/namespaces/{ns}/models/fraud/{MODEL}/model",
        "job": f"fraud-model-v{MODEL}",
    }
    custom(k8s).patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, "trainingpipelines", "fraud-model", {"status": {"modelVersions": [validated, first]}}
    )

    body = online(ns, "fraud-online", "latest")
    body["spec"]["monitoring"] = {"minRows": 100, "logging": {}, "onDrift": "retrain", "retrain": {"cooldown": "6h"}}
    apply(k8s, body)
    cron = wait_until(
        lambda: client.BatchV1Api(k8s).list_namespaced_cron_job(ns, label_selector="fti.dev/component=monitoring").items,
        timeout=60,
        description="the monitoring CronJob",
    )[0]
    assert cron.metadata.name == "fraud-online-monitor" and cron.spec.concurrency_policy == "Forbid"
    isvc = get(k8s, ns, "inferenceservices", "fraud-online")
    assert cron.metadata.owner_references[0].uid == isvc["metadata"]["uid"]
    spec = json.loads(next(e.value for e in cron.spec.job_template.spec.template.spec.containers[0].env if e.name == "FTI_SPEC"))
    assert spec["inferenceService"] == "fraud-online" and spec["minRows"] == 100

    # A drift report: status, Drifted=True, one Event, the gauge, one retraining request.
    run_monitoring(k8s, ns, "fraud-online-monitor-a", drift_result("Drifted"))
    isvc = wait_report(k8s, ns, "fraud-online-monitor-a")
    drifted = condition(isvc, "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("True", "Drifted") and "amount" in drifted["message"]
    assert drifted["observedGeneration"] == isvc["metadata"]["generation"]
    assert isvc["status"]["monitoring"]["revisions"][0]["features"][0]["name"] == "amount"
    assert len(events(k8s, ns, "fraud-online", "DriftDetected")) == 1
    labels = {"namespace": ns, "inferenceservice": "fraud-online", "feature": "amount", "method": "psi"}
    assert wait_until(
        lambda: op.metric("fti_feature_drift", **labels, model_version=str(MODEL), feature_view_version="1") == 0.41,
        timeout=30,
        description="fti_feature_drift",
    )
    # The example trains on September's data, before the drifted window: retraining is refused.
    stale = condition(isvc, "Retraining")
    assert (stale["status"], stale["reason"]) == ("False", "TrainingWindowStale") and "trainingData.end" in stale["message"]
    assert training_jobs(k8s, ns, "Drift") == []

    # With an open training window, the next drifted report asks for exactly one run.
    custom(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "trainingpipelines", "fraud-model", {"spec": {"trainingData": {"end": None}}}
    )
    run_monitoring(k8s, ns, "fraud-online-monitor-b", drift_result("Drifted"))
    isvc = wait_report(k8s, ns, "fraud-online-monitor-b")
    assert condition(isvc, "Retraining")["reason"] == "Requested"
    drift_runs = wait_until(lambda: training_jobs(k8s, ns, "Drift"), timeout=60, description="the retraining run")
    assert len(drift_runs) == 1 and "fraud-online-monitor-b" in drift_runs[0].metadata.annotations["fti.dev/triggered-by"]

    # A third drifted report within the cooldown: refused; still one retraining run.
    run_monitoring(k8s, ns, "fraud-online-monitor-c", drift_result("Drifted"))
    isvc = wait_report(k8s, ns, "fraud-online-monitor-c")
    assert condition(isvc, "Retraining")["reason"] == "CooldownActive"
    assert len(isvc["status"]["monitoring"]["retrainRequests"]) == 1
    assert len(training_jobs(k8s, ns, "Drift")) == 1
    assert len(events(k8s, ns, "fraud-online", "DriftDetected")) == 1  # no new transition

    # Drift ends: Drifted=False and one Event.
    run_monitoring(k8s, ns, "fraud-online-monitor-d", drift_result("NoDrift"))
    isvc = wait_report(k8s, ns, "fraud-online-monitor-d")
    assert condition(isvc, "Drifted")["status"] == "False"
    assert len(events(k8s, ns, "fraud-online", "DriftEnded")) == 1
    assert len(training_jobs(k8s, ns, "Drift")) == 1
