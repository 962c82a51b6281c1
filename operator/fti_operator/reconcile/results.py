"""Pipeline results -> status entries.

A finished pipeline pod reports one JSON object in its termination message (the contract
in fti_pipelines/contract.py). The operator reads it from the pod status — never from the
stores, so it needs no store credentials — and turns it into the status of the owner:
a FeaturePipeline version's lastRun, or a TrainingPipeline model version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MAX_MESSAGE = 500


def job_finished(job: Mapping[str, Any]) -> bool | None:
    """True = Complete, False = Failed, None = still running."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return True
        if c.get("status") == "True" and c.get("type") in ("Failed", "FailureTarget"):
            return False
    return None


def job_finished_at(job: Mapping[str, Any]) -> str | None:
    st = job.get("status") or {}
    if st.get("completionTime"):
        return str(st["completionTime"])
    for c in st.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Failed", "Complete") and c.get("lastTransitionTime"):
            return str(c["lastTransitionTime"])
    return None


def termination_result(pods: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The result JSON of the newest terminated pipeline container among a Job's pods.

    A message that is not JSON (a crash before the contract wrapper ran, logged because of
    FallbackToLogsOnError) becomes {ok: false, reason: PipelineCrashed, error: <tail>}.
    """
    best: tuple[str, str] | None = None
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            if term and term.get("message") is not None:
                key = term.get("finishedAt") or ""
                if best is None or key >= best[0]:
                    best = (key, term["message"])
    if best is None:
        return None
    text = best[1].strip()
    try:
        result = json.loads(text)
        if isinstance(result, dict):
            return result
    except json.JSONDecodeError:
        pass
    return {"ok": False, "reason": "PipelineCrashed", "error": text[-MAX_MESSAGE:]}


def _pick(result: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if result.get(k) is not None:
            return result[k]
    return None


def _error_message(result: Mapping[str, Any]) -> str | None:
    if result.get("error"):
        reason = result.get("reason")
        return (f"{reason}: " if reason else "") + str(result["error"])[:MAX_MESSAGE]
    return None


def feature_run(job_name: str, succeeded: bool, result: Mapping[str, Any] | None, finished_at: str | None) -> dict[str, Any]:
    """FeaturePipeline status.versions[].lastRun (RunResult, camelCase)."""
    result = result or {}
    ok = succeeded and bool(result.get("ok", succeeded))
    run: dict[str, Any] = {"job": job_name, "succeeded": ok}
    for out_key, keys in (
        ("rowsRead", ("rowsRead", "rows_read")),
        ("rowsWritten", ("rowsWritten", "rows_written")),
        ("rowsRejected", ("rowsRejected", "rows_rejected")),
        ("rowsTooLate", ("rowsTooLate",)),
        ("onlineRowsWritten", ("onlineRowsWritten",)),
        ("watermark", ("watermark",)),
        ("quarantineUri", ("quarantineUri", "quarantine_uri")),
        ("lateQuarantineUri", ("lateQuarantineUri",)),
    ):
        value = _pick(result, *keys)
        if value is not None:
            run[out_key] = value
    examples = result.get("rejectedExamples")
    if isinstance(examples, list) and examples:
        # what DataQuarantined names (docs/data-quality.md); bounded, as the status field is
        run["rejectedExamples"] = [str(e)[:200] for e in examples[:3]]
    message = (
        _error_message(result)
        or (str(result["message"])[:MAX_MESSAGE] if result.get("message") else None)
        or (None if result else "no result in the termination message")
    )
    if message:
        run["message"] = message
    finished = result.get("finishedAt") or finished_at
    if finished:
        run["finishedAt"] = finished
    return run


def model_version_entry(
    version: int,
    job_name: str,
    succeeded: bool | None,
    result: Mapping[str, Any] | None,
    feature_view: Mapping[str, Any],
    feature_groups: Sequence[Mapping[str, Any]],
    created_at: str | None = None,
) -> dict[str, Any]:
    """TrainingPipeline status.modelVersions[] entry (ModelVersionStatus, camelCase).

    Phase: Training while the Job runs; Validated/Rejected from the result's verdict;
    Failed when the run failed without a verdict.
    """
    entry: dict[str, Any] = {
        "version": version,
        "phase": "Training",
        "job": job_name,
        "featureView": dict(feature_view),
        "featureGroups": [dict(g) for g in feature_groups],
    }
    if created_at:
        entry["createdAt"] = created_at
    if succeeded is None:
        return entry
    result = result or {}
    verdict = result.get("verdict")
    if verdict in ("Validated", "Rejected"):
        entry["phase"] = verdict
    else:
        entry["phase"] = "Failed"
    if result.get("featureView"):
        fv = result["featureView"]
        entry["featureView"] = {
            "name": fv.get("name", feature_view.get("name")),
            "version": int(fv.get("version", feature_view.get("version"))),
        }
    if result.get("featureGroups"):
        entry["featureGroups"] = [{"name": g["name"], "version": int(g["version"])} for g in result["featureGroups"]]
    metrics = result.get("metrics")
    if isinstance(metrics, Mapping):
        entry["metrics"] = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    ds = result.get("trainingDataset")
    if isinstance(ds, Mapping) and ds.get("version") is not None and ds.get("hash"):
        entry["trainingDataset"] = {"version": int(ds["version"]), "hash": str(ds["hash"])}
    if result.get("storageUri"):
        entry["storageUri"] = result["storageUri"]
    if result.get("profileUri"):  # the training profile drift is measured against (docs/monitoring.md)
        entry["profileUri"] = result["profileUri"]
    reasons = result.get("reasons")
    message = _error_message(result) or ("; ".join(map(str, reasons))[:MAX_MESSAGE] if reasons else None)
    if not succeeded and not message:
        message = "training Job failed without a result"
    if message:
        entry["message"] = message
    return entry
