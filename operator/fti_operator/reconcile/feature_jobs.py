"""The Jobs a FeaturePipeline starts from an older version's CronJob: re-materialising it, dropping its online data.

Both are made from the version's own CronJob, as `kubectl create job --from=cronjob/...`
makes them: its pod is the one that wrote the version, with the spec (FTI_SPEC) naming it
and the stores and credentials of every run, so the operator needs no store credentials
of its own (docs/pipeline-contract.md). Both are named after the suspended CronJob's
resourceVersion, so a reconcile repeated after a crash makes the same call and finds the
Job, and a version brought back and retired again gets a new one.

- **Re-materialising** (docs/versions.md, "Rollback brings the pair back whole"): a run of
  the version's pipeline, which writes the version's online copy again from its offline
  snapshots when the online store lacks it.
- **Dropping the online data** (docs/versions.md, "Retired"): the same pod running
  `python -m fti_pipelines.feature.drop_online`, which deletes the version's online keys
  and reports what it deleted. Started only once the version is Retired and its CronJob
  was already suspended by an earlier reconcile (which asks for the next one
  DROP_AFTER_SECONDS later), when status says the version is in the
  online store and no Job of the version is running; from then on the version's `online`
  is false, so no revision starts reading it while it goes. The two never overlap: a drop waits
  for a running run of the version, and a re-materialising run waits for a running drop,
  so a drop never lands after the version was written again. A drop that failed (the store
  was unreachable, the pod was evicted) is tried again DROP_RETRY_SECONDS after it ended, by a
  Job of its own named after the failed one, as long as the version is still Retired: its
  online keys are not left behind for good, and each attempt's result is recorded.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..api.identity import ANNOTATION_TRIGGER
from ..render.pods import child_name
from .results import MAX_MESSAGE, job_finished

TRIGGER_REMATERIALIZE = "rematerialize"
TRIGGER_DROP = "drop-online"
DROP_MODULE = "fti_pipelines.feature.drop_online"
# The reconcile that suspends a retired version's CronJob asks for another this much later
# (nothing else may come: the CronJob's own change does not queue its owner); that one drops
# the online data if the version is still Retired then.
DROP_AFTER_SECONDS = 10.0
# A failed drop is tried again this long after it ended (a fixed pace: each failure is a
# Warning Event, and a store that is down for hours should not make more of them than that).
DROP_RETRY_SECONDS = 600.0


def trigger_of(job: Mapping[str, Any]) -> str | None:
    return ((job.get("metadata") or {}).get("labels") or {}).get(ANNOTATION_TRIGGER)


def job_from_cronjob(cronjob: Mapping[str, Any], suffix: str, trigger: str = TRIGGER_REMATERIALIZE) -> dict[str, Any]:
    """A Job from a CronJob's template, as `kubectl create job --from=cronjob/...` makes it (pure)."""
    meta = cronjob["metadata"]
    template = cronjob["spec"]["jobTemplate"]
    labels = {**((template.get("metadata") or {}).get("labels") or {}), ANNOTATION_TRIGGER: trigger}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": child_name(meta["name"], suffix),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": list(meta.get("ownerReferences") or []),
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def rematerialize_job(cronjob: Mapping[str, Any]) -> dict[str, Any]:
    return job_from_cronjob(cronjob, f"remat-{cronjob['metadata']['resourceVersion']}")


def drop_job(cronjob: Mapping[str, Any], failed: str | None = None) -> dict[str, Any]:
    """The Job that drops a retired version's online data: its CronJob's pod, running the drop (pure).

    failed: the Job of the attempt that failed, if this is a retry; the retry's name derives
    from it, so a reconcile repeated after a crash finds the same retry, and its result is
    read as a new one (status records results by Job name)."""
    suffix = f"drop-{cronjob['metadata']['resourceVersion']}"
    if failed:
        suffix += "-" + hashlib.sha256(failed.encode()).hexdigest()[:6]
    job = job_from_cronjob(cronjob, suffix, TRIGGER_DROP)
    pipeline = job["spec"]["template"]["spec"]["containers"][0]
    pipeline["command"] = ["python", "-m", DROP_MODULE]
    pipeline.pop("args", None)
    return job


def busy_versions(
    jobs: Iterable[Mapping[str, Any]], version_of: Callable[[Mapping[str, Any]], int | None]
) -> dict[int, set[str]]:
    """version -> the triggers of its Jobs still running ("" for a scheduled or run-once run)."""
    out: dict[int, set[str]] = {}
    for job in jobs:
        if job_finished(job) is None and (v := version_of(job)) is not None:
            out.setdefault(v, set()).add(trigger_of(job) or "")
    return out


def should_drop(state: str, suspended_by_us: bool, online: bool | None, busy: bool, retry_in: float | None = None) -> bool:
    """Whether a version's online data is to be dropped now (pure; see the module docstring).

    retry_in: from `drop_retry_in`; 0 when a failed drop is due to be tried again."""
    return state == "Retired" and suspended_by_us and not busy and (online is True or retry_in == 0)


def drop_retry_in(last_drop: Mapping[str, Any] | None, now: datetime) -> float | None:
    """Seconds until a failed drop is tried again (0: now), None when the last drop did not fail (pure)."""
    if not last_drop or last_drop.get("succeeded") is not False:
        return None
    try:  # status is ours, but it can be edited: an unreadable time must not stop the reconcile
        ended = datetime.fromisoformat(str(last_drop.get("finishedAt") or ""))
    except ValueError:
        return 0.0
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)
    return max(0.0, DROP_RETRY_SECONDS - (now - ended).total_seconds())


def online_drop(job_name: str, succeeded: bool, result: Mapping[str, Any] | None, finished_at: str | None) -> dict[str, Any]:
    """FeaturePipeline status.versions[].onlineDrop (OnlineDrop, camelCase), from the drop Job's result."""
    result = result or {}
    ok = succeeded and bool(result.get("ok", succeeded))
    entry: dict[str, Any] = {"job": job_name, "succeeded": ok}
    if result.get("onlineKeysDropped") is not None:
        entry["keysDropped"] = int(result["onlineKeysDropped"])
    if result.get("error"):
        entry["message"] = (f"{result['reason']}: " if result.get("reason") else "") + str(result["error"])[:MAX_MESSAGE]
    elif not result:
        entry["message"] = "no result in the termination message"
    finished = result.get("finishedAt") or finished_at
    if finished:
        entry["finishedAt"] = finished
    return entry
