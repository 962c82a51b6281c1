"""The reconcilers on the in-memory API server: the objects a rollout test starts from, and KServe's reports.

TrainingPipeline status is written as its runs would leave it, KServe's status as KServe
writes it (tests/controlplane/kserve.py writes the same shapes on the real API server), a
finished Job's pod as the pipeline's termination message leaves it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fti_operator.config import OperatorConfig
from fti_operator.local.lookups import ScanLookups
from fti_operator.local.memkube import MemKube
from fti_operator.reconcile import Context, inference

NS = "fraud"
T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


class Clock:
    """The reconcilers' clock, moved by the test (deadlines, cooldowns)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def rollout_env() -> tuple[MemKube, Context, Clock]:
    """An empty in-memory API server, a Context on it with the default config, and its clock."""
    kube, clock = MemKube(clock=lambda: T0), Clock()
    return kube, Context(kube, ScanLookups(kube), OperatorConfig(image_tag="test"), clock=clock), clock


def apply_fp(kube: MemKube, version: int) -> dict:
    """FeaturePipeline g (online, hourly) at feature-group `version`, as its user applies it."""
    return kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "FeaturePipeline",
            "metadata": {"name": "g", "namespace": NS},
            "spec": {
                "featureGroup": {"name": "g", "version": version, "primaryKey": ["k"], "eventTime": "t", "online": True},
                "source": {"uri": "file:///data/g/", "format": "parquet"},
                "schedule": "0 * * * *",
            },
        },
        field_manager="user",
    )


def fp(kube: MemKube, version: int, runs: dict[int, str]) -> dict:
    """FeaturePipeline g at `version`, each version in `runs` written by its (succeeded) run."""
    apply_fp(kube, version)
    status = {
        "versions": [
            {
                "version": v,
                "state": "Active" if v == version else "Retained",
                "lastRun": {"job": job, "succeeded": True, "rowsWritten": 10, "watermark": "2026-12-01T00:00:00Z"},
            }
            for v, job in runs.items()
        ]
    }
    return kube.patch("fti.dev/v1alpha1", "featurepipelines", NS, "g", {"status": status}, subresource="status")


def tp(kube: MemKube, models: dict[int, int]) -> dict:
    """A TrainingPipeline whose status records model version -> feature-group version g."""
    kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "TrainingPipeline",
            "metadata": {"name": "m", "namespace": NS},
            "spec": {
                "model": {"name": "m", "estimator": "sklearn.linear_model.LogisticRegression"},
                "featureView": {
                    "name": "m",
                    "version": 1,
                    "label": {"featureGroup": {"name": "g", "version": 1}, "column": "y"},
                    "features": [{"featureGroup": {"name": "g", "version": 1}, "columns": ["x"]}],
                },
            },
        },
        field_manager="user",
    )
    versions = [
        {
            "version": mv,
            "phase": "Validated",
            "featureView": {"name": "m", "version": g},
            "featureGroups": [{"name": "g", "version": g}],
            "storageUri": f"file:///s/models/m/{mv}/model",
        }
        for mv, g in models.items()
    ]
    return kube.patch(
        "fti.dev/v1alpha1", "trainingpipelines", NS, "m", {"status": {"modelVersions": versions}}, subresource="status"
    )


def isvc(kube: MemKube, version="latest", **rollout) -> dict:
    return kube.apply(
        {
            "apiVersion": "fti.dev/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "s", "namespace": NS},
            "spec": {
                "model": {"name": "m", "version": version},
                "mode": "online",
                "online": {"topology": "combined"},
                "rollout": {"readinessTimeout": "60s", **rollout},
            },
        },
        field_manager="user",
    )


def get(kube: MemKube, plural: str, name: str) -> dict:
    return kube.get("fti.dev/v1alpha1", plural, NS, name)


def reconcile_isvc(ctx: Context):
    return inference.reconcile(ctx, get(ctx.kube, "inferenceservices", "s"))


def kserve(kube: MemKube, ready: bool, message: str = "") -> dict:
    """KServe's status for the child's current generation (ready: the latest revision took all traffic)."""
    child = kube.get("serving.kserve.io/v1beta1", "inferenceservices", NS, "s")
    gen = child["metadata"]["generation"]
    latest = f"s-predictor-{gen:05d}"
    predictor = {"latestCreatedRevision": latest}
    if ready:
        predictor.update(latestReadyRevision=latest, traffic=[{"revisionName": latest, "percent": 100, "latestRevision": True}])
    return kube.patch(
        "serving.kserve.io/v1beta1",
        "inferenceservices",
        NS,
        "s",
        {
            "status": {
                "observedGeneration": gen,
                "url": "http://s.fraud.example.com",
                "components": {"predictor": predictor},
                "conditions": [{"type": "Ready", "status": "True" if ready else "False", "message": message}],
            }
        },
        subresource="status",
    )


def finish_job(kube: MemKube, job: str, result: dict, finished: str = "2026-12-04T10:05:00Z", failed: bool = False) -> None:
    """The Job completes (or fails) and its pod reports `result` (plus ok) in its termination message."""
    if failed:
        done: dict = {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": finished}]}
    else:
        done = {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": finished}
    kube.patch("batch/v1", "jobs", NS, job, {"status": done}, subresource="status")
    pod = kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{job}-x", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": job}},
            "spec": {"containers": []},
        }
    )
    terminated = {"message": json.dumps({"ok": not failed, **result}), "finishedAt": finished}
    status = {"containerStatuses": [{"state": {"terminated": terminated}}]}
    kube.patch("v1", "pods", NS, pod["metadata"]["name"], {"status": status}, subresource="status")
