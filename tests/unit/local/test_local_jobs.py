"""The local Job and CronJob controllers write what kube-controller-manager and the kubelet write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fti_operator.local.jobs import LOG_ANNOTATION, CronJobs, JobController, due, job_for, trigger
from fti_operator.local.memkube import MemKube
from fti_operator.reconcile.results import job_finished, job_finished_at, termination_result

T0 = datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def job_manifest(name: str = "train-v1", backoff: int = 1, ttl: int | None = None) -> dict:
    spec: dict = {
        "backoffLimit": backoff,
        "template": {
            "metadata": {"labels": {"fti.dev/resource": "fraud"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "pipeline", "image": "fti-training:1"}]},
        },
    }
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "labels": {"fti.dev/resource": "fraud"}},
        "spec": spec,
    }


def cronjob_manifest(schedule: str = "0 * * * *", policy: str = "Forbid") -> dict:
    job = job_manifest()
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "fg", "namespace": "ns"},
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": policy,
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 2,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"labels": {"fti.dev/fg-version": "3"}, "annotations": {"fti.dev/revision": "1"}},
                "spec": job["spec"],
            },
        },
    }


def scripted(*outcomes: tuple[int, str]):
    """A run_pod that returns the given outcomes in order and records the pods it was given."""
    seen: list[dict] = []

    def run_pod(pod: dict) -> tuple[int, str, str]:
        seen.append(pod)
        code, message = outcomes[len(seen) - 1]
        return code, message, f"/logs/{pod['metadata']['name']}.log"

    return run_pod, seen


def test_a_job_gets_a_labelled_owned_pod_and_completes() -> None:
    kube, clock = MemKube(), Clock()
    result = json.dumps({"ok": True, "verdict": "Validated"})
    run_pod, seen = scripted((0, result))
    jobs = JobController(kube, run_pod, clock)
    job = kube.create(job_manifest())
    clock.now = T0 + timedelta(seconds=42)
    assert jobs.step() == 1
    pod = seen[0]
    assert pod["metadata"]["name"].startswith("train-v1-")
    assert pod["metadata"]["labels"] == {
        "fti.dev/resource": "fraud",
        "batch.kubernetes.io/job-name": "train-v1",
        "job-name": "train-v1",
        "batch.kubernetes.io/controller-uid": job["metadata"]["uid"],
        "controller-uid": job["metadata"]["uid"],
    }
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "train-v1",
            "uid": job["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert pod["status"]["phase"] == "Running"

    done = kube.get("batch/v1", "jobs", "ns", "train-v1")
    assert job_finished(done) is True
    st = done["status"]
    assert st["succeeded"] == 1 and "failed" not in st and "active" not in st
    assert st["startTime"] == "2026-12-04T16:00:42Z" and st["completionTime"] == "2026-12-04T16:00:42Z"
    assert [(c["type"], c["status"], c["reason"]) for c in st["conditions"]] == [
        ("SuccessCriteriaMet", "True", "CompletionsReached"),
        ("Complete", "True", "CompletionsReached"),
    ]
    assert job_finished_at(done) == "2026-12-04T16:00:42Z"

    pods = kube.list("v1", "pods", "ns", "job-name=train-v1")
    assert pods[0]["status"]["phase"] == "Succeeded"
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["finishedAt"]) == (0, "Completed", "2026-12-04T16:00:42Z")
    assert termination_result(pods) == {"ok": True, "verdict": "Validated"}
    assert pods[0]["metadata"]["annotations"][LOG_ANNOTATION] == f"/logs/{pods[0]['metadata']['name']}.log"
    assert jobs.step() == 0, "a finished Job runs nothing more"


def test_a_failing_job_is_retried_up_to_its_backoff_limit_then_failed() -> None:
    kube = MemKube()
    run_pod, seen = scripted((1, "boom 1"), (2, "not json"))
    jobs = JobController(kube, run_pod)
    kube.create(job_manifest(backoff=1))
    assert jobs.step() == 1
    assert job_finished(kube.get("batch/v1", "jobs", "ns", "train-v1")) is None, "one retry left"
    assert jobs.step() == 1
    failed = kube.get("batch/v1", "jobs", "ns", "train-v1")
    st = failed["status"]
    assert job_finished(failed) is False and st["failed"] == 2 and "completionTime" not in st
    assert [(c["type"], c["reason"]) for c in st["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert job_finished_at(failed) == st["conditions"][1]["lastTransitionTime"]
    pods = kube.list("v1", "pods", "ns", "job-name=train-v1")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    term = pods[1]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (2, "Error", "not json")
    assert termination_result(pods)["reason"] == "PipelineCrashed"
    assert jobs.step() == 0 and len(seen) == 2


def test_an_empty_termination_message_is_left_out_and_suspended_jobs_wait() -> None:
    kube = MemKube()
    run_pod, _ = scripted((0, ""))
    jobs = JobController(kube, run_pod)
    suspended = job_manifest("held")
    suspended["spec"]["suspend"] = True
    kube.create(suspended)
    assert jobs.step() == 0
    kube.patch("batch/v1", "jobs", "ns", "held", {"spec": {"suspend": False}})
    assert jobs.step() == 1
    pod = kube.list("v1", "pods", "ns", "job-name=held")[0]
    assert "message" not in pod["status"]["containerStatuses"][0]["state"]["terminated"]


def test_finished_jobs_and_their_pods_go_after_the_ttl() -> None:
    kube, clock = MemKube(), Clock()
    jobs = JobController(kube, scripted((0, "{}"))[0], clock)
    kube.create(job_manifest(ttl=60))
    jobs.step()
    clock.now = T0 + timedelta(seconds=59)
    assert jobs.expire() == 0
    clock.now = T0 + timedelta(seconds=60)
    assert jobs.expire() == 1
    assert kube.list("batch/v1", "jobs", "ns") == [] and kube.list("v1", "pods", "ns") == []


def test_cronjob_trigger_creates_the_job_a_scheduler_would() -> None:
    kube = MemKube()
    cj = kube.create(cronjob_manifest())
    now = datetime(2026, 12, 4, 17, 0, 30, tzinfo=UTC)
    job = trigger(kube, cj, now)
    minutes = int(datetime(2026, 12, 4, 17, 0, tzinfo=UTC).timestamp() // 60)
    assert job["metadata"]["name"] == f"fg-{minutes}"
    assert job["metadata"]["labels"] == {"fti.dev/fg-version": "3"}
    assert job["metadata"]["annotations"] == {
        "fti.dev/revision": "1",
        "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-12-04T17:00:00Z",
    }
    assert job["metadata"]["ownerReferences"][0] == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": "fg",
        "uid": cj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert job["spec"] == cj["spec"]["jobTemplate"]["spec"]
    assert job_for(cj, now.replace(second=0))["metadata"]["name"] == job["metadata"]["name"]
    status = kube.get("batch/v1", "cronjobs", "ns", "fg")["status"]
    assert status["lastScheduleTime"] == "2026-12-04T17:00:00Z"
    assert [a["name"] for a in status["active"]] == [job["metadata"]["name"]]
    # Forbid: no second run while the first goes on.
    assert trigger(kube, cj, now + timedelta(hours=1)) is None
    # Deleting the CronJob takes its Jobs with it (garbage collection).
    kube.delete("batch/v1", "cronjobs", "ns", "fg")
    assert kube.list("batch/v1", "jobs", "ns") == []


def test_cronjob_runs_when_due_and_keeps_its_history_limits() -> None:
    kube, clock = MemKube(clock=lambda: T0), Clock()
    cj = kube.create(cronjob_manifest(schedule="*/10 * * * *"))
    assert due(cj, T0 + timedelta(minutes=9)) is None
    assert due(cj, T0 + timedelta(minutes=10)) == T0 + timedelta(minutes=10)
    assert due(cj, T0 + timedelta(minutes=20)) == T0 + timedelta(minutes=20), "the latest of the missed runs"
    assert due(cj, T0 + timedelta(minutes=26)) is None, "missed by more than startingDeadlineSeconds"
    assert due({**cj, "spec": {**cj["spec"], "suspend": True}}, T0 + timedelta(minutes=10)) is None

    cronjobs = CronJobs(kube, clock)
    jobs = JobController(kube, scripted(*[(0, "{}")] * 4)[0], clock)
    for i in range(1, 5):
        clock.now = T0 + timedelta(minutes=10 * i, seconds=i)
        assert len(cronjobs.step()) == 1 and cronjobs.step() == []
        jobs.step()
    names = [j["metadata"]["name"] for j in kube.list("batch/v1", "jobs", "ns")]
    assert len(names) == 2, "successfulJobsHistoryLimit: 2"
    status = kube.get("batch/v1", "cronjobs", "ns", "fg")["status"]
    assert "active" not in status and status["lastSuccessfulTime"] == "2026-12-04T16:40:04Z"
    assert names == [f"fg-{int((T0 + timedelta(minutes=m)).timestamp() // 60)}" for m in (30, 40)]


def test_a_pod_left_running_by_an_earlier_process_is_failed_and_retried() -> None:
    kube = MemKube()
    kube.create(job_manifest(backoff=1))
    started = JobController(kube, scripted()[0]).start(kube.get("batch/v1", "jobs", "ns", "train-v1"))
    assert started["status"]["phase"] == "Running"
    # A new process: its controller did not start that pod, so nothing will ever finish it.
    run_pod, _ = scripted((0, "{}"))
    assert JobController(kube, run_pod).step() == 1
    phases = {p["metadata"]["name"]: p["status"]["phase"] for p in kube.list("v1", "pods", "ns")}
    assert phases[started["metadata"]["name"]] == "Failed" and sorted(phases.values()) == ["Failed", "Succeeded"]
    done = kube.get("batch/v1", "jobs", "ns", "train-v1")
    assert job_finished(done) is True and done["status"]["failed"] == 1 and done["status"]["succeeded"] == 1


def test_the_feature_reconciler_runs_on_memkube_and_reads_a_local_run() -> None:
    """The pieces together with the real reconciler: its children, a scheduled run, the status it reads
    from that run — and a reconcile with nothing new writes nothing."""
    from pathlib import Path

    import yaml

    from fti_operator.config import OperatorConfig
    from fti_operator.local.lookups import ScanLookups
    from fti_operator.reconcile import Context, feature

    example = Path(__file__).resolve().parents[3] / "examples" / "fraud" / "feature-pipeline-transactions.yaml"
    kube, clock = MemKube(clock=lambda: T0), Clock()
    ctx = Context(kube, ScanLookups(kube), OperatorConfig.from_env({}), clock=clock)
    kube.apply(yaml.safe_load(example.read_text()), field_manager="kubectl")

    def reconcile() -> int:
        before = kube.writes()
        feature.reconcile(ctx, kube.get("fti.dev/v1alpha1", "featurepipelines", "fraud", "card-transactions"))
        return kube.writes() - before

    assert reconcile() > 0
    assert reconcile() == 0, "a no-change reconcile writes nothing"
    cronjob = kube.list("batch/v1", "cronjobs", "fraud")[0]
    run_pod, _ = scripted((0, json.dumps({"ok": True, "rowsWritten": 5, "rowsRejected": 1})))
    clock.now = T0 + timedelta(minutes=15)
    assert [j["metadata"]["name"] for j in CronJobs(kube, clock).step()] == [
        f"{cronjob['metadata']['name']}-{int(clock.now.timestamp() // 60)}"
    ]
    assert JobController(kube, run_pod, clock).step() == 1
    assert reconcile() > 0
    status = kube.get("fti.dev/v1alpha1", "featurepipelines", "fraud", "card-transactions")["status"]
    assert status["versions"][0]["lastRun"]["rowsWritten"] == 5
    assert {c["type"]: c["status"] for c in status["conditions"]}["Materialized"] == "True"
    assert reconcile() == 0
