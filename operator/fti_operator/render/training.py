"""TrainingPipeline -> one Job per training run, carrying the model version the operator assigned.

The operator, not a CronJob, starts scheduled runs: the version number must be assigned and
recorded before the run exists, and a CronJob-created Job cannot be told its number (two
triggers at once — schedule and run-now — would otherwise race for one version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import TrainingPipeline
from ..api.identity import (
    ANNOTATION_RUN_TOKEN,
    ANNOTATION_TRAINING_HASH,
    ANNOTATION_TRIGGER,
    ANNOTATION_TRIGGERED_BY,
    LABEL_COMPONENT,
    LABEL_FEATURE_VIEW_KEY,
    LABEL_MODEL_VERSION,
    TRAINING_PIPELINE,
    feature_view_key,
)
from ..config import OperatorConfig
from .pods import child_name, job, labels, pipeline_container, pod_template, spec_hash, template_parts

MODULE = "fti_pipelines.training"
KIND = TRAINING_PIPELINE.kind
# Spec parts that change what a run produces; schedule/suspend/resources do not.
TRAINING_FIELDS = ("model", "featureView", "trainingData", "evaluation")
# A Job records why it ran: after a crash before status.lastRun was written, the next reconcile
# reads the run back from here. Old names, kept for the code that still imports them here.
TRAINING_HASH_ANNOTATION = ANNOTATION_TRAINING_HASH
TRIGGER_ANNOTATION = ANNOTATION_TRIGGER
TOKEN_ANNOTATION = ANNOTATION_RUN_TOKEN


def spec_payload(tp: TrainingPipeline) -> dict[str, Any]:
    return tp.spec.wire()


def training_hash(tp: TrainingPipeline) -> str:
    """Hash of the training-relevant spec (and the image, whose code trains): a change means a new run."""
    wire = spec_payload(tp)
    relevant = {k: wire.get(k) for k in TRAINING_FIELDS}
    relevant["image"] = tp.spec.template.image if tp.spec.template else None
    return spec_hash(relevant)


def job_name(tp: TrainingPipeline, version: int) -> str:
    return child_name(tp.metadata.name, f"v{version}")


def render(
    tp: TrainingPipeline,
    version: int,
    config: OperatorConfig,
    owner: Mapping[str, Any] | None = None,
    trigger: str = "create",
    token: str | None = None,
    triggered_by: str | None = None,
) -> dict[str, Any]:
    """The Job that trains model version `version`; `triggered_by` names what asked for it (a drift report)."""
    name = job_name(tp, version)
    view = tp.spec.feature_view
    extra: dict[str, str | int | None] = {
        LABEL_COMPONENT: "training",
        LABEL_MODEL_VERSION: version,
        LABEL_FEATURE_VIEW_KEY: feature_view_key(view.name, view.version),
    }
    lbl = labels(KIND, tp.metadata.name, **extra)
    image, resources, extra_env = template_parts(tp.spec.template, config.image("training"))
    container = pipeline_container(
        image,
        MODULE,
        spec_payload(tp),
        config,
        extra_env,
        resources=resources,
        namespace=tp.metadata.namespace,
        resource=tp.metadata.name,
        run_id=name,
        model_version=version,
        # The registry records the run's owner with the version it allocates: a re-created
        # TrainingPipeline (a new uid) never gets the old one's model (docs/store-layout.md).
        resource_uid=tp.metadata.uid or ((owner or {}).get("metadata") or {}).get("uid") or "",
    )
    pod = pod_template([container], config, pod_labels=lbl, template=tp.spec.template)
    annotations = {ANNOTATION_TRAINING_HASH: training_hash(tp), ANNOTATION_TRIGGER: trigger}
    if token:
        annotations[ANNOTATION_RUN_TOKEN] = token
    if triggered_by:
        annotations[ANNOTATION_TRIGGERED_BY] = triggered_by
    return job(name, tp.metadata.namespace or "default", pod, config, job_labels=lbl, annotations=annotations, owner=owner)
