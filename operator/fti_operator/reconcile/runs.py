"""Finished Jobs -> results, read by the reconciler of the Job's owner.

A pipeline pod reports one JSON object in its termination message (docs/pipeline-contract.md);
the owner's reconcile lists its Jobs, takes the newest finished one per feature-group
version / model version / batch schedule, and reads that Job's pods — only when the run is
not yet recorded in status, so a settled object costs no pod read. Recording the result in
the same status write as everything else means one writer per status field and one write
per finished run (docs/architecture.md, "Runs").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..render.pods import JOB_NAME_LABEL
from .kube import Kube
from .results import job_finished, job_finished_at, termination_result


@dataclass(frozen=True)
class FinishedRun:
    job: str
    succeeded: bool
    result: dict[str, Any] | None
    finished_at: str | None


def newest_finished(
    jobs: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Hashable | None]
) -> dict[Hashable, Mapping[str, Any]]:
    """key -> the most recently created finished Job with that key (Jobs whose key is None are skipped)."""
    out: dict[Hashable, Mapping[str, Any]] = {}
    for job in jobs:
        k = key(job)
        if k is None or job_finished(job) is None:
            continue
        best = out.get(k)
        if best is None or _created(job) >= _created(best):
            out[k] = job
    return out


def _created(job: Mapping[str, Any]) -> tuple[str, str]:
    meta = job.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def read_run(kube: Kube, job: Mapping[str, Any]) -> FinishedRun:
    """The result of a finished Job: its pods' termination message (one LIST of its pods)."""
    meta = job["metadata"]
    succeeded = bool(job_finished(job))
    pods = kube.list("v1", "pods", meta["namespace"], f"{JOB_NAME_LABEL}={meta['name']}")
    return FinishedRun(meta["name"], succeeded, termination_result(pods), job_finished_at(job))
