"""Finished Jobs -> the owner's status: read the pods' termination messages (the pipeline contract).

Called for every event of a Job the operator manages; a Job seen again (restart, resync,
TTL deletion) finds its result already recorded and writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .. import metrics
from ..render.pods import JOB_NAME_LABEL, LABEL_FG_VERSION, LABEL_KIND, LABEL_MODEL_VERSION, LABEL_RESOURCE
from ..status import feature_run, job_finished, job_finished_at, model_version_entry, termination_result
from .runtime import API_VERSION, Runtime

log = logging.getLogger(__name__)


def _later(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Does run `new` supersede `old`? (events of an older Job may arrive after a newer one's)"""
    if not old or old.get("job") == new.get("job"):
        return True
    return str(new.get("finishedAt") or "") >= str(old.get("finishedAt") or "")


def record(rt: Runtime, job: Mapping[str, Any]) -> str | None:
    """Record a finished Job's result on its owner; returns what was updated (for logs/tests)."""
    succeeded = job_finished(job)
    if succeeded is None:
        return None
    meta = job["metadata"]
    labels = meta.get("labels") or {}
    kind, owner_name, ns = labels.get(LABEL_KIND), labels.get(LABEL_RESOURCE), meta["namespace"]
    if not owner_name or kind not in ("featurepipeline", "trainingpipeline", "inferenceservice"):
        return None
    plural = {"featurepipeline": "featurepipelines", "trainingpipeline": "trainingpipelines",
              "inferenceservice": "inferenceservices"}[kind]
    owner = rt.kube.get(API_VERSION, plural, ns, owner_name)
    if owner is None:
        return None
    pods = rt.kube.list("v1", "pods", ns, f"{JOB_NAME_LABEL}={meta['name']}")
    result = termination_result(pods)
    finished_at = job_finished_at(job)
    with rt.lock(kind, ns, owner_name):
        if kind == "featurepipeline":
            version = int(labels.get(LABEL_FG_VERSION, 0))
            run = feature_run(meta["name"], succeeded, result, finished_at)
            group = owner["spec"]["featureGroup"]["name"]

            def compute(body: Mapping[str, Any]) -> dict[str, Any]:
                versions = [dict(v) for v in (body.get("status") or {}).get("versions") or []]
                entry = next((v for v in versions if int(v["version"]) == version), None)
                if entry is None:
                    entry = {"version": version, "state": "Active" if version == int(body["spec"]["featureGroup"]["version"]) else "Retained"}
                    versions.append(entry)
                    versions.sort(key=lambda v: -int(v["version"]))
                if _later(run, entry.get("lastRun")):
                    entry["lastRun"] = run
                return {"versions": versions}

            if rt.update_status(plural, owner, compute) is not None:
                if metrics.first_time(meta.get("uid", meta["name"])):
                    metrics.record_feature_run(ns, group, version, run)
                rt.event(owner, "RunSucceeded" if run["succeeded"] else "RunFailed",
                         f"{group} v{version}: Job {meta['name']} " + (
                             f"wrote {run.get('rowsWritten', 0)} rows, rejected {run.get('rowsRejected', 0)}"
                             if run["succeeded"] else f"failed: {run.get('message', '')}"),
                         "Normal" if run["succeeded"] else "Warning")
                return "featurepipeline"
            return None
        if kind == "trainingpipeline":
            version = int(labels.get(LABEL_MODEL_VERSION, 0))
            fv = owner["spec"]["featureView"]

            def compute(body: Mapping[str, Any]) -> dict[str, Any]:
                status = body.get("status") or {}
                entries = [dict(mv) for mv in status.get("modelVersions") or []]
                old = next((mv for mv in entries if int(mv["version"]) == version), None)
                groups = (old or {}).get("featureGroups") or []
                fv_ref = (old or {}).get("featureView") or {"name": fv["name"], "version": fv["version"]}
                entry = model_version_entry(version, meta["name"], succeeded, result, fv_ref, groups,
                                            created_at=(old or {}).get("createdAt"))
                entries = [mv for mv in entries if int(mv["version"]) != version] + [entry]
                entries.sort(key=lambda mv: -int(mv["version"]))
                validated = [mv["version"] for mv in entries if mv.get("phase") == "Validated"]
                return {"modelVersions": entries, "latestValidatedVersion": max(validated) if validated else None}

            written = rt.update_status(plural, owner, compute)
            if written is not None:
                entry = next(mv for mv in written["status"]["modelVersions"] if int(mv["version"]) == version)
                model = owner["spec"]["model"]["name"]
                if metrics.first_time(meta.get("uid", meta["name"])):
                    metrics.record_model_version(ns, model, entry)
                rt.event(owner, f"Model{entry['phase']}", f"model {model} v{version}: {entry['phase']}"
                         + (f" ({entry['message']})" if entry.get("message") else ""),
                         "Normal" if entry["phase"] == "Validated" else "Warning")
                return "trainingpipeline"
            return None
        # Batch inference: the last run, as reported.
        last = {"job": meta["name"], "succeeded": bool(succeeded and (result or {}).get("ok", True)),
                "finishedAt": (result or {}).get("finishedAt") or finished_at}
        for k in ("rowsScored", "rowsWritten", "outputUri", "error", "reason"):
            if (result or {}).get(k) is not None:
                last[k] = result[k]
        if rt.update_status(plural, owner, lambda b: {"lastRun": last}) is not None:
            return "inferenceservice"
        return None
