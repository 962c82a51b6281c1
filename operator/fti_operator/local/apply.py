"""`fti local apply`: manifests in, in the order the data flows, each step settled before the next.

Feature pipelines first (each apply runs them now, through the same `fti.dev/run` annotation a
cluster user sets), then training (a new model version only when the training-relevant spec
changed, or `--retrain`), then inference (a batch CronJob is triggered once; an online service
is started when asked to serve). Everything in between is the reconcilers' doing: this module
only stores objects, lets the local cluster settle and reports what the status says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..api import FeaturePipeline, InferenceService, TrainingPipeline
from ..api.identity import ANNOTATION_RUN, API_VERSION, INFERENCE_SERVICE
from ..render import feature as render_feature
from .driver import LocalDriver, LocalRunError, now_token


def manifest(resource: Any) -> dict[str, Any]:
    return dict(resource.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))


def _status(driver: LocalDriver, resource: Any) -> dict[str, Any]:
    obj = driver.get(resource.kind, resource.metadata.namespace, resource.metadata.name) or {}
    return dict(obj.get("status") or {})


def _blocked(driver: LocalDriver, resource: Any) -> str:
    """Why the reconciler started nothing, when its status says so (a Secret it needs is missing,
    reconcile/store_access.py): the message replaces a bare "did not finish"."""
    for c in _status(driver, resource).get("conditions") or []:
        if c.get("type") == "StoreAccess" and c.get("status") == "False":
            return f": {c.get('reason')}: {c.get('message')}"
    return ""


def _log_hint(driver: LocalDriver, job: str | None) -> str:
    path = driver.cluster.log_path(job) if job else None
    return f" (log: {path})" if path else ""


def run_feature_pipelines(driver: LocalDriver, pipelines: Iterable[FeaturePipeline]) -> None:
    pipelines = list(pipelines)
    token = now_token()
    for fp in pipelines:
        job = render_feature.run_now_job_name(fp, token)
        driver.progress(
            f"FeaturePipeline {fp.metadata.name}: feature group {fp.spec.feature_group.name} "
            f"v{fp.spec.feature_group.version} (job {job})"
        )
        driver.apply(manifest(fp), {ANNOTATION_RUN: token})
    driver.settle()
    for fp in pipelines:
        job = render_feature.run_now_job_name(fp, token)
        version: dict[str, Any] = next(
            (v for v in _status(driver, fp).get("versions") or [] if v["version"] == fp.spec.feature_group.version), {}
        )
        run = version.get("lastRun") or {}
        if run.get("job") != job:
            raise LocalRunError(
                f"FeaturePipeline {fp.metadata.name}: run {job} did not finish{_blocked(driver, fp) or _log_hint(driver, job)}"
            )
        if not run.get("succeeded"):
            raise LocalRunError(f"FeaturePipeline {fp.metadata.name}: {run.get('message', 'failed')}{_log_hint(driver, job)}")
        quarantined = int(run.get("rowsRejected") or 0) + int(run.get("rowsTooLate") or 0)
        if quarantined:
            driver.progress(
                f"FeaturePipeline {fp.metadata.name}: {quarantined} rows quarantined "
                f"(`fti quarantine list --group {fp.spec.feature_group.name}`; docs/data-quality.md)"
            )


def run_training_pipelines(driver: LocalDriver, pipelines: Iterable[TrainingPipeline], retrain: bool = False) -> None:
    for tp in pipelines:
        before = (_status(driver, tp).get("lastRun") or {}).get("modelVersion")
        driver.apply(manifest(tp), {ANNOTATION_RUN: now_token()} if retrain else None)
        driver.settle()
        status = _status(driver, tp)
        version = (status.get("lastRun") or {}).get("modelVersion")
        entry: dict[str, Any] = next((mv for mv in status.get("modelVersions") or [] if mv["version"] == version), {})
        if (blocked := _blocked(driver, tp)) and version == before:
            raise LocalRunError(f"TrainingPipeline {tp.metadata.name}: nothing started{blocked}")
        if version == before:
            driver.progress(
                f"TrainingPipeline {tp.metadata.name}: spec unchanged since model version {version}; "
                "not retraining (use --retrain)"
            )
            continue
        driver.progress(
            f"TrainingPipeline {tp.metadata.name}: model {tp.spec.model.name} version {version} "
            f"{entry.get('phase', 'not finished')} (job {entry.get('job')})"
        )
        if entry.get("phase") in (None, "Training", "Failed"):
            raise LocalRunError(
                f"TrainingPipeline {tp.metadata.name}: model version {version} "
                f"{entry.get('phase', 'did not run')}: {entry.get('message', '')}"
                f"{_log_hint(driver, entry.get('job'))}"
            )


def run_inference(driver: LocalDriver, services: Iterable[InferenceService], serve: bool = False) -> None:
    driver.cluster.serving = driver.cluster.serving or serve
    for isvc in services:
        driver.apply(manifest(isvc))
        driver.settle()
        if isvc.spec.mode == "batch":
            job = driver.cluster.run_batch(isvc.metadata.namespace or "default", isvc.metadata.name)
            driver.settle()
            last = _status(driver, isvc).get("lastRun") or {}
            if job is None or last.get("job") != job:
                why = _blocked(driver, isvc) or _log_hint(driver, job)
                raise LocalRunError(f"InferenceService {isvc.metadata.name}: no batch run finished{why}")
            if not last.get("succeeded"):
                raise LocalRunError(
                    f"InferenceService {isvc.metadata.name}: {last.get('reason', 'failed')}: "
                    f"{last.get('error', '')}{_log_hint(driver, job)}"
                )
            driver.progress(
                f"InferenceService {isvc.metadata.name}: {last.get('rowsScored', 0)} rows scored by "
                f"{describe(_status(driver, isvc).get('stable'))}"
            )
        elif serve:
            status = _status(driver, isvc)
            stable = status.get("stable")
            ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            if not stable or ready.get("status") != "True":
                raise LocalRunError(
                    f"InferenceService {isvc.metadata.name}: {ready.get('reason')}: {ready.get('message')}"
                    f"{driver.cluster.server_log_hint(isvc.metadata.name)}"
                )
            driver.progress(f"InferenceService {isvc.metadata.name}: {describe(stable)} serving at {status.get('url')}")


def describe(revision: dict[str, Any] | None) -> str:
    if not revision:
        return "no revision"
    return f"model {revision['model']} / feature view {revision['featureView']}"


class LocalRolloutBackend:
    """`fti local rollout ...`: the annotations go on the in-memory object and the cluster settles
    (serving while it does, so KServe's stand-in can report the revision ready), so the verb's
    effect is in the status the command prints next."""

    def __init__(self, state_dir: Any, serve: bool = True):
        from pathlib import Path

        self.driver = LocalDriver(Path(state_dir), progress=lambda _m: None)
        self.driver.cluster.serving = serve

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        obj = self.driver.get("InferenceService", namespace, name)
        if obj is None:
            raise LocalRunError(
                f"no InferenceService {namespace}/{name} in {self.driver.state_dir.resolve()} "
                "(FTI_STATE_DIR; `fti local status` lists what is there)"
            )
        return obj

    def annotate(self, name: str, namespace: str, key: str, value: str) -> None:
        obj = self.get(name, namespace)
        self.driver.kube.patch(
            API_VERSION,
            INFERENCE_SERVICE.plural,
            namespace,
            name,
            {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"], "annotations": {key: value}}},
        )
        try:
            self.driver.settle()
        finally:
            self.driver.stop()
