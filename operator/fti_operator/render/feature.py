"""FeaturePipeline -> a CronJob (scheduled) or a Job (run once) for its current feature-group version.

One child per feature-group version, named after the version, so moving the spec to a new
version creates a new child and leaves the old one for the reconciler to keep (while a
served model still needs that version, docs/versions.md) or delete (once retired).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import FeaturePipeline
from ..api.identity import ANNOTATION_RUN, ANNOTATION_TRIGGER, FEATURE_PIPELINE, LABEL_COMPONENT, LABEL_FG_VERSION
from ..config import OperatorConfig
from .pods import (
    child_name,
    cronjob,
    job,
    labels,
    pipeline_container,
    pod_template,
    spec_hash,
    template_parts,
)

MODULE = "fti_pipelines.feature"
KIND = FEATURE_PIPELINE.kind


def spec_payload(fp: FeaturePipeline) -> dict[str, Any]:
    """What the feature pipeline receives as FTI_SPEC: the spec with defaults applied."""
    return fp.spec.wire()


def _pod(fp: FeaturePipeline, config: OperatorConfig, run_id: str | None, pod_labels: Mapping[str, str]) -> dict[str, Any]:
    image, resources, extra_env = template_parts(fp.spec.template, config.image("feature"))
    container = pipeline_container(
        image,
        MODULE,
        spec_payload(fp),
        config,
        extra_env,
        resources=resources,
        namespace=fp.metadata.namespace,
        resource=fp.metadata.name,
        run_id=run_id,
    )
    return pod_template([container], config, pod_labels=pod_labels, template=fp.spec.template)


def child_labels(fp: FeaturePipeline) -> dict[str, str]:
    extra: dict[str, str | int | None] = {LABEL_COMPONENT: "feature", LABEL_FG_VERSION: fp.spec.feature_group.version}
    return labels(KIND, fp.metadata.name, **extra)


def cronjob_name(fp: FeaturePipeline) -> str:
    return child_name(fp.metadata.name, f"v{fp.spec.feature_group.version}")


def once_job_name(fp: FeaturePipeline) -> str:
    """Run-once Job: the name carries the spec hash, so a changed spec runs again (Jobs are immutable)."""
    return child_name(fp.metadata.name, f"v{fp.spec.feature_group.version}", spec_hash(spec_payload(fp))[:8])


def run_now_job_name(fp: FeaturePipeline, token: str) -> str:
    return child_name(fp.metadata.name, f"v{fp.spec.feature_group.version}", "run", spec_hash({"token": token})[:8])


def render(fp: FeaturePipeline, config: OperatorConfig, owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The scheduled CronJob, or the run-once Job when spec.schedule is absent."""
    lbl = child_labels(fp)
    ns = fp.metadata.namespace or "default"
    if fp.spec.schedule is None:
        name = once_job_name(fp)
        return job(name, ns, _pod(fp, config, name, lbl), config, job_labels=lbl, owner=owner)
    return cronjob(
        cronjob_name(fp),
        ns,
        fp.spec.schedule,
        _pod(fp, config, None, lbl),
        config,
        job_labels=lbl,
        owner=owner,
        suspend=fp.spec.suspend,
    )


def render_run_now(
    fp: FeaturePipeline, config: OperatorConfig, token: str, owner: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An immediate Job for the run-now annotation `fti.dev/run=<token>`."""
    lbl = child_labels(fp) | {ANNOTATION_TRIGGER: "run-now"}
    name = run_now_job_name(fp, token)
    return job(
        name,
        fp.metadata.namespace or "default",
        _pod(fp, config, name, lbl),
        config,
        job_labels=lbl,
        annotations={ANNOTATION_RUN: token},
        owner=owner,
    )
