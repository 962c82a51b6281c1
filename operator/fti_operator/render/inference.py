"""InferenceService -> a KServe v1beta1 InferenceService (online) or a CronJob/Job (batch).

Every child is rendered from ONE resolved pair (model version, feature-view version)
(docs/versions.md): predictor and transformer come out of the same call and go to the API
server in the same object, so they can never serve different versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api import InferenceService

# ANNOTATION_REVISION and KSERVE_API_VERSION are re-exported: the reconciler reads them from here.
from ..api.identity import (
    ANNOTATION_REVISION as ANNOTATION_REVISION,
    INFERENCE_SERVICE,
    KSERVE_API_VERSION as KSERVE_API_VERSION,
    KSERVE_KIND,
    LABEL_COMPONENT,
    LABEL_FV_VERSION,
    LABEL_MODEL_VERSION,
)
from ..config import OperatorConfig
from .monitoring import prediction_log_env
from .pods import (
    child_name,
    container_security_context,
    cronjob,
    job,
    labels,
    owner_reference,
    pipeline_container,
    placement,
    pod_template,
    template_parts,
)

KIND = INFERENCE_SERVICE.kind
SERVING_MODULE = "fti_pipelines.serving"
BATCH_MODULE = "fti_pipelines.batch_inference"
SERVING_PORT = 8080  # KServe's default container port for custom predictors/transformers


@dataclass(frozen=True)
class ResolvedPair:
    """What a revision serves: a model version and the feature-view version it was trained on."""

    revision: int
    model_name: str
    model_version: int
    feature_view_name: str
    feature_view_version: int
    storage_uri: str | None = None


def spec_payload(isvc: InferenceService, pair: ResolvedPair) -> dict[str, Any]:
    """The resolved spec the serving / batch pipeline gets as FTI_SPEC: concrete versions only."""
    wire = isvc.spec.wire()
    payload: dict[str, Any] = {
        # The served model name: KServe routes /v1/models/<name> by the child's name.
        "name": kserve_name(isvc),
        "model": {"name": pair.model_name, "version": pair.model_version},
        "featureView": {"name": pair.feature_view_name, "version": pair.feature_view_version},
        "mode": isvc.spec.mode,
    }
    part = "online" if isvc.spec.mode == "online" else "batch"
    payload[part] = wire.get(part) or {}
    return payload


def child_labels(isvc: InferenceService, pair: ResolvedPair, component: str) -> dict[str, str]:
    extra: dict[str, str | int | None] = {
        LABEL_COMPONENT: component,
        LABEL_MODEL_VERSION: pair.model_version,
        LABEL_FV_VERSION: pair.feature_view_version,
    }
    return labels(KIND, isvc.metadata.name, **extra)


def kserve_name(isvc: InferenceService) -> str:
    # Same name as ours: the KServe URL is then <name>.<namespace>.<domain>, what users expect.
    return child_name(isvc.metadata.name, limit=45)  # KServe appends -predictor-00001 etc.


def batch_name(isvc: InferenceService) -> str:
    return child_name(isvc.metadata.name, "batch")


def _serving_container(
    isvc: InferenceService, pair: ResolvedPair, config: OperatorConfig, role: str, resources: Mapping[str, Any] | None
) -> dict[str, Any]:
    image, tpl_resources, extra_env = template_parts(isvc.spec.template, config.image("inference"))
    container = pipeline_container(
        image,
        SERVING_MODULE,
        spec_payload(isvc, pair),
        config,
        # The server logs its predictions where the monitoring job reads them (docs/monitoring.md).
        [*extra_env, *prediction_log_env(isvc, config)],
        name="kserve-container",
        args=["--role", role],
        resources=resources or tpl_resources,
        namespace=isvc.metadata.namespace,
        resource=isvc.metadata.name,
        run_id=kserve_name(isvc),
        ports=[{"containerPort": SERVING_PORT, "protocol": "TCP"}],
    )
    # A server is not a run: no termination-message result to read.
    container.pop("terminationMessagePath", None)
    container.pop("terminationMessagePolicy", None)
    # KServe's default probe is a TCP check, which would count a revision whose skew guard
    # refused it (wrong feature view, features not online) as ready and shift traffic to it.
    container["readinessProbe"] = {
        "httpGet": {"path": f"/v2/models/{kserve_name(isvc)}/ready", "port": SERVING_PORT},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    return container


def render_online(
    isvc: InferenceService,
    pair: ResolvedPair,
    config: OperatorConfig,
    owner: Mapping[str, Any] | None = None,
    canary_percent: int | None = None,
) -> dict[str, Any]:
    """The KServe InferenceService serving `pair`.

    canary_percent: KServe sends that share to this (latest) revision and the rest to the
    previously rolled-out one; it only works in Serverless mode (RawDeployment ignores it).
    """
    online = isvc.spec.online
    assert online is not None, "validated spec: mode online has spec.online"
    resources = online.resources.wire() if online.resources else None
    component: dict[str, Any] = {"minReplicas": online.min_replicas, "maxReplicas": online.max_replicas}
    if canary_percent is not None:
        component["canaryTrafficPercent"] = canary_percent
    predictor = dict(component)
    spec: dict[str, Any] = {"predictor": predictor}
    tpl = isvc.spec.template.wire() if isvc.spec.template else {}
    if tpl.get("serviceAccountName") or config.pipeline_service_account:
        predictor["serviceAccountName"] = tpl.get("serviceAccountName") or config.pipeline_service_account
    # The component specs inline a PodSpec: our containers' /tmp (and store) volumes go beside them.
    volumes = pod_template([], config, pod_labels={})["spec"]["volumes"]
    if online.topology == "combined":
        predictor["containers"] = [_serving_container(isvc, pair, config, "combined", resources)]
        predictor["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        predictor["volumes"] = volumes
        predictor.update(placement(isvc.spec.template))
    else:
        if not pair.storage_uri:
            raise ValueError(f"model {pair.model_name} version {pair.model_version} has no storageUri in status")
        model: dict[str, Any] = {
            "modelFormat": {"name": "sklearn"},
            "storageUri": pair.storage_uri,
            # The stock sklearn server answers labels unless told to give probabilities.
            "env": [{"name": "PREDICT_PROBA", "value": "true"}],
            "securityContext": container_security_context() | {"readOnlyRootFilesystem": False},
        }
        if resources:
            model["resources"] = {k: {rk: str(rv) for rk, rv in v.items()} for k, v in sorted(resources.items())}
        predictor["model"] = model
        transformer = dict(component)
        transformer["containers"] = [_serving_container(isvc, pair, config, "transformer", None)]
        transformer["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        transformer["volumes"] = volumes
        # Both components: a GPU model server and its transformer land on the same pool.
        predictor.update(placement(isvc.spec.template))
        transformer.update(placement(isvc.spec.template))
        spec["transformer"] = transformer
    meta: dict[str, Any] = {
        "name": kserve_name(isvc),
        "namespace": isvc.metadata.namespace or "default",
        "labels": child_labels(isvc, pair, "online"),
        "annotations": {ANNOTATION_REVISION: str(pair.revision)},
    }
    if owner:
        meta["ownerReferences"] = [owner_reference(owner)]
    return {"apiVersion": KSERVE_API_VERSION, "kind": KSERVE_KIND, "metadata": meta, "spec": spec}


def render_batch(
    isvc: InferenceService, pair: ResolvedPair, config: OperatorConfig, owner: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A CronJob (batch.schedule set) or a run-once Job scoring with `pair`."""
    batch = isvc.spec.batch
    assert batch is not None, "validated spec: mode batch has spec.batch"
    lbl = child_labels(isvc, pair, "batch")
    ns = isvc.metadata.namespace or "default"
    image, resources, extra_env = template_parts(isvc.spec.template, config.image("inference"))

    def pod(run_id: str | None) -> dict[str, Any]:
        container = pipeline_container(
            image,
            BATCH_MODULE,
            spec_payload(isvc, pair),
            config,
            extra_env,
            resources=resources,
            namespace=isvc.metadata.namespace,
            resource=isvc.metadata.name,
            run_id=run_id,
        )
        return pod_template([container], config, pod_labels=lbl, template=isvc.spec.template)

    if batch.schedule is None:
        name = child_name(isvc.metadata.name, "batch", f"m{pair.model_version}", f"fv{pair.feature_view_version}")
        return job(
            name, ns, pod(name), config, job_labels=lbl, annotations={ANNOTATION_REVISION: str(pair.revision)}, owner=owner
        )
    return cronjob(
        batch_name(isvc),
        ns,
        batch.schedule,
        pod(None),
        config,
        job_labels=lbl,
        annotations={ANNOTATION_REVISION: str(pair.revision)},
        owner=owner,
    )
