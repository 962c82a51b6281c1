"""Proof that pods run under the real Job, CronJob and garbage-collector
controllers, executed by the test pod runner. No operator involved.
"""

import json
import os

from kubernetes import client
from kubernetes.client.rest import ApiException

from support.wait import wait_until

SHELL = "fti.dev/test/shell"


def _job_template(script: str, backoff_limit: int = 0) -> dict:
    return {
        "backoffLimit": backoff_limit,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": SHELL, "args": [script]}],
            }
        },
    }


def _condition(job: client.V1Job, type_: str):
    return next((c for c in job.status.conditions or [] if c.type == type_ and c.status == "True"), None)


def _pods_of(core: client.CoreV1Api, namespace: str, job_name: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}").items


def test_cronjob_runs_a_job_to_completion_and_is_garbage_collected(k8s, namespace, pod_runner):
    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    # The pipeline contract: a JSON result in the termination message (docs/pipeline-contract.md).
    script = 'echo "running in $POD_NAMESPACE"; printf \'{"rows": 3}\' > "$FTI_TERMINATION_LOG"'
    template = _job_template(script)
    template["template"]["spec"]["containers"][0]["env"] = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "every-minute"},
        # Due within a minute: the real CronJob controller has to start it.
        "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": template}},
    }
    batch.create_namespaced_cron_job(namespace, cronjob)

    job = wait_until(
        lambda: batch.list_namespaced_job(namespace).items, timeout=120, description="the CronJob controller to create a Job"
    )[0]
    assert job.metadata.owner_references[0].kind == "CronJob"
    done = wait_until(
        lambda: _condition(batch.read_namespaced_job(job.metadata.name, namespace), "Complete"),
        timeout=60,
        description=f"Job {job.metadata.name} Complete",
    )
    assert done.type == "Complete"

    (pod,) = _pods_of(core, namespace, job.metadata.name)
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name == pod_runner.node_name
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert json.loads(terminated.message) == {"rows": 3}
    assert f"running in {namespace}" in pod_runner.logs(namespace, pod.metadata.name)
    wait_until(
        lambda: batch.read_namespaced_cron_job("every-minute", namespace).status.last_successful_time,
        timeout=30,
        description="the CronJob to record its successful run",
    )

    batch.delete_namespaced_cron_job("every-minute", namespace, propagation_policy="Background")
    wait_until(
        lambda: not batch.list_namespaced_job(namespace).items and not core.list_namespaced_pod(namespace).items,
        timeout=60,
        description="the garbage collector to delete the CronJob's Jobs and Pods",
    )


def test_failing_command_fails_the_job(k8s, namespace, pod_runner):
    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    script = 'echo "bad input" >&2; printf "validation failed" > "$FTI_TERMINATION_LOG"; exit 3'
    batch.create_namespaced_job(
        namespace, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails"}, "spec": _job_template(script)}
    )

    failed = wait_until(
        lambda: _condition(batch.read_namespaced_job("fails", namespace), "Failed"), timeout=60, description="Job fails"
    )
    assert failed.reason == "BackoffLimitExceeded"
    (pod,) = _pods_of(core, namespace, "fails")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason, terminated.message) == (3, "Error", "validation failed")
    assert "bad input" in pod_runner.logs(namespace, pod.metadata.name)


def test_unmappable_image_is_refused_with_a_reason(k8s, namespace, pod_runner):
    core = client.CoreV1Api(k8s)
    image = "registry.example.com/nobody/unknown:1.0"
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "unmapped"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image, "command": ["true"]}]},
        },
    )
    pod = pod_runner.wait_for_phase(namespace, "unmapped", phases=("Failed",), timeout=30)
    assert pod.status.reason == "UnsupportedImage"
    assert image in pod.status.message
    assert pod.status.container_statuses[0].state.waiting.reason == "UnsupportedImage"


def test_env_comes_from_configmaps_secrets_and_fields(k8s, namespace, pod_runner):
    core = client.CoreV1Api(k8s)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"STORE": "file:///s"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}})
    container = {
        "name": "main",
        "image": SHELL,
        "args": ['echo "$CFG_STORE|$TOKEN|$ME|$GREETING|$(ME)"'],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GREETING", "value": "hi-$(ME)"},
        ],
    }
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "envy"},
            "spec": {"restartPolicy": "Never", "containers": [container]},
        },
    )
    assert pod_runner.wait_for_phase(namespace, "envy").status.phase == "Succeeded"
    assert "file:///s|s3cr3t|envy|hi-envy|envy" in pod_runner.logs(namespace, "envy")


def test_long_running_pod_stays_running_until_deleted(k8s, namespace, pod_runner):
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server"},
            "spec": {"containers": [{"name": "main", "image": SHELL, "args": ["echo serving; exec sleep 600"]}]},
        },
    )

    def ready():
        pod = core.read_namespaced_pod("server", namespace)
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        return pod if pod.status.phase == "Running" and conditions.get("Ready") == "True" else None

    pod = wait_until(ready, timeout=30, description="the server pod Running and Ready")
    pid = int(pod.status.container_statuses[0].container_id.rsplit("/", 1)[1])
    os.kill(pid, 0)  # the process is alive

    core.delete_namespaced_pod("server", namespace)  # graceful, as a user would

    def gone():
        try:
            core.read_namespaced_pod("server", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=30, description="the deleted pod to disappear")

    def process_gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(process_gone, timeout=15, description=f"process {pid} killed")
