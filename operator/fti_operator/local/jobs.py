"""The part of kube-controller-manager `fti local` needs: the Job and CronJob controllers.

The reconcilers read a run's outcome from the Job's conditions and its pod's termination
message (`fti_operator.reconcile.results`), so the objects written here have the shapes
kube-controller-manager v1.35 and the kubelet write: a pod per attempt named
`<job>-<suffix>` with the Job's labels (`batch.kubernetes.io/job-name`, `controller-uid`, ...)
and a controller reference, `containerStatuses[].state.terminated` with exitCode, reason,
message and finishedAt, and on the Job `startTime`, `completionTime`, `succeeded`/`failed`
and the condition pairs `SuccessCriteriaMet`+`Complete` or `FailureTarget`+`Failed`
(BackoffLimitExceeded). A failed pod is retried with a new pod until `backoffLimit`; finished
Jobs go after `ttlSecondsAfterFinished`; CronJobs keep `successful/failedJobsHistoryLimit`.

Processes are not started here: a `run_pod(pod) -> (exit_code, termination_message, log_path)`
callable does that (the local kubelet). Runs are synchronous; a driver that wants them in
the background calls `start` and later `finish` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from ..reconcile.kube import ApiError, Kube
from ..reconcile.results import job_finished
from .memkube import utcnow
from .objects import rfc3339

RunPod = Callable[[dict[str, Any]], tuple[int, str, "str | Path | None"]]

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# Local only (no kubelet writes it): where the local kubelet put the pod's log, for `fti local logs`.
LOG_ANNOTATION = "local.fti.dev/log-path"
NODE_NAME = "fti-local"
DEFAULT_BACKOFF_LIMIT = 6  # the Job API's default
COMPLETE_MESSAGE = "Reached expected number of succeeded pods"
FAILED_MESSAGE = "Job has reached the specified backoff limit"
LOST_EXIT_CODE = 255
LOST_MESSAGE = "pod lost: the fti local process that ran it ended before it finished"


def controller_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def job_pod(job: Mapping[str, Any]) -> dict[str, Any]:
    """The pod manifest the Job controller creates for one attempt of `job` (pure)."""
    meta, template = job["metadata"], (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    labels = {
        **(tmeta.get("labels") or {}),
        **dict.fromkeys(JOB_NAME_LABELS, meta["name"]),
        **dict.fromkeys(UID_LABELS, meta["uid"]),
    }
    pod_meta: dict[str, Any] = {
        "generateName": f"{meta['name']}-",
        "namespace": meta.get("namespace"),
        "labels": labels,
        "ownerReferences": [controller_ref(job)],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": {**(template.get("spec") or {}), "nodeName": NODE_NAME},
    }


def terminated_status(pod: Mapping[str, Any], exit_code: int, message: str, started_at: str, finished_at: str) -> dict[str, Any]:
    """The pod status the kubelet writes once its containers ended (pure). The run's result is
    the first container's; other containers are reported with the same exit code and no message."""
    statuses = []
    for i, container in enumerate((pod.get("spec") or {}).get("containers") or []):
        term: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started_at,
            "finishedAt": finished_at,
            "containerID": f"local://{pod['metadata']['name']}/{container.get('name')}",
        }
        if i == 0 and message:  # the kubelet leaves an empty termination message out
            term["message"] = message
        statuses.append(
            {
                "name": container.get("name"),
                "image": container.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": term},
            }
        )
    return {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": statuses}


def job_condition(type_: str, reason: str, message: str, at: str) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message, "lastProbeTime": at, "lastTransitionTime": at}


class JobController:
    """Jobs -> pods -> Job status, as kube-controller-manager's Job and TTL controllers do it."""

    def __init__(self, kube: Kube, run_pod: RunPod, clock: Callable[[], datetime] = utcnow):
        self.kube, self.run_pod, self.clock = kube, run_pod, clock
        self._started: set[str] = set()  # uids of the pods this controller started (and may still run)

    def pods_of(self, job: Mapping[str, Any]) -> list[dict[str, Any]]:
        meta = job["metadata"]
        return self.kube.list("v1", "pods", meta.get("namespace"), f"{UID_LABELS[0]}={meta['uid']}")

    def start(self, job: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create the next attempt's pod, marked Running; None when the Job is finished, suspended
        or already has a running pod."""
        spec, meta = job.get("spec") or {}, job["metadata"]
        if job_finished(job) is not None or spec.get("suspend") or meta.get("deletionTimestamp"):
            return None
        unfinished = [p for p in self.pods_of(job) if (p.get("status") or {}).get("phase") in (None, "Pending", "Running")]
        if any(p["metadata"]["uid"] in self._started for p in unfinished):
            return None
        for lost in unfinished:  # started by an earlier process, which is gone: a lost node's pods fail
            self.finish(lost, LOST_EXIT_CODE, LOST_MESSAGE)
            job = self.kube.get("batch/v1", "jobs", meta.get("namespace"), meta["name"]) or job
            if job_finished(job) is not None:
                return None
        now = rfc3339(self.clock())
        pod = self.kube.create(job_pod(job))
        self._started.add(pod["metadata"]["uid"])
        running = [
            {
                "name": c.get("name"),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in (pod.get("spec") or {}).get("containers") or []
        ]
        pod = self.kube.patch(
            "v1",
            "pods",
            meta.get("namespace"),
            pod["metadata"]["name"],
            {
                "status": {
                    "phase": "Running",
                    "startTime": now,
                    "hostIP": "127.0.0.1",
                    "podIP": "127.0.0.1",
                    "containerStatuses": running,
                }
            },
            subresource="status",
        )
        status = job.get("status") or {}
        self.kube.patch(
            "batch/v1",
            "jobs",
            meta.get("namespace"),
            meta["name"],
            {
                "status": {
                    "startTime": status.get("startTime") or now,
                    "active": 1,
                    "ready": 1,
                    "terminating": 0,
                    "uncountedTerminatedPods": {},
                }
            },
            subresource="status",
        )
        return pod

    def finish(
        self, pod: Mapping[str, Any], exit_code: int, message: str, log_path: str | Path | None = None
    ) -> dict[str, Any] | None:
        """Record the end of `pod`'s containers on the pod and on its Job; returns the Job (None if gone)."""
        pmeta = pod["metadata"]
        self._started.discard(pmeta["uid"])
        ns, now = pmeta.get("namespace"), rfc3339(self.clock())
        started = ((pod.get("status") or {}).get("startTime")) or now
        if log_path is not None:
            self.kube.patch("v1", "pods", ns, pmeta["name"], {"metadata": {"annotations": {LOG_ANNOTATION: str(log_path)}}})
        try:
            self.kube.patch(
                "v1",
                "pods",
                ns,
                pmeta["name"],
                {"status": terminated_status(pod, exit_code, message, started, now)},
                subresource="status",
            )
        except ApiError as exc:
            if not exc.not_found:
                raise
        ref = controller_of(pod)
        job = self.kube.get("batch/v1", "jobs", ns, ref["name"]) if ref else None
        if job is None:
            return None
        phases = [(p.get("status") or {}).get("phase") for p in self.pods_of(job)]
        spec = job.get("spec") or {}
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        status: dict[str, Any] = {
            "active": None,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "succeeded": succeeded or None,
            "failed": failed or None,
        }
        if succeeded >= int(spec.get("completions") or 1):
            status["completionTime"] = now
            status["conditions"] = [
                job_condition(t, "CompletionsReached", COMPLETE_MESSAGE, now) for t in ("SuccessCriteriaMet", "Complete")
            ]
        elif failed > int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)):
            status["conditions"] = [
                job_condition(t, "BackoffLimitExceeded", FAILED_MESSAGE, now) for t in ("FailureTarget", "Failed")
            ]
        job = self.kube.patch("batch/v1", "jobs", ns, job["metadata"]["name"], {"status": status}, subresource="status")
        if job_finished(job) is not None:
            CronJobs(self.kube, self.clock).job_finished(job)
        return job

    def run(self, job: Mapping[str, Any]) -> bool:
        """One attempt of `job`, synchronously; False when it had nothing to run."""
        pod = self.start(job)
        if pod is None:
            return False
        exit_code, message, log_path = self.run_pod(pod)
        self.finish(pod, exit_code, message, log_path)
        return True

    def step(self) -> int:
        """Run one attempt of every Job that needs one, then expire finished Jobs; returns pods run."""
        ran = sum(self.run(job) for job in self.kube.list("batch/v1", "jobs", None))
        self.expire()
        return ran

    def expire(self) -> int:
        """The TTL-after-finished controller: delete finished Jobs older than their TTL."""
        now, gone = self.clock(), 0
        for job in self.kube.list("batch/v1", "jobs", None):
            ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
            finished = _finished_at(job)
            if ttl is not None and finished and finished + timedelta(seconds=int(ttl)) <= now:
                self.kube.delete("batch/v1", "jobs", job["metadata"].get("namespace"), job["metadata"]["name"])
                gone += 1
        return gone


def _parse(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def _finished_at(job: Mapping[str, Any]) -> datetime | None:
    if job_finished(job) is None:
        return None
    st = job.get("status") or {}
    return _parse(
        st.get("completionTime")
        or next((c.get("lastTransitionTime") for c in st.get("conditions") or [] if c.get("type") == "Failed"), None)
    )


def job_for(cronjob: Mapping[str, Any], scheduled: datetime) -> dict[str, Any]:
    """The Job the CronJob controller creates for the run scheduled at `scheduled` (pure)."""
    meta, template = cronjob["metadata"], (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    minutes = int(scheduled.timestamp() // 60)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{meta['name']}-{minutes}",
            "namespace": meta.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: rfc3339(scheduled)},
            "ownerReferences": [controller_ref(cronjob)],
        },
        "spec": dict(template.get("spec") or {}),
    }


def trigger(kube: Kube, cronjob: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """Start the CronJob's run for `now` (its minute); None when concurrencyPolicy Forbid holds it
    back because a run is still going. A run already created for that minute is returned as is."""
    meta, spec = cronjob["metadata"], cronjob.get("spec") or {}
    ns = meta.get("namespace")
    active = [j for j in _jobs_of(kube, cronjob) if job_finished(j) is None]
    if active and spec.get("concurrencyPolicy") == "Forbid":
        return None
    scheduled = now.astimezone(UTC).replace(second=0, microsecond=0)
    desired = job_for(cronjob, scheduled)
    try:
        job = kube.create(desired)
    except ApiError as exc:
        if not exc.conflict:
            raise
        return kube.get("batch/v1", "jobs", ns, desired["metadata"]["name"])
    refs = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": j["metadata"]["name"],
            "namespace": ns,
            "uid": j["metadata"]["uid"],
            "resourceVersion": j["metadata"]["resourceVersion"],
        }
        for j in [*active, job]
    ]
    kube.patch(
        "batch/v1",
        "cronjobs",
        ns,
        meta["name"],
        {"status": {"active": refs, "lastScheduleTime": rfc3339(scheduled)}},
        subresource="status",
    )
    return job


def _jobs_of(kube: Kube, cronjob: Mapping[str, Any]) -> list[dict[str, Any]]:
    uid = cronjob["metadata"]["uid"]
    return [
        j
        for j in kube.list("batch/v1", "jobs", cronjob["metadata"].get("namespace"))
        if (controller_of(j) or {}).get("uid") == uid
    ]


def due(cronjob: Mapping[str, Any], now: datetime) -> datetime | None:
    """The latest scheduled time in (last schedule, now], if a run is due and not too late for
    `startingDeadlineSeconds`; None when suspended or nothing is due."""
    spec, meta = cronjob.get("spec") or {}, cronjob["metadata"]
    if spec.get("suspend") or meta.get("deletionTimestamp"):
        return None
    zone = ZoneInfo(spec.get("timeZone") or "UTC")
    since = _parse((cronjob.get("status") or {}).get("lastScheduleTime") or meta.get("creationTimestamp"))
    since = since or now
    # croniter's get_prev is strictly before its start: a run scheduled at exactly `now` is due.
    latest = croniter(spec["schedule"], now.astimezone(zone) + timedelta(seconds=1)).get_prev(datetime)
    if latest <= since.astimezone(zone):
        return None
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and (now - latest).total_seconds() > int(deadline):
        return None
    return latest.astimezone(UTC)


class CronJobs:
    """The CronJob controller: start due runs, keep `status.active`, trim the run history."""

    def __init__(self, kube: Kube, clock: Callable[[], datetime] = utcnow):
        self.kube, self.clock = kube, clock

    def step(self) -> list[dict[str, Any]]:
        """Trigger every CronJob that is due now; returns the Jobs created."""
        now, started = self.clock(), []
        for cj in self.kube.list("batch/v1", "cronjobs", None):
            when = due(cj, now)
            if when is not None and (job := trigger(self.kube, cj, when)) is not None:
                started.append(job)
        return started

    def job_finished(self, job: Mapping[str, Any]) -> None:
        """A Job of a CronJob ended: drop it from `status.active`, record success, trim history."""
        ref = controller_of(job)
        ns = job["metadata"].get("namespace")
        cronjob = self.kube.get("batch/v1", "cronjobs", ns, ref["name"]) if ref and ref.get("kind") == "CronJob" else None
        if cronjob is None or ref is None or cronjob["metadata"]["uid"] != ref.get("uid"):
            return
        jobs = _jobs_of(self.kube, cronjob)
        status: dict[str, Any] = {
            "active": [a for a in (cronjob.get("status") or {}).get("active") or [] if a.get("uid") != job["metadata"]["uid"]]
            or None
        }
        if job_finished(job):
            status["lastSuccessfulTime"] = (job.get("status") or {}).get("completionTime")
        self.kube.patch("batch/v1", "cronjobs", ns, cronjob["metadata"]["name"], {"status": status}, subresource="status")
        spec = cronjob.get("spec") or {}
        for ok, limit in ((True, spec.get("successfulJobsHistoryLimit", 3)), (False, spec.get("failedJobsHistoryLimit", 1))):
            done = sorted(
                (j for j in jobs if job_finished(j) is ok),
                key=lambda j: _finished_at(j) or datetime.min.replace(tzinfo=UTC),
            )
            for old in done[: max(len(done) - int(limit), 0)]:
                self.kube.delete("batch/v1", "jobs", ns, old["metadata"]["name"])
