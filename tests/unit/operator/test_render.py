"""Rendered children compared to golden YAML (FTI_UPDATE_GOLDEN=1 regenerates them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from fti_operator.api import FeaturePipeline, InferenceService, TrainingPipeline, load_manifests
from fti_operator.api.identity import LABEL_MODEL_VERSION
from fti_operator.config import OperatorConfig
from fti_operator.render import feature, inference, monitoring, training
from fti_operator.render.inference import ResolvedPair
from fti_operator.render.pods import RenderError, child_name, pipeline_container

from .fixtures_resources import FP, ISVC_BATCH, ISVC_ONLINE, TP, variant

GOLDEN = Path(__file__).parent / "golden"
CONFIG = OperatorConfig(
    artifact_store="s3://ml/fti",
    online_store="redis://redis:6379/0",
    store_credentials_secret="fti-store-credentials",
    image_tag="1.2.3",
)
PAIR = ResolvedPair(
    revision=3,
    model_name="fraud",
    model_version=4,
    feature_view_name="fraud",
    feature_view_version=1,
    storage_uri="s3://ml/fti/models/fraud/4/model",
)


def check_golden(name: str, manifest: dict) -> None:
    path = GOLDEN / f"{name}.yaml"
    text = yaml.safe_dump(manifest, sort_keys=True, width=120)
    if os.environ.get("FTI_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with FTI_UPDATE_GOLDEN=1 to create it"
    assert yaml.safe_load(path.read_text()) == manifest, f"{name} differs from {path} (FTI_UPDATE_GOLDEN=1 to accept)"


# A GPU node pool: tainted, labelled, in zones; what examples/gpu/ declares.
GPU_TEMPLATE = {
    "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}},
    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu-spot"]}]}}
            ]
        }
    },
    "priorityClassName": "ml-training",
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
}

# spec.monitoring with logging, a feature subset and retraining (docs/monitoring.md).
MONITORING = {
    "logging": {"sampleRate": 0.5, "flushSeconds": 10},
    "schedule": "*/30 * * * *",
    "window": "6h",
    "minRows": 500,
    "drift": {"method": "js", "threshold": 0.1, "features": ["amount", "merchant_risk"], "minDriftedFeatures": 2},
    "onDrift": "retrain",
}
# The stable revision (profile next to the model) and a canary whose training reported its profile.
MONITORED = [
    monitoring.MonitoredRevision(
        "stable", 4, 1, "s3://ml/fti/models/fraud/4/model", monitoring.profile_uri("s3://ml/fti/models/fraud/4/model")
    ),
    monitoring.MonitoredRevision("canary", 5, 2, "s3://ml/fti/models/fraud/5/model", "s3://ml/fti/profiles/fraud-5.json"),
]

CASES = {
    "feature-cronjob": lambda: feature.render(FeaturePipeline.model_validate(FP), CONFIG, owner=FP),
    "feature-once-job": lambda: feature.render(
        FeaturePipeline.model_validate(variant(FP, "spec.schedule", None)), CONFIG, owner=FP
    ),
    "feature-run-now-job": lambda: feature.render_run_now(
        FeaturePipeline.model_validate(FP), CONFIG, "2026-11-27T10:00", owner=FP
    ),
    "training-job": lambda: training.render(TrainingPipeline.model_validate(TP), 4, CONFIG, owner=TP),
    "training-job-gpu": lambda: training.render(
        TrainingPipeline.model_validate(variant(TP, "spec.template", GPU_TEMPLATE)), 4, CONFIG, owner=TP
    ),
    "inference-transformer-placement": lambda: inference.render_online(
        InferenceService.model_validate(
            variant(variant(ISVC_ONLINE, "spec.online.topology", "transformer"), "spec.template", GPU_TEMPLATE)
        ),
        PAIR,
        CONFIG,
        owner=ISVC_ONLINE,
    ),
    "inference-combined": lambda: inference.render_online(
        InferenceService.model_validate(ISVC_ONLINE), PAIR, CONFIG, owner=ISVC_ONLINE
    ),
    "inference-transformer-canary": lambda: inference.render_online(
        InferenceService.model_validate(variant(ISVC_ONLINE, "spec.online.topology", "transformer")),
        PAIR,
        CONFIG,
        owner=ISVC_ONLINE,
        canary_percent=10,
    ),
    "inference-batch-cronjob": lambda: inference.render_batch(
        InferenceService.model_validate(ISVC_BATCH), PAIR, CONFIG, owner=ISVC_BATCH
    ),
    "inference-combined-prediction-log": lambda: inference.render_online(
        InferenceService.model_validate(variant(ISVC_ONLINE, "spec.monitoring", MONITORING)), PAIR, CONFIG, owner=ISVC_ONLINE
    ),
    "monitoring-cronjob": lambda: monitoring.render_monitoring(
        InferenceService.model_validate(variant(ISVC_ONLINE, "spec.monitoring", MONITORING)),
        MONITORED,
        CONFIG,
        owner=ISVC_ONLINE,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    check_golden(name, CASES[name]())


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_is_deterministic(name):
    assert CASES[name]() == CASES[name]()


def containers(manifest: dict) -> list[dict]:
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    if manifest["kind"] == "Job":
        return spec["template"]["spec"]["containers"]
    return [c for comp in ("predictor", "transformer") for c in spec.get(comp, {}).get("containers", [])]


def env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_cronjob_policy_and_contract_env():
    cj = CASES["feature-cronjob"]()
    assert cj["metadata"]["name"] == "card-transactions-v2"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    assert cj["spec"]["startingDeadlineSeconds"] > 0
    c = containers(cj)[0]
    e = env(c)
    assert json.loads(e["FTI_SPEC"])["featureGroup"]["version"] == 2
    assert e["FTI_ARTIFACT_STORE"] == "s3://ml/fti" and e["FTI_ONLINE_STORE"] == "redis://redis:6379/0"
    assert e["FTI_RUN_ID"] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}
    assert c["envFrom"] == [{"secretRef": {"name": "fti-store-credentials"}}]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert cj["metadata"]["ownerReferences"][0]["uid"] == "uid-fp"


def test_new_feature_group_version_is_a_new_child():
    a = feature.render(FeaturePipeline.model_validate(FP), CONFIG)
    b = feature.render(FeaturePipeline.model_validate(variant(FP, "spec.featureGroup.version", 3)), CONFIG)
    assert a["metadata"]["name"] != b["metadata"]["name"]


def test_once_job_name_follows_spec():
    once = variant(FP, "spec.schedule", None)
    a = feature.render(FeaturePipeline.model_validate(once), CONFIG)["metadata"]["name"]
    b = feature.render(FeaturePipeline.model_validate(variant(once, "spec.ingestion", "full")), CONFIG)["metadata"]["name"]
    assert a != b and a.startswith("card-transactions-v2-")


def test_training_job_carries_model_version_and_gpu():
    job = CASES["training-job"]()
    c = containers(job)[0]
    assert env(c)["FTI_MODEL_VERSION"] == "4" and env(c)["FTI_RUN_ID"] == "fraud-model-v4"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["command"] == ["python", "-m", "fti_pipelines.training"]


def test_training_hash_ignores_schedule_but_not_params():
    base = TrainingPipeline.model_validate(TP)
    assert training.training_hash(base) == training.training_hash(
        TrainingPipeline.model_validate(variant(TP, "spec.schedule", "0 3 * * 0"))
    )
    assert training.training_hash(base) != training.training_hash(
        TrainingPipeline.model_validate(variant(TP, "spec.model.params", {"max_iter": 300}))
    )


def test_one_pair_feeds_predictor_and_transformer():
    isvc = CASES["inference-transformer-canary"]()
    spec = isvc["spec"]
    assert spec["predictor"]["model"]["storageUri"] == PAIR.storage_uri
    assert spec["predictor"]["model"]["modelFormat"] == {"name": "sklearn"}
    assert spec["predictor"]["canaryTrafficPercent"] == 10
    t = env(spec["transformer"]["containers"][0])
    assert json.loads(t["FTI_SPEC"])["model"] == {"name": "fraud", "version": 4}
    assert json.loads(t["FTI_SPEC"])["featureView"] == {"name": "fraud", "version": 1}
    assert spec["transformer"]["containers"][0]["args"] == ["--role", "transformer"]
    assert isvc["metadata"]["labels"][LABEL_MODEL_VERSION] == "4"


def test_combined_topology_uses_inference_image():
    c = containers(CASES["inference-combined"]())[0]
    assert c["image"] == "ghcr.io/fti-dev/fti-inference:1.2.3"
    assert c["args"] == ["--role", "combined"]
    assert json.loads(env(c)["FTI_SPEC"])["mode"] == "online"


def test_user_env_cannot_override_contract():
    with pytest.raises(RenderError, match=r"spec.template.env\[0\].name: FTI_SPEC"):
        pipeline_container("img", "m", {}, CONFIG, [{"name": "FTI_SPEC", "value": "x"}])


def test_secret_online_store_and_pvc():
    cfg = OperatorConfig.from_env(
        {
            "FTI_ARTIFACT_STORE": "file:///var/lib/fti",
            "FTI_ONLINE_STORE_SECRET": "redis:uri",
            "FTI_STORE_VOLUME_CLAIM": "fti-store",
        }
    )
    cj = feature.render(FeaturePipeline.model_validate(FP), cfg)
    c = containers(cj)[0]
    assert env(c)["FTI_ONLINE_STORE"] == {"secretKeyRef": {"name": "redis", "key": "uri"}}
    assert {"name": "store", "mountPath": "/var/lib/fti"} in c["volumeMounts"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "fti-store"}} in cj["spec"]["jobTemplate"]["spec"][
        "template"
    ]["spec"]["volumes"]


@pytest.mark.parametrize("parts,limit", [(("a" * 70, "v1"), 52), (("fraud-online",), 45), (("Card_Tx", "v2"), 52)])
def test_child_names_are_dns_and_bounded(parts, limit):
    name = child_name(*parts, limit=limit)
    assert len(name) <= limit and name == name.lower() and "_" not in name
    assert child_name(*parts, limit=limit) == name


def test_placement_reaches_every_pod_spec():
    """tolerations, affinity, priorityClassName, topologySpreadConstraints: in the Job's pod
    and in both KServe components (their specs inline a PodSpec)."""
    pod = CASES["training-job-gpu"]()["spec"]["template"]["spec"]
    isvc = CASES["inference-transformer-placement"]()["spec"]
    for spec in (pod, isvc["predictor"], isvc["transformer"]):
        for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "topologySpreadConstraints"):
            assert spec[key] == GPU_TEMPLATE[key], key
    assert containers(CASES["training-job-gpu"]())[0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_gpu_example_reaches_the_gpu_pool():
    """examples/gpu/: the training Job asks for a GPU and tolerates the pool's taint."""
    [tp] = load_manifests([Path(__file__).resolve().parents[3] / "examples" / "gpu" / "training-pipeline.yaml"])
    job = training.render(tp, 1, CONFIG, owner=TP)
    pod = job["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"accelerator": "nvidia-l4"} and pod["priorityClassName"] == "ml-training"
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"] == "registry.example.com/fti-training-xgboost:0.1.0"
