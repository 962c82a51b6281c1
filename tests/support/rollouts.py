"""Helpers of the rollout tests on the control plane: our objects and KServe's as the API server
has them, waiting for what the operator writes, and a namespace with the fraud example's
feature pipelines (tests/integration/test_rollouts.py, test_rollout_traffic.py)."""

from __future__ import annotations

import json

from kubernetes import client
from kubernetes.client.rest import ApiException

from support.examples import example
from support.wait import wait_until

GROUP, VERSION = "fti.dev", "v1alpha1"
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")


def custom(k8s) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s)


def get(k8s, namespace: str, plural: str, name: str) -> dict:
    return custom(k8s).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def apply(k8s, body: dict) -> dict:
    plural = body["kind"].lower() + "s"
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        return custom(k8s).create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    live = get(k8s, ns, plural, name)
    return (
        custom(k8s).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            plural,
            name,
            {"spec": body["spec"], "metadata": {"annotations": (body["metadata"].get("annotations") or {})}},
        )
        if live
        else live
    )


def kserve_child(k8s, namespace: str, name: str) -> dict:
    return custom(k8s).get_namespaced_custom_object(*KSERVE[:2], namespace, KSERVE[2], name)


def served_model(child: dict) -> int:
    [container] = child["spec"]["predictor"]["containers"]
    spec = json.loads(next(e["value"] for e in container["env"] if e["name"] == "FTI_SPEC"))
    assert child["metadata"]["labels"]["fti.dev/model-version"] == str(spec["model"]["version"]), "mixed pair"
    return int(spec["model"]["version"])


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def events(k8s, namespace: str, name: str, reason: str) -> list:
    items = client.CoreV1Api(k8s).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [e for e in items if e.reason == reason]


def wait_status(k8s, namespace: str, name: str, check, description: str, timeout: float = 60) -> dict:
    def done():
        obj = get(k8s, namespace, "inferenceservices", name)
        return obj if check(obj.get("status") or {}) else None

    return wait_until(done, timeout=timeout, description=f"{name}: {description}")


def wait_child_model(k8s, namespace: str, name: str, model: int, timeout: float = 60) -> dict:
    def done():
        child = kserve_child(k8s, namespace, name)
        return child if served_model(child) == model else None

    return wait_until(done, timeout=timeout, ignore=(ApiException,), description=f"KServe {name} renders model {model}")


def online(ns: str, name: str, version, **rollout) -> dict:
    body = example("inference-online.yaml", ns)
    # Rollouts only: the example's hourly drift check would be a run one flow has and another lacks.
    body["spec"].pop("monitoring", None)
    body["metadata"]["name"] = name
    body["spec"]["model"]["version"] = version
    body["spec"]["rollout"].update(rollout)
    return body


def fraud_namespace(k8s, ns: str) -> str:
    """A new namespace with the fraud example's two feature pipelines, each asked to run once."""
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    wait_until(
        lambda: core.list_namespaced_service_account(ns, field_selector="metadata.name=default").items,
        timeout=30,
        description="default ServiceAccount",
    )
    for name in ("feature-pipeline-profiles.yaml", "feature-pipeline-transactions.yaml"):
        apply(k8s, example(name, ns, **{"fti.dev/run": "r1"}))
    return ns


def fraud_pipelines(k8s, ns: str) -> None:
    """`fraud_namespace`, plus the fraud example's training pipeline."""
    fraud_namespace(k8s, ns)
    apply(k8s, example("training-pipeline.yaml", ns))


def trained(k8s, ns: str, version: int) -> dict | None:
    """Model `version` of fraud-model once its training has finished (None while it runs)."""
    st = get(k8s, ns, "trainingpipelines", "fraud-model").get("status") or {}
    return next((m for m in st.get("modelVersions") or [] if m["version"] == version and m["phase"] != "Training"), None)
