"""Store access on the real control plane, the operator running as the chart's ServiceAccount
configured like the chart's releases (controlplane/fixtures.py STORE_SETS): a namespace
without the credentials Secret gets no child, a StoreAccess condition naming the Secret, the
namespace and the chart value, and one Warning Event; creating the Secret (and the PVC) lets
the FeaturePipeline proceed by itself — no spec change (reconcile/store_access.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from controlplane.fixtures import ONLINE_STORE_KEY, ONLINE_STORE_SECRET, STORE_CREDENTIALS_SECRET, STORE_VOLUME_CLAIM
from fti_operator.config import OperatorConfig, SecretKeyRef
from fti_operator.controller.runtime import Runtime
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "fti.dev", "v1alpha1"


@pytest.fixture(scope="module")
def operator(control_plane, fti_crds, operator_kubeconfig, tmp_path_factory):
    os.environ["KUBECONFIG"] = str(operator_kubeconfig)
    config = OperatorConfig(
        artifact_store="file:///var/lib/fti/artifacts",
        store_credentials_secret=STORE_CREDENTIALS_SECRET,
        online_store_secret=SecretKeyRef(ONLINE_STORE_SECRET, ONLINE_STORE_KEY),
        store_volume_claim=STORE_VOLUME_CLAIM,
        # Looked at again every second while something is missing, so the test waits little.
        store_recheck_seconds=1,
        metrics_port=0,
        health_port=0,
        peering=None,
        image_tag="test",
    )
    from fti_operator.controller.app import run

    rt = Runtime(config)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run, args=(config, stop, ready), kwargs={"runtime": rt}, name="fti-operator", daemon=True)
    thread.start()
    assert ready.wait(60), "operator did not become ready"
    yield rt
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive(), "operator did not shut down gracefully"


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def test_a_missing_secret_is_named_and_creating_it_lets_the_pipeline_proceed(operator, k8s, namespace):
    custom, core, batch = client.CustomObjectsApi(k8s), client.CoreV1Api(k8s), client.BatchV1Api(k8s)
    body = yaml.safe_load((ROOT / "examples" / "fraud" / "feature-pipeline-transactions.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    name = body["metadata"]["name"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "featurepipelines", body)

    def fp() -> dict:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "featurepipelines", name)

    wait_until(lambda: _condition(fp(), "StoreAccess").get("status") == "False", timeout=60, description="StoreAccess=False")
    access, ready = _condition(fp(), "StoreAccess"), _condition(fp(), "Ready")
    assert access["reason"] == "SecretNotFound" and ready["reason"] == "SecretNotFound", (access, ready)
    for text in (
        f"Secret {STORE_CREDENTIALS_SECRET}",
        f"Secret {ONLINE_STORE_SECRET} (key {ONLINE_STORE_KEY})",
        f"PersistentVolumeClaim {STORE_VOLUME_CLAIM}",
        f"namespace {namespace}",
        "stores.credentialsSecret",
        "stores.volumeClaim",
    ):
        assert text in access["message"], access["message"]
    assert batch.list_namespaced_cron_job(namespace).items == [] and batch.list_namespaced_job(namespace).items == []
    warnings = [e for e in core.list_namespaced_event(namespace).items if e.reason == "SecretNotFound"]
    assert len(warnings) == 1 and warnings[0].type == "Warning", warnings

    # The objects appear; the spec is not touched. The periodic re-check finds them.
    generation = fp()["metadata"]["generation"]
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=STORE_CREDENTIALS_SECRET), string_data={"K": "v"})
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=ONLINE_STORE_SECRET), string_data={ONLINE_STORE_KEY: "redis://r:6379/0"}
        ),
    )
    core.create_namespaced_persistent_volume_claim(
        namespace,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name=STORE_VOLUME_CLAIM),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteMany"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})
            ),
        ),
    )
    wait_until(
        lambda: batch.list_namespaced_job(namespace).items or batch.list_namespaced_cron_job(namespace).items,
        timeout=60,
        description="the FeaturePipeline's child once its Secrets and PVC exist",
    )
    wait_until(lambda: _condition(fp(), "StoreAccess").get("status") == "True", timeout=60, description="StoreAccess=True")
    assert fp()["metadata"]["generation"] == generation
    assert _condition(fp(), "StoreAccess")["reason"] == "StoreObjectsFound"
    assert _condition(fp(), "Ready").get("reason") not in ("SecretNotFound", "SecretKeyNotFound", "VolumeClaimNotFound")
    # The child references exactly what was checked.
    children = batch.list_namespaced_job(namespace).items or [
        c.spec.job_template for c in batch.list_namespaced_cron_job(namespace).items
    ]
    pod = children[0].spec.template.spec
    container = pod.containers[0]
    assert [s.secret_ref.name for s in container.env_from or []] == [STORE_CREDENTIALS_SECRET]
    assert [v.persistent_volume_claim.claim_name for v in pod.volumes if v.persistent_volume_claim] == [STORE_VOLUME_CLAIM]
