"""The operator on the real control plane, with the pod runner executing the real
pipeline code: apply the fraud example and follow it through status, children and KServe.

The operator runs in-process (Kopf in a thread with its own loop); a second instance for
the peering test runs as `python -m fti_operator`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane.kserve import set_isvc_status
from fti_operator.config import OperatorConfig
from fti_operator.controller.kube_http import KubeHttp
from fti_operator.controller.runtime import Runtime
from fti_operator.reconcile import Context, feature, inference, training
from support.metrics import OPERATOR_FAMILIES, scrape
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "fti.dev", "v1alpha1"
PEERING = "fti-operator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def operator(control_plane, k8s, tmp_path_factory, fti_crds, operator_kubeconfig):
    """CRDs installed, a peering object, and the operator running in this process as the chart's
    ServiceAccount (never as admin: a verb the chart forgot fails here as on a cluster)."""
    control_plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    ext = client.ApiextensionsV1Api(k8s)
    for plural in ("featurepipelines", "trainingpipelines", "inferenceservices"):
        wait_until(
            lambda plural=plural: any(
                c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(f"{plural}.{GROUP}").status.conditions or []
            ),
            timeout=30,
            description=f"CRD {plural} established",
        )
    custom = client.CustomObjectsApi(k8s)
    try:
        custom.create_cluster_custom_object(
            "kopf.dev",
            "v1",
            "clusterkopfpeerings",
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}},
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    os.environ["KUBECONFIG"] = str(operator_kubeconfig)
    store = tmp_path_factory.mktemp("fti-store")
    health, metrics_port = free_port(), free_port()
    config = OperatorConfig(
        artifact_store=f"file://{store}/artifacts",
        online_store=f"sqlite:///{store}/online.db",
        metrics_port=metrics_port,
        health_port=health,
        peering=PEERING,
        peering_priority=100,
        image_tag="test",
        job_ttl_seconds=3600,
    )
    from fti_operator.controller.app import run

    rt = Runtime(config)  # built here so the tests can read its API-call counter
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run, args=(config, stop, ready), kwargs={"runtime": rt}, name="fti-operator", daemon=True)
    thread.start()
    assert ready.wait(60), "operator did not become ready"
    wait_until(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2).status == 200,
        timeout=30,
        ignore=(OSError,),
        description="operator liveness endpoint",
    )
    yield {"config": config, "runtime": rt, "store": store, "health": health, "metrics": metrics_port}
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "operator did not shut down gracefully"


def load_example(name: str, namespace: str, **annotations: str) -> dict:
    body = yaml.safe_load((ROOT / "examples" / "fraud" / name).read_text())
    body["metadata"]["namespace"] = namespace
    if annotations:
        body["metadata"].setdefault("annotations", {}).update(annotations)
    return body


def create(k8s, body: dict) -> dict:
    plural = body["kind"].lower() + "s"
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, body["metadata"]["namespace"], plural, body
    )


def get(k8s, namespace: str, plural: str, name: str) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def fg_run(k8s, namespace: str, name: str, version: int) -> dict | None:
    status = get(k8s, namespace, "featurepipelines", name).get("status") or {}
    entry = next((v for v in status.get("versions") or [] if v["version"] == version), None)
    return (entry or {}).get("lastRun")


def wait_at_rest(rt, quiet_polls: int = 3) -> None:
    """Until the operator made no API call for `quiet_polls` consecutive 1-second polls."""
    seen = {"calls": None, "quiet": 0}

    def quiet():
        total = sum(rt.kube.calls.values())
        seen["quiet"] = seen["quiet"] + 1 if total == seen["calls"] else 0
        seen["calls"] = total
        return seen["quiet"] >= quiet_polls

    wait_until(quiet, timeout=120, interval=1.0, description="operator at rest")


def container_env(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def test_fraud_example_end_to_end(operator, k8s, namespace, pod_runner, control_plane):
    batch = client.BatchV1Api(k8s)
    # 1. Feature pipelines: scheduled -> CronJobs; the run-now annotation runs them at once.
    for name in ("feature-pipeline-profiles.yaml", "feature-pipeline-transactions.yaml"):
        create(k8s, load_example(name, namespace, **{"fti.dev/run": "it-1"}))
    for cj in ("card-profiles-v1", "card-transactions-v1"):
        got = wait_until(
            lambda cj=cj: batch.read_namespaced_cron_job(cj, namespace),
            timeout=30,
            ignore=(ApiException,),
            description=f"CronJob {cj}",
        )
        assert got.spec.concurrency_policy == "Forbid"
        assert got.metadata.owner_references[0].kind == "FeaturePipeline"
    runs = {}
    for fp in ("card-profiles", "card-transactions"):
        runs[fp] = wait_until(
            lambda fp=fp: fg_run(k8s, namespace, fp, 1), timeout=600, description=f"{fp} v1 run result in status"
        )
        assert runs[fp]["succeeded"], runs[fp]
        assert runs[fp]["rowsWritten"] > 0 and "rowsRejected" in runs[fp] and runs[fp]["job"].startswith(f"{fp}-v1-run-")
    fp_obj = wait_until(
        lambda: (
            (o := get(k8s, namespace, "featurepipelines", "card-transactions"))
            and (condition(o, "Ready") or {}).get("status") == "True"
            and o
        ),
        timeout=30,
        description="FP Ready",
    )
    assert condition(fp_obj, "Ready")["observedGeneration"] == fp_obj["metadata"]["generation"]

    # 2. Training: a Job with the model version the operator assigned -> a Validated version in status.
    create(k8s, load_example("training-pipeline.yaml", namespace))
    job = wait_until(
        lambda: batch.read_namespaced_job("fraud-model-v1", namespace),
        timeout=30,
        ignore=(ApiException,),
        description="training Job",
    )
    job_dict = batch.api_client.sanitize_for_serialization(job)
    assert container_env(job_dict["spec"]["template"]["spec"]["containers"][0])["FTI_MODEL_VERSION"] == "1"

    def validated():
        st = get(k8s, namespace, "trainingpipelines", "fraud-model").get("status") or {}
        mv = next((m for m in st.get("modelVersions") or [] if m["version"] == 1), None)
        return mv if mv and mv["phase"] != "Training" else None

    mv = wait_until(validated, timeout=900, description="model version 1 finished")
    assert mv["phase"] == "Validated", mv
    assert mv["storageUri"].endswith("/models/fraud/1/model") and mv["metrics"]["roc_auc"] >= 0.8
    assert mv["featureView"] == {"name": "fraud", "version": 1}
    assert {"name": "card_profiles", "version": 1} in mv["featureGroups"]
    # Conditions follow the recorded result in the same pass or the next one.
    tp = wait_until(
        lambda: (
            (o := get(k8s, namespace, "trainingpipelines", "fraud-model"))
            and (condition(o, "Ready") or {}).get("status") == "True"
            and o
        ),
        timeout=30,
        description="TP Ready",
    )
    assert tp["status"]["latestValidatedVersion"] == 1 and condition(tp, "Ready")["reason"] == "ModelValidated"

    # 3. Online inference: a KServe InferenceService from one resolved pair.
    create(k8s, load_example("inference-online.yaml", namespace))
    custom = client.CustomObjectsApi(k8s)
    kisvc = wait_until(
        lambda: custom.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "fraud-online"
        ),
        timeout=60,
        ignore=(ApiException,),
        description="KServe InferenceService",
    )
    [container] = kisvc["spec"]["predictor"]["containers"]
    assert container["image"] == "ghcr.io/fti-dev/fti-inference:test"
    spec = json.loads(container_env(container)["FTI_SPEC"])
    assert spec["model"] == {"name": "fraud", "version": 1} and spec["featureView"] == {"name": "fraud", "version": 1}
    assert kisvc["metadata"]["labels"]["fti.dev/model-version"] == "1"
    # The pair is the rollout's target until KServe reports it ready at full traffic; then it is stable.
    isvc = wait_until(
        lambda: (o := get(k8s, namespace, "inferenceservices", "fraud-online")).get("status", {}).get("target") and o,
        timeout=30,
        description="target revision in status",
    )
    assert {k: isvc["status"]["target"][k] for k in ("revision", "model", "featureView")} == {
        "revision": 1,
        "model": 1,
        "featureView": 1,
    }
    set_isvc_status(k8s, namespace, "fraud-online", ready=True)
    isvc = wait_until(
        lambda: (
            (o := get(k8s, namespace, "inferenceservices", "fraud-online"))
            and (condition(o, "Ready") or {}).get("status") == "True"
            and o
        ),
        timeout=30,
        description="online Ready",
    )
    assert isvc["status"]["url"].startswith("http://fraud-online.")
    assert {k: isvc["status"]["stable"][k] for k in ("revision", "model", "featureView")} == {
        "revision": 1,
        "model": 1,
        "featureView": 1,
    }

    # 4. Batch inference: a CronJob with the same resolved pair; the feature groups know who needs them.
    create(k8s, load_example("inference-batch.yaml", namespace))
    cj = wait_until(
        lambda: batch.read_namespaced_cron_job("fraud-batch-batch", namespace),
        timeout=30,
        ignore=(ApiException,),
        description="batch CronJob",
    )
    cj_env = {e.name: e.value for e in cj.spec.job_template.spec.template.spec.containers[0].env}
    assert json.loads(cj_env["FTI_SPEC"])["model"] == {"name": "fraud", "version": 1}
    both = [f"{namespace}/fraud-batch", f"{namespace}/fraud-online"]
    wait_until(
        lambda: operator["runtime"].lookups.needed(namespace, "card_profiles") == {("card_profiles", 1): both},
        timeout=30,
        description="the operator's view: card_profiles v1 needed by both services",
    )
    # The pipeline holds the finalizer; v1 is its Active version, kept anyway, so the status
    # does not list its readers (only an older version kept for them does, docs/versions.md).
    wait_until(
        lambda: (
            "fti.dev/feature-versions-in-use"
            in (get(k8s, namespace, "featurepipelines", "card-profiles")["metadata"].get("finalizers") or [])
        ),
        timeout=30,
        description="card-profiles finalizer",
    )
    v1 = next(v for v in get(k8s, namespace, "featurepipelines", "card-profiles")["status"]["versions"] if v["version"] == 1)
    assert v1["state"] == "Active" and "neededBy" not in v1

    # 5. Level-based: reconciling everything again with nothing changed makes zero write calls.
    wait_at_rest(operator["runtime"])
    rt = operator["runtime"]
    # The same reconcilers with the operator's lookups, through a client of their own that counts.
    counted = Context(kube=KubeHttp(rt.kube.api_client), lookups=rt.lookups, config=operator["config"])
    for name in ("card-profiles", "card-transactions"):
        assert "status" not in feature.reconcile(counted, get(k8s, namespace, "featurepipelines", name)).actions
    training.reconcile(counted, get(k8s, namespace, "trainingpipelines", "fraud-model"))
    for name in ("fraud-online", "fraud-batch"):
        inference.reconcile(counted, get(k8s, namespace, "inferenceservices", name))
    writes = {k: n for k, n in counted.kube.calls.items() if k[0] in ("POST", "PUT", "PATCH", "DELETE")}
    assert writes == {}, f"a no-change reconcile wrote: {writes}"
    assert counted.kube.calls, "the reconciles read nothing?"

    # 6. /metrics after these events: feature runs, a validated model, a rollout to stable.
    assert_operator_metrics(scrape(operator["metrics"]), namespace, isvc["status"]["stable"])


def assert_operator_metrics(m, namespace: str, stable: dict) -> None:
    """Each family of support.metrics.OPERATOR_FAMILIES, with the samples these events made.

    fti_reconcile_errors_total and fti_rollbacks_total need a failure: declared here, counted in
    tests/integration/test_rollout_scenarios.py (an automatic rollback)."""
    assert set(OPERATOR_FAMILIES) <= m.families, set(OPERATOR_FAMILIES) - m.families
    now = time.time()
    for group in ("card_transactions", "card_profiles"):
        labels = {"namespace": namespace, "feature_group": group, "version": "1"}
        assert m.value("fti_feature_rows_ingested_total", **labels) > 0
        assert m.value("fti_feature_rows_rejected_total", **labels) >= 0
        assert m.value("fti_feature_rows_quarantined", **labels) >= 0  # the last run's, set with each recorded run
        assert m.value("fti_feature_runs_total", **labels, succeeded="true") >= 1
        assert 0 < m.value("fti_feature_group_last_success_timestamp_seconds", **labels) <= now
    model = {"namespace": namespace, "model": "fraud"}
    assert m.value("fti_model_versions_total", **model, phase="Validated") >= 1
    assert m.value("fti_model_metric", **model, version="1", metric="roc_auc") >= 0.8
    assert 0 < m.value("fti_training_last_success_timestamp_seconds", **model) <= now
    serving = {"namespace": namespace, "inferenceservice": "fraud-online", "role": "serving"}
    assert m.value("fti_served_model_version", **serving) == stable["model"] == 1
    assert m.value("fti_served_feature_view_version", **serving) == stable["featureView"] == 1
    assert m.value("fti_served_traffic_percent", **serving) == (stable.get("traffic") or 0)
    for kind in ("FeaturePipeline", "TrainingPipeline", "InferenceService"):
        assert m.value("fti_reconciles_total", kind=kind, outcome="ok") > 0, kind
        assert m.value("fti_reconcile_duration_seconds_count", kind=kind) > 0, kind
    assert sum(m.values("fti_operator_api_requests_total", verb="PATCH")) > 0


def gone(k8s, namespace, plural, name) -> bool:
    try:
        get(k8s, namespace, plural, name)
        return False
    except ApiException as exc:
        return exc.status == 404


def test_delete_featurepipeline_removes_children(operator, k8s, namespace):
    batch = client.BatchV1Api(k8s)
    body = load_example("feature-pipeline-profiles.yaml", namespace)
    body["metadata"]["name"] = "profiles-to-delete"
    create(k8s, body)
    wait_until(
        lambda: batch.read_namespaced_cron_job("profiles-to-delete-v1", namespace),
        timeout=30,
        ignore=(ApiException,),
        description="CronJob",
    )
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "featurepipelines", "profiles-to-delete"
    )
    wait_until(
        lambda: gone(k8s, namespace, "featurepipelines", "profiles-to-delete"),
        timeout=60,
        description="FeaturePipeline deleted (finalizer released)",
    )
    wait_until(
        lambda: not batch.list_namespaced_cron_job(namespace, label_selector="fti.dev/resource=profiles-to-delete").items,
        timeout=60,
        description="CronJob garbage-collected",
    )


def test_new_feature_group_version_keeps_needed_old_version(operator, k8s, namespace):
    """Feature-version retention (docs/versions.md) at the operator level: v1 stays (Retained)
    while an InferenceService's model reads it."""
    batch = client.BatchV1Api(k8s)
    fp = load_example("feature-pipeline-profiles.yaml", namespace)
    create(k8s, fp)
    wait_until(
        lambda: batch.read_namespaced_cron_job("card-profiles-v1", namespace),
        timeout=30,
        ignore=(ApiException,),
        description="v1 CronJob",
    )
    custom = client.CustomObjectsApi(k8s)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "featurepipelines", "card-profiles", {"spec": {"featureGroup": {"version": 2}}}
    )
    wait_until(
        lambda: batch.read_namespaced_cron_job("card-profiles-v2", namespace),
        timeout=30,
        ignore=(ApiException,),
        description="v2 CronJob",
    )
    # Nothing serves a model on v1: it is retired and its CronJob suspended (kept, so a rollback
    # can bring the version back).
    v1 = wait_until(
        lambda: (c := batch.read_namespaced_cron_job("card-profiles-v1", namespace)).spec.suspend and c,
        timeout=30,
        description="v1 CronJob suspended once retired",
    )
    assert v1.metadata.annotations["fti.dev/retired"] == "true"
    st = get(k8s, namespace, "featurepipelines", "card-profiles")["status"]
    assert {v["version"]: v["state"] for v in st["versions"]} == {2: "Active", 1: "Retired"}


def test_second_instance_with_lower_priority_stays_passive(
    operator, k8s, namespace, control_plane, tmp_path, operator_kubeconfig
):
    """Two operators never fight: the lower-priority instance pauses (Kopf peering) and writes nothing."""
    metrics_port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(operator_kubeconfig),
        "FTI_PEERING": PEERING,
        "FTI_PEERING_PRIORITY": "1",
        "FTI_METRICS_PORT": str(metrics_port),
        "FTI_HEALTH_PORT": str(free_port()),
        "FTI_ARTIFACT_STORE": f"file://{tmp_path}/artifacts",
    }
    log = (tmp_path / "second.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "fti_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: (
                b"fti_operator_api_requests"
                in urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read()
                or True
            ),
            timeout=60,
            ignore=(OSError,),
            description="second instance metrics",
        )
        # Both instances are registered as peers; the second one (priority 1 < 100) stays paused.
        custom = client.CustomObjectsApi(k8s)
        wait_until(
            lambda: (
                len(custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", PEERING).get("status") or {}) >= 2
            ),
            timeout=60,
            description="two peers registered",
        )
        body = load_example("feature-pipeline-profiles.yaml", namespace)
        create(k8s, body)
        batch = client.BatchV1Api(k8s)
        wait_until(
            lambda: batch.read_namespaced_cron_job("card-profiles-v1", namespace),
            timeout=30,
            ignore=(ApiException,),
            description="CronJob made by the active instance",
        )
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        writes = [
            line
            for line in text.splitlines()
            if line.startswith("fti_operator_api_requests_total{")
            and any(f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE"))
            and not line.endswith(" 0.0")
        ]
        assert writes == [], f"the paused instance wrote: {writes}"
    finally:
        proc.terminate()  # SIGTERM, as the kubelet sends it: a graceful stop
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "no exit within 30s of SIGTERM"
        log.close()
        assert code == 0, f"{code}: " + (tmp_path / "second.log").read_text()[-3000:]


def validated_model_on_materialized_features(k8s, namespace: str) -> None:
    """card-profiles with v1 materialized and fraud-model with a Validated v1 on it, as the Jobs would report."""
    custom = client.CustomObjectsApi(k8s)
    create(k8s, load_example("feature-pipeline-profiles.yaml", namespace))
    create(k8s, load_example("training-pipeline.yaml", namespace))

    def set_status(plural, name, status):
        obj = get(k8s, namespace, plural, name)
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": {**(obj.get("status") or {}), **status},
            },
        )
        return True

    wait_until(
        lambda: set_status(
            "featurepipelines",
            "card-profiles",
            {"versions": [{"version": 1, "state": "Active", "lastRun": {"job": "x", "succeeded": True, "rowsWritten": 5}}]},
        ),
        timeout=30,
        ignore=(ApiException,),
        description="FP status",
    )
    wait_until(
        lambda: set_status(
            "trainingpipelines",
            "fraud-model",
            {
                "modelVersions": [
                    {
                        "version": 1,
                        "phase": "Validated",
                        "featureView": {"name": "fraud", "version": 1},
                        "featureGroups": [{"name": "card_profiles", "version": 1}],
                        "storageUri": "file:///m/1/model",
                    }
                ]
            },
        ),
        timeout=30,
        ignore=(ApiException,),
        description="TP status",
    )


def delete_needed_card_profiles(k8s, namespace) -> None:
    """A served model needs card_profiles v1 (the finalizer is on); delete that FeaturePipeline."""
    validated_model_on_materialized_features(k8s, namespace)
    create(k8s, load_example("inference-batch.yaml", namespace))
    wait_until(
        lambda: (
            "fti.dev/feature-versions-in-use"
            in (get(k8s, namespace, "featurepipelines", "card-profiles")["metadata"].get("finalizers") or [])
        ),
        timeout=60,
        description="finalizer while fraud-batch needs card_profiles v1",
    )
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(GROUP, VERSION, namespace, "featurepipelines", "card-profiles")


def test_needed_feature_pipeline_is_kept_until_nothing_serves_it(operator, k8s, namespace):
    """The finalizer (docs/versions.md): deleting a FeaturePipeline whose version a served model needs waits."""
    delete_needed_card_profiles(k8s, namespace)
    events = client.CoreV1Api(k8s)
    wait_until(
        lambda: [
            e
            for e in events.list_namespaced_event(namespace, field_selector="involvedObject.name=card-profiles").items
            if e.reason == "DeletionBlocked"
        ],
        timeout=30,
        description="DeletionBlocked event",
    )
    assert get(k8s, namespace, "featurepipelines", "card-profiles")["metadata"].get("deletionTimestamp")
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(GROUP, VERSION, namespace, "inferenceservices", "fraud-batch")
    wait_until(
        lambda: gone(k8s, namespace, "featurepipelines", "card-profiles"),
        timeout=60,
        description="FeaturePipeline deleted once nothing needs it",
    )


def test_blocked_feature_pipeline_goes_when_its_model_and_service_go(operator, k8s, namespace):
    """A namespace being deleted removes the TrainingPipeline before the InferenceService: the
    blocked FeaturePipeline must still re-decide and drop its finalizer."""
    delete_needed_card_profiles(k8s, namespace)
    wait_until(
        lambda: get(k8s, namespace, "featurepipelines", "card-profiles")["metadata"].get("deletionTimestamp"),
        timeout=30,
        description="deletion pending",
    )
    custom = client.CustomObjectsApi(k8s)
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "trainingpipelines", "fraud-model")
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "inferenceservices", "fraud-batch")
    wait_until(
        lambda: gone(k8s, namespace, "featurepipelines", "card-profiles"),
        timeout=60,
        description="FeaturePipeline deleted once its model and service are gone",
    )


def test_switching_mode_replaces_the_child(operator, k8s, namespace):
    """online -> batch -> online: the child of the old mode goes, the new one comes (level-based)."""
    custom = client.CustomObjectsApi(k8s)
    validated_model_on_materialized_features(k8s, namespace)
    isvc = load_example("inference-online.yaml", namespace)
    create(k8s, isvc)
    name = isvc["metadata"]["name"]
    batch = client.BatchV1Api(k8s)

    def kserve() -> list:
        return custom.list_namespaced_custom_object("serving.kserve.io", "v1beta1", namespace, "inferenceservices")["items"]

    def cronjobs() -> list:
        return [
            c for c in batch.list_namespaced_cron_job(namespace).items if c.metadata.labels.get("fti.dev/component") == "batch"
        ]

    wait_until(kserve, timeout=60, description="the KServe InferenceService of mode online")
    batch_spec = load_example("inference-batch.yaml", namespace)["spec"]["batch"]
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferenceservices", name, {"spec": {"mode": "batch", "online": None, "batch": batch_spec}}
    )
    wait_until(lambda: cronjobs() and not kserve(), timeout=60, description="batch CronJob instead of the KServe service")
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "inferenceservices",
        name,
        {"spec": {"mode": "online", "batch": None, "online": isvc["spec"]["online"]}},
    )
    wait_until(lambda: kserve() and not cronjobs(), timeout=60, description="KServe service back, batch CronJob gone")


def test_new_pipelines_write_each_step_once_and_read_no_child(operator, k8s, namespace):
    """New pipelines: each child is created without a read first (no GET, no LIST), the reconcile
    starts from the watched object (no GET of it), the training run lands in status.lastRun (no
    metadata patch), one Event per step; a run-now token then starts v2 the same way."""
    rt = operator["runtime"]
    # The counter is process-wide: earlier tests' namespaces must be gone (their teardown queues
    # reconciles) before counting starts.
    core = client.CoreV1Api(k8s)
    wait_until(
        lambda: [n.metadata.name for n in core.list_namespace(label_selector="fti.dev/test=true").items] == [namespace],
        timeout=180,
        interval=1.0,
        description="earlier test namespaces deleted",
    )
    wait_at_rest(rt)
    before = dict(rt.kube.calls)
    fp = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FeaturePipeline",
        "metadata": {"name": "cost-fp", "namespace": namespace},
        "spec": {
            "featureGroup": {"name": "cost_g", "version": 1, "primaryKey": ["cc_num"], "eventTime": "event_time"},
            "source": {"generator": {"function": "fti_pipelines.examples.fraud:card_profiles"}},
            "schedule": "0 0 1 1 *",
        },
    }
    tp = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingPipeline",
        "metadata": {"name": "cost-tp", "namespace": namespace},
        "spec": {
            "model": {"name": "cost", "estimator": "sklearn.linear_model.LogisticRegression"},
            "featureView": {
                "name": "cost",
                "version": 1,
                "label": {"featureGroup": {"name": "cost_g", "version": 1}, "column": "y"},
                "features": [{"featureGroup": {"name": "cost_g", "version": 1}, "columns": ["x"]}],
            },
        },
    }
    create(k8s, fp)
    create(k8s, tp)
    wait_until(
        lambda: (
            (get(k8s, namespace, "trainingpipelines", "cost-tp").get("status") or {}).get("lastRun")
            and (get(k8s, namespace, "featurepipelines", "cost-fp").get("status") or {}).get("conditions")
        ),
        timeout=60,
        description="both statuses written",
    )
    wait_at_rest(rt)
    calls = {k: n - before.get(k, 0) for k, n in rt.kube.calls.items() if n - before.get(k, 0)}
    # The CronJob is written by server-side apply (a PATCH that creates), the Job by a create.
    # The one read: before a training run starts, the namespace's training Jobs are listed once
    # to check the feature view version is not redefined (docs/versions.md).
    assert calls == {
        ("PATCH", "cronjobs"): 1,
        ("GET", "jobs"): 1,
        ("POST", "jobs"): 1,
        ("POST", "events"): 2,
        ("PATCH", "featurepipelines/status"): 1,
        ("PATCH", "trainingpipelines/status"): 1,
    }, calls
    body = get(k8s, namespace, "trainingpipelines", "cost-tp")
    run = body["status"]["lastRun"]
    assert (run["modelVersion"], run["trigger"], run["job"]) == (1, "Created", "cost-tp-v1") and "token" not in run
    assert run["trainingHash"] and run["startedAt"] and "fti.dev/last-run" not in (body["metadata"].get("annotations") or {})

    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "trainingpipelines", "cost-tp", {"metadata": {"annotations": {"fti.dev/run": "t1"}}}
    )
    wait_until(
        lambda: get(k8s, namespace, "trainingpipelines", "cost-tp")["status"]["lastRun"]["modelVersion"] == 2,
        timeout=60,
        description="run-now recorded as v2",
    )
    run = get(k8s, namespace, "trainingpipelines", "cost-tp")["status"]["lastRun"]
    assert (run["trigger"], run["token"], run["job"]) == ("RunNow", "t1", "cost-tp-v2")
    job = client.BatchV1Api(k8s).read_namespaced_job("cost-tp-v2", namespace)
    assert job.metadata.annotations["fti.dev/run-token"] == "t1" and job.metadata.annotations["fti.dev/trigger"] == "RunNow"


def wait_condition(k8s, namespace: str, name: str, type_: str, status: str) -> dict:
    """The FeaturePipeline once its condition `type_` has `status` (the status follows the run's record)."""
    return wait_until(
        lambda: (
            (o := get(k8s, namespace, "featurepipelines", name)) and (condition(o, type_) or {}).get("status") == status and o
        ),
        timeout=30,
        description=f"{name}: {type_} {status}",
    )


def test_a_run_with_rejected_rows_shows_data_quarantined_until_a_clean_run(operator, k8s, namespace, pod_runner):
    """A run whose batch fails validation succeeds (the rows are kept in quarantine) and says so: the
    DataQuarantined condition names the rows and where they are, Ready is False (no maxRejectedFraction),
    one Warning Event, the gauge; a clean run clears them (docs/data-quality.md)."""
    body = load_example("feature-pipeline-profiles.yaml", namespace, **{"fti.dev/run": "q-1"})
    body["spec"]["source"]["generator"]["params"]["n_cards"] = 200
    body["spec"]["validation"]["expectations"].append({"column": "credit_limit", "between": {"max": 10}})
    create(k8s, body)
    run = wait_until(lambda: fg_run(k8s, namespace, "card-profiles", 1), timeout=600, description="first run in status")
    assert run["succeeded"] and run["rowsRejected"] == run["rowsRead"] > 0 and run["rowsWritten"] == 0, run
    assert run["quarantineUri"].endswith(f"/namespaces/{namespace}/quarantine/card_profiles/v1/{run['job']}")
    fp = wait_condition(k8s, namespace, "card-profiles", "DataQuarantined", "True")
    dq, ready = condition(fp, "DataQuarantined"), condition(fp, "Ready")
    for needle in (f"{run['rowsRejected']} rows quarantined by {run['job']}", run["quarantineUri"], "between on 'credit_limit'"):
        assert needle in dq["message"], (needle, dq)
    assert "row 0: between on 'credit_limit'" in dq["message"]
    assert (ready["status"], ready["reason"]) == ("False", "DataQuarantined")
    assert dq["observedGeneration"] == fp["metadata"]["generation"]

    def events(reason: str) -> list:
        return [
            e
            for e in client.CoreV1Api(k8s)
            .list_namespaced_event(namespace, field_selector="involvedObject.name=card-profiles")
            .items
            if e.reason == reason
        ]

    [warning] = wait_until(lambda: events("DataQuarantined"), timeout=30, description="DataQuarantined Event")
    assert warning.type == "Warning" and run["job"] in warning.message and run["quarantineUri"] in warning.message
    labels = {"namespace": namespace, "feature_group": "card_profiles", "version": "1"}
    assert scrape(operator["metrics"]).value("fti_feature_rows_quarantined", **labels) == run["rowsRejected"]

    # The rules fixed and run again: the clean run clears the condition, Ready comes back, no new Warning.
    expectations = body["spec"]["validation"]["expectations"][:-1]
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "featurepipelines",
        "card-profiles",
        {"metadata": {"annotations": {"fti.dev/run": "q-2"}}, "spec": {"validation": {"expectations": expectations}}},
    )
    clean = wait_until(
        lambda: (r := fg_run(k8s, namespace, "card-profiles", 1)) and r["job"] != run["job"] and r,
        timeout=600,
        description="second run in status",
    )
    assert clean["succeeded"] and clean["rowsWritten"] > 0 and clean["rowsRejected"] == 0, clean
    fp = wait_condition(k8s, namespace, "card-profiles", "DataQuarantined", "False")
    assert condition(fp, "DataQuarantined")["reason"] == "NoRowsQuarantined" and condition(fp, "Ready")["status"] == "True"
    wait_until(lambda: events("RunSucceeded"), timeout=30, description="RunSucceeded Event")
    assert len(events("DataQuarantined")) == 1
    assert scrape(operator["metrics"]).value("fti_feature_rows_quarantined", **labels) == 0
