"""InferenceService spec.monitoring -> the monitoring CronJob and the model server's logging env.

The monitoring job (`python -m fti_pipelines.monitoring`, docs/monitoring.md) gets, under the
pipeline contract, the revisions that serve now (stable, and the canary while one rolls out),
each with its model's storage URI and training profile, so it compares the predictions each
revision was asked with the data that revision was trained on. The model server gets
FTI_PREDICTION_LOG: where its predictions go and how many; absent, it logs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api import InferenceService
from ..api.identity import ENV_PREDICTION_LOG, INFERENCE_SERVICE, LABEL_COMPONENT
from ..config import OperatorConfig
from .pods import child_name, cronjob, labels, pipeline_container, pod_template, spec_json, template_parts

KIND = INFERENCE_SERVICE.kind
MODULE = "fti_pipelines.monitoring"
COMPONENT = "monitoring"
PROFILE_FILE = "monitoring-profile.json"


@dataclass(frozen=True)
class MonitoredRevision:
    """One revision the monitoring job checks: what it serves and what it was trained on."""

    role: str  # stable | canary
    model_version: int
    feature_view_version: int
    model_uri: str | None
    profile_uri: str | None


def profile_uri(storage_uri: str | None, reported: str | None = None) -> str | None:
    """The training profile of a model version: what its training run reported, else the file
    the training pipeline writes next to the model (docs/monitoring.md)."""
    if reported:
        return reported
    return f"{storage_uri.rstrip('/')}/{PROFILE_FILE}" if storage_uri else None


def predictions_dir(config: OperatorConfig, namespace: str, name: str) -> str:
    """Where an InferenceService's prediction log lives (docs/monitoring.md)."""
    return f"{config.artifact_store.rstrip('/')}/namespaces/{namespace}/predictions/{name}"


def prediction_log_env(isvc: InferenceService, config: OperatorConfig) -> list[dict[str, Any]]:
    """FTI_PREDICTION_LOG for the model server when logging is configured, else nothing."""
    mon = isvc.spec.monitoring
    if mon is None or mon.logging is None:
        return []
    value = {
        "uri": predictions_dir(config, isvc.metadata.namespace or "default", isvc.metadata.name),
        "sampleRate": mon.logging.sample_rate,
        "flushSeconds": mon.logging.flush_seconds,
    }
    return [{"name": ENV_PREDICTION_LOG, "value": spec_json(value)}]


def monitoring_name(isvc: InferenceService) -> str:
    return child_name(isvc.metadata.name, "monitor")


def child_labels(isvc: InferenceService) -> dict[str, str]:
    return labels(KIND, isvc.metadata.name, **{LABEL_COMPONENT: COMPONENT})


def spec_payload(isvc: InferenceService, revisions: Sequence[MonitoredRevision]) -> dict[str, Any]:
    """FTI_SPEC of the monitoring job (the shared contract in docs/monitoring.md)."""
    mon = isvc.spec.monitoring
    assert mon is not None, "rendered only with spec.monitoring"
    drift: dict[str, Any] = {
        "method": mon.drift.method,
        "threshold": mon.drift.threshold,
        "minDriftedFeatures": mon.drift.min_drifted_features,
    }
    if mon.drift.features:
        drift["features"] = list(mon.drift.features)
    out = []
    for r in revisions:
        item: dict[str, Any] = {"role": r.role, "modelVersion": r.model_version, "featureViewVersion": r.feature_view_version}
        if r.model_uri:
            item["modelUri"] = r.model_uri
        if r.profile_uri:
            item["profileUri"] = r.profile_uri
        out.append(item)
    return {
        "inferenceService": isvc.metadata.name,
        "window": mon.window,
        "minRows": mon.min_rows,
        "drift": drift,
        "revisions": out,
    }


def render_monitoring(
    isvc: InferenceService,
    revisions: Sequence[MonitoredRevision],
    config: OperatorConfig,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The CronJob running the drift check on spec.monitoring.schedule, never two at once."""
    mon = isvc.spec.monitoring
    assert mon is not None, "rendered only with spec.monitoring"
    # The serving image (or the user's image built on it) and env; not the serving resources or
    # placement: a drift check has no business on a GPU pool.
    image, _resources, extra_env = template_parts(isvc.spec.template, config.image("inference"))
    container = pipeline_container(
        image,
        MODULE,
        spec_payload(isvc, revisions),
        config,
        extra_env,
        namespace=isvc.metadata.namespace,
        resource=isvc.metadata.name,
        run_id=None,  # a CronJob's run: the Job name, read from the pod's label
    )
    account = isvc.spec.template.service_account_name if isvc.spec.template else None
    lbl = child_labels(isvc)
    pod = pod_template([container], config, pod_labels=lbl, template={"serviceAccountName": account} if account else None)
    return cronjob(
        monitoring_name(isvc), isvc.metadata.namespace or "default", mon.schedule, pod, config, job_labels=lbl, owner=owner
    )
