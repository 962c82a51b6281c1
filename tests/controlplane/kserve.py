"""KServe without KServe: install its InferenceService CRD and set the status
its controller would write, so the operator's rollout logic meets the real API
shape (conditions, URL, per-component revisions and traffic).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from support.wait import wait_until

CRD_PATH = Path(__file__).resolve().parent / "kserve-crd.yaml"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def install_crd(api: client.ApiClient, timeout: float = 30) -> None:
    """Create (or update) the CRD and wait until it is Established."""
    ext = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD_PATH.read_text())
    name = body["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        body["metadata"]["resourceVersion"] = ext.read_custom_resource_definition(name).metadata.resource_version
        ext.replace_custom_resource_definition(name, body)

    def established():
        conds = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)

    wait_until(established, timeout=timeout, description=f"CRD {name} Established")


def revision_name(name: str, number: int, component: str = "predictor") -> str:
    """KServe/Knative naming: ``<isvc>-predictor-00001``."""
    return f"{name}-{component}-{number:05d}"


def _condition(old: dict, type_: str, ok: bool, reason: str | None, message: str | None) -> dict:
    status = "True" if ok else "False"
    prev = old.get(type_)
    cond = {
        "type": type_,
        "status": status,
        # Knative only moves lastTransitionTime when the status flips.
        "lastTransitionTime": prev["lastTransitionTime"] if prev and prev.get("status") == status else _now(),
    }
    if not ok:
        cond["reason"] = reason or "RevisionMissing"
        if message:
            cond["message"] = message
    return cond


def set_isvc_status(
    api: client.ApiClient,
    namespace: str,
    name: str,
    ready: bool = True,
    url: str | None = None,
    traffic: list[dict] | None = None,
    latest_revision: str | None = None,
    previous_revision: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    deployment_mode: str | None = None,
) -> dict:
    """Patch ``status`` of an InferenceService as KServe's controller would.

    Defaults: the latest revision is ``<name>-predictor-<generation>``; when ready
    it carries 100 % of the traffic (or ``traffic`` as given, e.g. a canary split
    with a ``prev`` tag) and becomes ``latestRolledoutRevision``. Returns the
    updated object.
    """
    custom = client.CustomObjectsApi(api)
    isvc = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    generation = isvc["metadata"].get("generation", 1)
    old_status = isvc.get("status") or {}
    old_conds = {c["type"]: c for c in old_status.get("conditions") or []}
    url = url or f"http://{name}.{namespace}.example.com"
    latest = latest_revision or revision_name(name, generation)
    old_predictor = (old_status.get("components") or {}).get("predictor") or {}

    predictor = {"latestCreatedRevision": latest}
    if ready:
        if traffic is None:
            traffic = [{"tag": "latest", "revisionName": latest, "latestRevision": True, "percent": 100}]
        predictor.update(
            url=f"http://{name}-predictor.{namespace}.example.com",
            address={"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"},
            latestReadyRevision=latest,
            traffic=traffic,
        )
        # "Rolled out" = carries all the traffic; during a canary the last
        # rolled-out revision stays what it was.
        full = [t["revisionName"] for t in traffic if t.get("percent") == 100]
        old_rolled = old_predictor.get("latestRolledoutRevision")
        rolled = full[0] if full else old_rolled
        if rolled:
            predictor["latestRolledoutRevision"] = rolled
        if previous_revision:
            previous = previous_revision
        elif old_rolled and old_rolled != rolled:
            previous = old_rolled
        else:
            previous = old_predictor.get("previousRolledoutRevision")
        if previous and previous != rolled:
            predictor["previousRolledoutRevision"] = previous
    else:
        # A failed new revision leaves the last good one serving.
        for key in ("latestReadyRevision", "latestRolledoutRevision", "traffic", "url", "address"):
            if key in old_predictor:
                predictor[key] = old_predictor[key]
        if traffic is not None:
            predictor["traffic"] = traffic
        if previous_revision:
            predictor["previousRolledoutRevision"] = previous_revision

    components = {"predictor": predictor}
    conditions = [
        _condition(old_conds, "IngressReady", ready, reason, message),
        _condition(old_conds, "PredictorReady", ready, reason, message),
    ]
    if (isvc.get("spec") or {}).get("transformer"):
        # The transformer moves in lockstep with the predictor (one revision each).
        components["transformer"] = {
            k: (v.replace("-predictor", "-transformer") if isinstance(v, str) else v)
            for k, v in predictor.items()
            if k != "traffic"
        }
        if "traffic" in predictor:
            components["transformer"]["traffic"] = [
                {**t, "revisionName": t["revisionName"].replace("-predictor-", "-transformer-")} for t in predictor["traffic"]
            ]
        conditions.append(_condition(old_conds, "TransformerReady", ready, reason, message))
    conditions.append(_condition(old_conds, "Ready", ready, reason, message))
    conditions.sort(key=lambda c: c["type"])

    status = {
        "observedGeneration": generation,
        "conditions": conditions,
        "components": components,
        "modelStatus": {
            "transitionStatus": "UpToDate" if ready else "BlockedByFailedLoad",
            "modelRevisionStates": {
                "activeModelState": "Loaded" if ready else "FailedToLoad",
                "targetModelState": "Loaded" if ready else "FailedToLoad",
            },
        },
    }
    if deployment_mode:  # KServe reports "Serverless" or "RawDeployment"
        status["deploymentMode"] = deployment_mode
    if ready or old_status.get("url"):
        status["url"] = url if ready else old_status["url"]
        status["address"] = {"url": f"http://{name}.{namespace}.svc.cluster.local"}
    # A JSON merge patch would merge into the old components map; replace status whole.
    isvc["status"] = status
    return custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, isvc)
