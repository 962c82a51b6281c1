"""Monitoring closes the loop on the real control plane, every link real (docs/monitoring.md):

shifted requests to a real model server → its prediction log in the artifact store → the real
monitoring job → `Drifted=True` on the InferenceService → exactly one retraining run of the
TrainingPipeline → a new validated model version that records what triggered it → rolled out
as a canary.

The operator runs as a process with a token of the chart's ServiceAccount (the `op` fixture).
Pods — the feature, training and monitoring pipelines — are run by the test bed's pod runner
(tests/controlplane/pod_runner.py: the product's local kubelet, each container a local
process of this interpreter). The model servers are the inference image's server
(`python -m fti_pipelines.serving`), started from the KServe child's own container by the
product's local KServe stand-in with the pod runner's image map (tests/controlplane/serving.py),
which also writes KServe's status and its canary traffic. The monitoring run is a Job made
from the monitoring CronJob's template, as `kubectl create job --from=cronjob/...` makes it.
Kept small: the example's data shrunk (tests/support/examples.py), a one-hour window, 200 rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from kubernetes import client

from controlplane.serving import ServingKServe
from fti_operator.local.samples import sample_instances, shift_instances
from fti_operator.render.pods import child_name
from fti_pipelines.serving.launch import predict
from support.examples import example
from support.rollouts import apply, condition, events, fraud_namespace, get, online, trained, wait_status
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "fraud-online"
ROWS = 300  # shifted requests sent; minRows is below, so the check gives a verdict
MONITORING = {
    "logging": {"sampleRate": 1, "flushSeconds": 1},
    "schedule": "0 0 1 1 *",  # yearly: the only runs are the test's own
    "window": "1h",
    "minRows": 200,
    "drift": {"method": "psi"},
    "onDrift": "retrain",
    "retrain": {"cooldown": "6h"},
}


def logged_rows(uri: str) -> int:
    path = Path(uri.removeprefix("file://"))
    if not path.exists():
        return 0
    return int(ds.dataset(path, format="parquet").count_rows())


def monitoring_run(k8s, ns: str, job: str) -> None:
    """A Job from the monitoring CronJob's template, as `kubectl create job --from=cronjob/...` makes."""
    batch = client.BatchV1Api(k8s)
    cron = k8s.sanitize_for_serialization(batch.read_namespaced_cron_job(child_name(NAME, "monitor"), ns))
    template = cron["spec"]["jobTemplate"]
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job,
            "labels": template["metadata"].get("labels") or {},
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
        },
        "spec": template["spec"],
    }
    batch.create_namespaced_job(ns, body)


def cron_spec(k8s, ns: str) -> dict:
    """FTI_SPEC of the monitoring CronJob: what its next run checks."""
    cron = client.BatchV1Api(k8s).read_namespaced_cron_job(child_name(NAME, "monitor"), ns)
    [container] = cron.spec.job_template.spec.template.spec.containers
    return json.loads(next(e.value for e in container.env if e.name == "FTI_SPEC"))


def drift_training_jobs(k8s, ns: str) -> list:
    jobs = client.BatchV1Api(k8s).list_namespaced_job(ns, label_selector="fti.dev/kind=trainingpipeline").items
    return [j for j in jobs if (j.metadata.annotations or {}).get("fti.dev/trigger") == "Drift"]


@pytest.fixture
def chain_namespace(k8s, pod_runner, request):
    ns = f"chain-{os.getpid()}"
    fraud_namespace(k8s, ns)
    yield ns
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        request.node.add_report_section("call", "pod logs", pod_runner.dump(ns) or "(no pod ran)")
    client.CoreV1Api(k8s).delete_namespace(ns)


def test_shifted_requests_drift_retrain_and_canary(op, k8s, pod_runner, chain_namespace, tmp_path):
    ns = chain_namespace
    # The example's training window ends in September: a retraining run would see none of the
    # drifted requests (Retraining=False/TrainingWindowStale, test_monitoring.py). Open-ended here.
    tp = example("training-pipeline.yaml", ns)
    del tp["spec"]["trainingData"]["end"]
    apply(k8s, tp)
    mv1 = wait_until(lambda: trained(k8s, ns, 1), timeout=900, description="model 1 trained")
    assert mv1["phase"] == "Validated", (mv1, pod_runner.dump(ns))

    body = online(ns, NAME, "latest")
    body["spec"]["online"]["canary"] = {"trafficPercent": 10}
    body["spec"]["monitoring"] = MONITORING
    apply(k8s, body)
    with ServingKServe(k8s, pod_runner, ns, tmp_path / "servers") as kserve:
        isvc = wait_status(k8s, ns, NAME, lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable", 300)
        url = isvc["status"]["url"]

        # Shifted requests for cards the online store knows (the demo's shift: `fti local apply
        # --shifted`), answered by model 1 and logged.
        features = body["spec"]["online"]["requestFeatures"]
        sampled = sample_instances(op.env["FTI_ARTIFACT_STORE"], ns, "fraud", 1, features, ROWS)
        instances, how = shift_instances([i for i, _label in sampled], features)
        assert len(instances) == ROWS and set(how) == {"amount", "category"}, how
        for start in range(0, ROWS, 100):
            answer = predict(url, NAME, instances[start : start + 100])
            assert answer["modelVersion"] == 1 and len(answer["predictions"]) == len(instances[start : start + 100])
        log_uri = f"{op.env['FTI_ARTIFACT_STORE']}/namespaces/{ns}/predictions/{NAME}"
        wait_until(lambda: logged_rows(log_uri) >= ROWS, timeout=60, description=f"{ROWS} rows in the prediction log")

        # The real monitoring job, from the CronJob's template.
        monitoring_run(k8s, ns, "fraud-online-monitor-drift")
        isvc = wait_status(
            k8s,
            ns,
            NAME,
            lambda st: (st.get("monitoring") or {}).get("job") == "fraud-online-monitor-drift",
            "report recorded",
            300,
        )
        report = isvc["status"]["monitoring"]
        assert report["succeeded"], (report, pod_runner.dump(ns))
        [stable] = report["revisions"]
        assert (stable["role"], stable["model"], stable["status"]) == ("stable", 1, "Drifted"), stable
        assert stable["rows"] >= ROWS
        top = {f["name"]: f for f in stable["features"]}
        assert top["amount"]["drifted"] and top["category"]["drifted"], stable["features"]
        assert {f["method"] for f in stable["features"]} == {"psi"}
        report_path = Path(stable["reportUri"].removeprefix("file://"))
        assert report_path.is_file() and report_path.with_name("report.html").is_file()
        drifted = condition(isvc, "Drifted")
        assert (drifted["status"], drifted["reason"]) == ("True", "Drifted") and "amount" in drifted["message"]
        assert len(events(k8s, ns, NAME, "DriftDetected")) == 1
        assert condition(isvc, "Retraining")["reason"] == "Requested", condition(isvc, "Retraining")

        # Exactly one retraining run, and the model version it trains records why.
        [run] = wait_until(lambda: drift_training_jobs(k8s, ns), timeout=60, description="the retraining run")
        assert "fraud-online-monitor-drift" in run.metadata.annotations["fti.dev/triggered-by"]
        mv2 = wait_until(lambda: trained(k8s, ns, 2), timeout=900, description="model 2 trained")
        assert mv2["phase"] == "Validated", (mv2, pod_runner.dump(ns))
        assert mv2["trigger"] == "Drift" and "fraud-online-monitor-drift" in mv2["triggeredBy"], mv2

        # Rolled out as a canary: KServe's stand-in starts model 2's server beside model 1's.
        isvc = wait_status(k8s, ns, NAME, lambda st: (st.get("target") or {}).get("traffic") == 10, "model 2 a canary", 300)
        st = isvc["status"]
        assert (st["target"]["model"], st["stable"]["model"], st["stable"]["traffic"]) == (2, 1, 90), st
        assert [(r["model"], r["traffic"]) for r in st["routed"]] == [(2, 10), (1, 90)], st["routed"]
        assert condition(isvc, "CanaryReady")["status"] == "True"
        canary = next(c for rev, c in kserve.urls(NAME).items() if rev.endswith("-00002"))
        answer = predict(canary["predictor"], NAME, instances[:1])
        assert answer["modelVersion"] == 2
        # The next check compares each revision with its own training profile.
        wait_until(
            lambda: [(r["role"], r["modelVersion"]) for r in cron_spec(k8s, ns)["revisions"]] == [("stable", 1), ("canary", 2)],
            timeout=60,
            description="the monitoring CronJob checks the canary too",
        )

        # One run per report: every reconcile since (the whole rollout) found the report handled.
        monitoring = isvc["status"]["monitoring"]
        assert monitoring["handledReport"] == "fraud-online-monitor-drift"
        assert len(monitoring["retrainRequests"]) == 1 and len(drift_training_jobs(k8s, ns)) == 1
        versions = (get(k8s, ns, "trainingpipelines", "fraud-model").get("status") or {}).get("modelVersions") or []
        assert sorted(m["version"] for m in versions) == [1, 2], versions
