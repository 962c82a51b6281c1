"""Pod and container basics shared by every child: contract env, security, names, Jobs.

The pipeline contract (docs/pipeline-contract.md; names in api/identity.py) is the only
interface between the operator and a pipeline image: the resolved spec and store URIs go in as environment,
the result comes back in the termination message. Credentials only by Secret reference.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..api import ApiModel, identity as ids
from ..api.identity import (  # re-exported: the drivers read these names from here today
    ANNOTATION_SPEC_HASH,
    CONTRACT_ENV,
    JOB_NAME_LABEL,
    LABEL_COMPONENT,
    LABEL_FG_VERSION,
    LABEL_FV_VERSION,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_MODEL_VERSION,
    LABEL_RESOURCE,
    MANAGED_BY,
    TERMINATION_LOG,
)
from ..config import OperatorConfig

__all__ = [
    "ANNOTATION_SPEC_HASH",
    "CONTRACT_ENV",
    "JOB_NAME_LABEL",
    "LABEL_COMPONENT",
    "LABEL_FG_VERSION",
    "LABEL_FV_VERSION",
    "LABEL_KIND",
    "LABEL_MANAGED_BY",
    "LABEL_MODEL_VERSION",
    "LABEL_RESOURCE",
    "MANAGED_BY",
    "RUN_AS_USER",
    "STARTING_DEADLINE_SECONDS",
    "TERMINATION_LOG",
    "RenderError",
    "child_name",
    "container_security_context",
    "cronjob",
    "job",
    "job_spec",
    "labels",
    "owner_reference",
    "pipeline_container",
    "pipeline_env",
    "placement",
    "pod_security_context",
    "pod_template",
    "spec_hash",
    "spec_json",
    "template_parts",
]

RUN_AS_USER = 65532  # distroless "nonroot"

_DNS_INVALID = re.compile(r"[^a-z0-9-]+")


class RenderError(ValueError):
    """A spec the renderer cannot turn into a valid child; the message names the field."""


def child_name(*parts: Any, limit: int = 52) -> str:
    """Deterministic DNS-1123 name from parts, at most `limit` chars.

    52 leaves room for the suffixes Kubernetes appends (CronJob -> Job adds 11 chars,
    Job -> Pod adds 6). Too long a name keeps a readable prefix and ends in a hash of
    the full name, so two different long names never collide after truncation.
    """
    raw = "-".join(str(p) for p in parts if p not in (None, ""))
    name = _DNS_INVALID.sub("-", raw.lower().replace("_", "-")).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def spec_json(payload: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces): equal specs give byte-equal env values."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def spec_hash(payload: Any) -> str:
    return hashlib.sha256(spec_json(payload if isinstance(payload, Mapping) else {"v": payload}).encode()).hexdigest()[:16]


def labels(kind: str, resource: str, **extra: str | int | None) -> dict[str, str]:
    out = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_KIND: kind.lower(), LABEL_RESOURCE: resource}
    out.update({k: str(v) for k, v in extra.items() if v is not None})
    return out


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def pipeline_env(
    spec_payload: Mapping[str, Any],
    config: OperatorConfig,
    extra_env: Iterable[Mapping[str, Any]] | None = None,
    *,
    namespace: str | None = None,
    resource: str | None = None,
    run_id: str | None = None,
    model_version: int | None = None,
) -> list[dict[str, Any]]:
    """The contract environment of a pipeline container, in a stable order.

    namespace None -> read from the pod (fieldRef); run_id None -> the Job name label of the
    pod (fieldRef), which is what a CronJob-created run needs. extra_env (the user's
    spec.template.env) may not redefine a contract variable.
    """
    env: list[dict[str, Any]] = [
        _value(ids.ENV_SPEC, spec_json(spec_payload)),
        _value(ids.ENV_ARTIFACT_STORE, config.artifact_store),
    ]
    if config.online_store_secret is not None:
        ref = config.online_store_secret
        env.append({"name": ids.ENV_ONLINE_STORE, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    elif config.online_store:
        env.append(_value(ids.ENV_ONLINE_STORE, config.online_store))
    if namespace is None:
        env.append({"name": ids.ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    else:
        env.append(_value(ids.ENV_NAMESPACE, namespace))
    if resource is not None:
        env.append(_value(ids.ENV_RESOURCE, resource))
    if run_id is None:
        env.append({"name": ids.ENV_RUN_ID, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}}})
    else:
        env.append(_value(ids.ENV_RUN_ID, run_id))
    if model_version is not None:
        env.append(_value(ids.ENV_MODEL_VERSION, str(int(model_version))))
    # FTI_RUN_TIME and FTI_TERMINATION_LOG are left to the contract's defaults (now, and
    # /dev/termination-log, what the kubelet reads); local runners set them.
    for i, given in enumerate(extra_env or []):
        item = dict(given)
        if item.get("name") in CONTRACT_ENV:
            raise RenderError(f"spec.template.env[{i}].name: {item['name']} is set by the operator (pipeline contract)")
        if "value" in item and "valueFrom" in item:
            raise RenderError(f"spec.template.env[{i}]: set value or valueFrom, not both")
        env.append(item)
    return env


def container_security_context() -> dict[str, Any]:
    """Restricted Pod Security profile, container part."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _store_mount_path(config: OperatorConfig) -> str | None:
    # The data volume (file:// artifact store, sqlite online store, batch files) when one is set.
    return config.data_volume_path if config.store_volume_claim else None


def _template_dict(template: Any) -> dict[str, Any]:
    """spec.template as a camelCase dict, whether a pydantic PodTemplate, a dict or None."""
    if template is None:
        return {}
    if isinstance(template, ApiModel):
        return template.wire()
    return dict(template)


def pipeline_container(
    image: str,
    module: str,
    spec_payload: Mapping[str, Any],
    config: OperatorConfig,
    extra_env: Iterable[Mapping[str, Any]] | None = None,
    *,
    name: str = "pipeline",
    args: Iterable[str] = (),
    resources: Mapping[str, Any] | None = None,
    namespace: str | None = None,
    resource: str | None = None,
    run_id: str | None = None,
    model_version: int | None = None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One container running `python -m <module>` under the pipeline contract."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", module],
        "env": pipeline_env(
            spec_payload, config, extra_env, namespace=namespace, resource=resource, run_id=run_id, model_version=model_version
        ),
    }
    if args:
        container["args"] = list(args)
    if config.store_credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": config.store_credentials_secret}}]
    if ports:
        container["ports"] = ports
    res = {k: dict(v) for k, v in (resources or {}).items() if v}
    if res:
        # Quantities as strings (GPU counts too), so equal specs compare equal after the API
        # server round trip; extended resources such as nvidia.com/gpu pass through as given.
        container["resources"] = {k: {rk: str(rv) for rk, rv in v.items()} for k, v in sorted(res.items())}
    container["securityContext"] = container_security_context()
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    store_path = _store_mount_path(config)
    if store_path:
        mounts.append({"name": "store", "mountPath": store_path})
    container["volumeMounts"] = mounts
    container["terminationMessagePath"] = TERMINATION_LOG
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def pod_template(
    containers: list[dict[str, Any]],
    config: OperatorConfig,
    *,
    pod_labels: Mapping[str, str],
    template: Any = None,
    restart_policy: str = "Never",
) -> dict[str, Any]:
    """A pod template with the restricted security context, /tmp and the store volume."""
    tpl = _template_dict(template)
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    if _store_mount_path(config):
        volumes.append({"name": "store", "persistentVolumeClaim": {"claimName": config.store_volume_claim}})
    spec: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,
        "containers": containers,
        "volumes": volumes,
    }
    service_account = tpl.get("serviceAccountName") or config.pipeline_service_account
    if service_account:
        spec["serviceAccountName"] = service_account
    spec.update(placement(template))
    return {"metadata": {"labels": dict(pod_labels)}, "spec": spec}


def placement(template: Any) -> dict[str, Any]:
    """The PodSpec fields of spec.template that say where pods run (api/scheduling.py).

    As the user wrote them (validated at admission): e.g. a toleration of a GPU node pool's
    taint. Lists keep their order, so repeated applies are identical.
    """
    tpl = _template_dict(template)
    out: dict[str, Any] = {}
    if tpl.get("nodeSelector"):
        out["nodeSelector"] = dict(sorted(tpl["nodeSelector"].items()))
    for key in ("tolerations", "affinity", "priorityClassName", "topologySpreadConstraints"):
        if tpl.get(key):
            out[key] = tpl[key]
    return out


def template_parts(template: Any, default_image: str) -> tuple[str, dict[str, Any] | None, list[dict[str, Any]]]:
    """(image, resources, extra env) from a spec.template override."""
    tpl = _template_dict(template)
    return tpl.get("image") or default_image, tpl.get("resources"), list(tpl.get("env") or [])


def job_spec(pod: dict[str, Any], config: OperatorConfig, *, active_deadline_seconds: int | None = None) -> dict[str, Any]:
    """A Job spec around a pod template: bounded retries, finished Jobs cleaned up by TTL."""
    spec: dict[str, Any] = {
        "backoffLimit": config.job_backoff_limit,
        "ttlSecondsAfterFinished": config.job_ttl_seconds,
        "template": pod,
    }
    if active_deadline_seconds:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    return spec


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """Controller owner reference to a custom resource, for garbage collection."""
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", ids.API_VERSION),
        "kind": body["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    name: str, namespace: str, labels_: Mapping[str, str], annotations: Mapping[str, str] | None, owner: Mapping[str, Any] | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels_)}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def job(
    name: str,
    namespace: str,
    pod: dict[str, Any],
    config: OperatorConfig,
    *,
    job_labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete batch/v1 Job manifest."""
    meta = _metadata(name, namespace, job_labels, annotations, owner)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec(pod, config)}


# A missed run older than this is skipped rather than started late (the next one catches up).
STARTING_DEADLINE_SECONDS = 300


def cronjob(
    name: str,
    namespace: str,
    schedule: str,
    pod: dict[str, Any],
    config: OperatorConfig,
    *,
    job_labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
    suspend: bool | None = None,
) -> dict[str, Any]:
    """A complete batch/v1 CronJob manifest running `pod` on `schedule` (UTC), never two at once.

    Forbid: two runs of one pipeline would race on the same watermark or output directory.
    """
    spec: dict[str, Any] = {"schedule": schedule, "timeZone": "Etc/UTC"}
    if suspend is not None:
        spec["suspend"] = suspend
    spec.update(
        {
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            # The runs carry the CronJob's annotations too (the revision a batch run scores with).
            "jobTemplate": {
                "metadata": {"labels": dict(job_labels), **({"annotations": dict(annotations)} if annotations else {})},
                "spec": job_spec(pod, config),
            },
        }
    )
    meta = _metadata(name, namespace, job_labels, annotations, owner)
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": spec}
