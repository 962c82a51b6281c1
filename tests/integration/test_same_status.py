"""One brain, two drivers: the fraud example's status is the same through `fti local` and the operator.

The same manifests (a small generated data set; batch input and output in a temporary
directory) are applied once with `fti local apply` and once on the control plane, where the
operator runs as a process with the chart's ServiceAccount and the pod runner executes the
pipeline pods. KServe's readiness comes from the local stand-in on one side and from
`set_isvc_status` on the other; the batch CronJob is started by hand on the cluster (as
`kubectl create job --from=cronjob/...` does) since `fti local apply` runs it once. Then the
five resources' status is compared after normalising what must differ: times, uids, URLs,
store paths, namespaces, Job names of run-now and scheduled runs, and condition messages
(which quote those) — conditions are compared by type, status and reason.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane.kserve import set_isvc_status
from support.examples import example, score_requests
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP, VERSION = "fti.dev", "v1alpha1"
FILES = (
    "feature-pipeline-profiles.yaml",
    "feature-pipeline-transactions.yaml",
    "training-pipeline.yaml",
    "inference-online.yaml",
    "inference-batch.yaml",
)
TIMES = {"lastTransitionTime", "since", "startedAt", "createdAt", "finishedAt"}
DROPPED = TIMES | {"url", "uid", "token", "message"}
YEARLY = "0 0 1 1 *"


def manifests(namespace: str, data: Path) -> list[dict]:
    """The example, with the batch service reading and writing under `data`."""
    docs = [example(name, namespace) for name in FILES]
    for doc in docs:
        # Runs are started on purpose (run-now, a Job from the CronJob): a scheduled tick in the
        # middle of the test (card-transactions runs every 15 minutes, the drift check hourly)
        # would be a run fti local never makes. A yearly schedule keeps the clock out of the comparison.
        if doc["kind"] == "FeaturePipeline" and doc["spec"].get("schedule"):
            doc["spec"]["schedule"] = YEARLY
        if doc["kind"] == "InferenceService" and doc["spec"].get("monitoring"):
            doc["spec"]["monitoring"]["schedule"] = YEARLY
        if doc["kind"] == "InferenceService" and doc["spec"].get("mode") == "batch":
            doc["spec"]["batch"]["input"]["uri"] = f"file://{data}/score-requests/"
            doc["spec"]["batch"]["output"]["uri"] = f"file://{data}/predictions/"
            doc["spec"]["batch"]["schedule"] = YEARLY
    return docs


def normalise(value: Any, ns: str, roots: list[str]) -> Any:
    """What must be equal between the two drivers."""
    if isinstance(value, dict):
        out = {k: normalise(v, ns, roots) for k, v in value.items() if k not in DROPPED}
        if {"type", "status", "reason"} <= set(value):  # a condition
            out = {k: value[k] for k in ("type", "status", "reason")}
        return out
    if isinstance(value, list):
        items = [normalise(v, ns, roots) for v in value]
        return sorted(items, key=json.dumps) if items and all(isinstance(i, dict) and "type" in i for i in items) else items
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<store>")
        value = re.sub(rf"^{re.escape(ns)}/", "<ns>/", value)  # 'namespace/name' (neededBy)
        # Run-now and scheduled Jobs are named after a token or a minute: the same run, another name.
        value = re.sub(r"-run-[0-9a-f]{8}$", "-run-<token>", value)
        value = re.sub(r"-batch-batch-[0-9a-z-]+$", "-batch-batch-<run>", value)
        return re.sub(r"run=\d{8}T\d{6}Z", "run=<time>", value)
    return value


def statuses(items: list[dict], ns: str, roots: list[str]) -> dict[str, Any]:
    return {f"{i['kind']}/{i['metadata']['name']}": normalise(i.get("status") or {}, ns, roots) for i in items}


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> tuple[dict, str]:
    work = tmp_path_factory.mktemp("local")
    data, state, files = work / "data", work / "state", work / "manifests"
    score_requests(data / "score-requests")
    files.mkdir()
    for doc in manifests("fraud", data):
        (files / f"{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fti_operator.cli",
            "local",
            "apply",
            "-f",
            str(files),
            "--state-dir",
            str(state),
            "--predict",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "fti_operator.cli", "local", "status", "--state-dir", str(state), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    items = json.loads(listing.stdout)["items"]
    # The namespace's own directory first: store paths carry the namespace (docs/store-layout.md).
    store = f"file://{state}/store"
    return statuses(items, "fraud", [f"{store}/namespaces/fraud", store, f"file://{data}"]), str(state)


def test_fti_local_and_the_operator_write_the_same_status(op, k8s, pod_runner, control_plane, local, tmp_path) -> None:
    expected, _state = local
    core, custom, batch = client.CoreV1Api(k8s), client.CustomObjectsApi(k8s), client.BatchV1Api(k8s)
    ns = f"same-status-{os.getpid()}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    wait_until(
        lambda: core.list_namespaced_service_account(ns, field_selector="metadata.name=default").items,
        timeout=30,
        description="default ServiceAccount",
    )
    data = tmp_path / "data"
    score_requests(data / "score-requests")
    docs = {d["metadata"]["name"]: d for d in manifests(ns, data)}
    try:
        for name in ("card-profiles", "card-transactions"):
            docs[name]["metadata"].setdefault("annotations", {})["fti.dev/run"] = "now"
        for doc in docs.values():
            if doc["kind"] != "InferenceService":
                custom.create_namespaced_custom_object(GROUP, VERSION, ns, doc["kind"].lower() + "s", doc)

        def model_done():
            st = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "trainingpipelines", "fraud-model").get("status") or {}
            return [m for m in st.get("modelVersions") or [] if m["phase"] != "Training"]

        wait_until(model_done, timeout=900, description="model 1 trained")
        for name in ("fraud-online", "fraud-batch"):
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "inferenceservices", docs[name])
        wait_until(
            lambda: custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", ns, "inferenceservices", "fraud-online"),
            timeout=60,
            ignore=(ApiException,),
            description="KServe child",
        )
        set_isvc_status(k8s, ns, "fraud-online", ready=True)
        cronjob = wait_until(
            lambda: batch.read_namespaced_cron_job("fraud-batch-batch", ns),
            timeout=60,
            ignore=(ApiException,),
            description="batch CronJob",
        )
        control_plane.kubectl("create", "job", f"--from=cronjob/{cronjob.metadata.name}", "fraud-batch-batch-now", "-n", ns)

        def settled():
            items = [custom.get_namespaced_custom_object(GROUP, VERSION, ns, d["kind"].lower() + "s", n) for n, d in docs.items()]
            online = next(i for i in items if i["metadata"]["name"] == "fraud-online")
            batch_run = (next(i for i in items if i["metadata"]["name"] == "fraud-batch").get("status") or {}).get("lastRun")
            return items if (online.get("status") or {}).get("stable") and batch_run else None

        items = wait_until(settled, timeout=600, description="online stable and a batch run recorded")
        store = op.env["FTI_ARTIFACT_STORE"]
        got = statuses(items, ns, [f"{store}/namespaces/{ns}", store, f"file://{data}"])
        assert got.keys() == expected.keys()
        for key in expected:
            diff = "\n".join(
                difflib.unified_diff(
                    json.dumps(expected[key], indent=1, sort_keys=True).splitlines(),
                    json.dumps(got[key], indent=1, sort_keys=True).splitlines(),
                    "fti local",
                    "operator",
                    lineterm="",
                )
            )
            assert got[key] == expected[key], f"{key} differs between fti local and the operator:\n{diff}"
    finally:
        core.delete_namespace(ns)
