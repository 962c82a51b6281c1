"""Pipeline results (termination-message JSON) -> status, for the embedded runner.

The shapes are the kinds' status models (fti_operator.api), so a local status reads
like the one the operator writes in a cluster.
"""

from __future__ import annotations

from typing import Any

from ..conditions import condition, merge_conditions, ready_rollup
from ..render.inference import ResolvedPair
from .kubelet import ContainerRun


def _iso(ts: Any) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _conditions(entry: dict[str, Any], ready: dict[str, Any]) -> list[dict[str, Any]]:
    generation = entry["metadata"].get("generation")
    return merge_conditions((entry.get("status") or {}).get("conditions"), [ready], generation)


def feature_status(entry: dict[str, Any], job: str, run: ContainerRun, result: dict[str, Any]) -> dict[str, Any]:
    status = dict(entry.get("status") or {})
    version = entry["spec"]["featureGroup"]["version"]
    last_run = {
        "job": job,
        "succeeded": bool(result.get("ok")),
        "rowsWritten": result.get("rowsWritten"),
        "rowsRejected": result.get("rowsRejected"),
        "watermark": result.get("watermark"),
        "quarantineUri": result.get("quarantineUri"),
        "message": result.get("error"),
        "finishedAt": _iso(run.finished_at),
    }
    versions = [v for v in status.get("versions", []) if v["version"] != version]
    for v in versions:
        v["state"] = "Retained" if v.get("state") == "Active" else v.get("state", "Retained")
    versions.insert(0, {"version": version, "state": "Active", "lastRun": {k: v for k, v in last_run.items() if v is not None}})
    ok = bool(result.get("ok"))
    ready = condition("Ready", ok, "Materialized" if ok else result.get("reason", "RunFailed"),
                      f"v{version}: {result.get('rowsWritten', 0)} rows written, {result.get('rowsRejected', 0)} rejected"
                      if ok else str(result.get("error", ""))[:500])
    status.update(observedGeneration=entry["metadata"].get("generation"), versions=versions,
                  conditions=_conditions(entry, ready))
    return status


def training_status(entry: dict[str, Any], version: int, job: str, training_hash: str, run: ContainerRun,
                    result: dict[str, Any]) -> dict[str, Any]:
    status = dict(entry.get("status") or {})
    ok = bool(result.get("ok"))
    phase = result.get("verdict") if ok and result.get("verdict") in ("Validated", "Rejected") else "Failed"
    fv = result.get("featureView") or {}
    mv = {
        "version": version,
        "phase": phase,
        "featureView": {"name": fv.get("name"), "version": fv.get("version")} if fv else None,
        "featureGroups": result.get("featureGroups"),
        "trainingDataset": result.get("trainingDataset"),
        "metrics": result.get("metrics"),
        "storageUri": result.get("storageUri"),
        "job": job,
        "message": "; ".join(result.get("reasons") or []) or result.get("error"),
        "createdAt": _iso(run.finished_at),
        "trainingHash": training_hash,
    }
    versions = [m for m in status.get("modelVersions", []) if m["version"] != version]
    versions.append({k: v for k, v in mv.items() if v is not None})
    validated = [m["version"] for m in versions if m["phase"] == "Validated"]
    reason = {"Validated": "ModelValidated", "Rejected": "ModelRejected"}.get(phase, result.get("reason", "TrainingFailed"))
    message = f"v{version} {phase.lower()}" + (f": {mv['message']}" if mv["message"] else "")
    ready = condition("Ready", bool(validated), reason, message[:500])
    status.update(observedGeneration=entry["metadata"].get("generation"), modelVersions=versions,
                  latestValidatedVersion=max(validated) if validated else None, conditions=_conditions(entry, ready))
    return {k: v for k, v in status.items() if v is not None}


def _revision(pair: ResolvedPair, traffic: int | None = 100) -> dict[str, Any]:
    return {"revision": pair.revision, "model": pair.model_version, "featureView": pair.feature_view_version, "traffic": traffic}


def _history(status: dict[str, Any], pair: ResolvedPair) -> list[dict[str, Any]]:
    history = list(status.get("history") or [])
    serving = status.get("serving")
    if serving and serving.get("revision") != pair.revision:
        history.insert(0, {k: v for k, v in serving.items() if k != "traffic"})
    return history


def online_status(entry: dict[str, Any], pair: ResolvedPair, url: str) -> dict[str, Any]:
    status = dict(entry.get("status") or {})
    message = f"model {pair.model_version} / feature view {pair.feature_view_version}"
    status.update(observedGeneration=entry["metadata"].get("generation"), url=url, serving=_revision(pair),
                  history=_history(status, pair),
                  conditions=_conditions(entry, ready_rollup([], "Serving", message)))
    return status


def batch_status(entry: dict[str, Any], pair: ResolvedPair, job: str, run: ContainerRun, result: dict[str, Any]) -> dict[str, Any]:
    status = dict(entry.get("status") or {})
    ok = bool(result.get("ok"))
    ready = condition("Ready", ok, "BatchScored" if ok else result.get("reason", "RunFailed"),
                      f"{result.get('rowsScored', 0)} rows scored with model {pair.model_version} / feature view "
                      f"{pair.feature_view_version}" if ok else str(result.get("error", ""))[:500])
    status.update(observedGeneration=entry["metadata"].get("generation"), serving=_revision(pair, None),
                  history=_history(status, pair),
                  lastRun={"job": job, "succeeded": ok, "finishedAt": _iso(run.finished_at),
                           **{k: result[k] for k in ("rowsScored", "outputUri", "error") if k in result}},
                  conditions=_conditions(entry, ready))
    return status
