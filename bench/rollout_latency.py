"""Rollout latency on the test control plane: how long the operator takes to act on a rollout.

    .venv/bin/python bench/rollout_latency.py [--samples 20] [--timeout 5] [--out x.json]

The operator runs as a process (`python -m fti_operator`) with a token of the chart's
ServiceAccount (tests/controlplane/chart_credentials.py), as on a cluster. KServe's
controller is the stand-in of the integration tests (`set_isvc_status`,
tests/controlplane/kserve.py). A watch on the KServe InferenceServices stamps every
ADDED/MODIFIED event with the wall clock as it arrives; the model a KServe object renders
is its `fti.dev/model-version` label (docs/rollouts.md: predictor and transformer of one
pair in one object). Three latencies, p50/p95 over `--samples` each:

(a) last missing piece ready -> KServe object patched: an InferenceService on
    `version: latest` serves model v; a new Validated model version v+1 appears in the
    TrainingPipeline's status. The bench writes that status itself, as the training Job's
    termination message would leave it (no pod runs). From just before that status write
    until the watch sees the KServe object render v+1. Target p50 <= 1 s.
(b) spec change -> KServe object patched: spec.model.version of an InferenceService is
    changed (1 <-> 2, each rollout completed before the next). From just before the spec
    patch until the watch sees the new model. Target p50 <= 300 ms.
(c) readiness deadline -> rollback: with spec.rollout.readinessTimeout `--timeout` seconds,
    spec.model.version moves to a new version and KServe never reports it ready. From the
    deadline the operator recorded (status.target.since + timeout; `since` has whole
    seconds, and the operator keys its deadline on that recorded value) until the watch
    sees the KServe object render the stable model again. Target p50 <= 1 s.

Every sample's end is an event the API server sent, so each latency includes the watch's
delivery; the start of (a) and (b) is before the write request is sent (a client's view).
The load average is recorded: the machines are shared; no threshold is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from controlplane.binaries import find_binaries  # noqa: E402
from controlplane.chart_credentials import install as install_chart_credentials  # noqa: E402
from controlplane.cluster import ControlPlane  # noqa: E402
from controlplane.kserve import install_crd, set_isvc_status  # noqa: E402
from operator_bench import NS, fp, free_port, isvc, patch_status, tp  # noqa: E402
from run_costs import loadavg, report, stop_operator  # noqa: E402
from support.wait import wait_until  # noqa: E402

G, V = "fti.dev", "v1alpha1"
KSERVE = ("serving.kserve.io", "v1beta1", NS, "inferenceservices")
MODEL_LABEL = "fti.dev/model-version"


class KServeWatch:
    """Every ADDED/MODIFIED event of the KServe InferenceServices: (arrival wall time, name, model label)."""

    def __init__(self, api: client.ApiClient):
        self.custom = client.CustomObjectsApi(api)
        self.events: list[tuple[float, str, str | None]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> KServeWatch:
        self.thread.start()
        return self

    def _run(self) -> None:
        rv = ""
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                kwargs = {"resource_version": rv} if rv else {}
                for ev in w.stream(self.custom.list_namespaced_custom_object, *KSERVE, timeout_seconds=3600, **kwargs):
                    at = time.time()
                    meta = ev["object"]["metadata"]
                    rv = meta.get("resourceVersion", rv)
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        with self.lock:
                            self.events.append((at, meta["name"], (meta.get("labels") or {}).get(MODEL_LABEL)))
            except Exception:  # noqa: BLE001  (the control plane stopping ends the stream)
                if self.stop.is_set():
                    return
                rv = ""  # start again from a fresh listing
                time.sleep(0.2)

    def first(self, name: str, model: int, after: float) -> float | None:
        """Arrival time of the first event after `after` where `name` renders `model`."""
        with self.lock:
            return next((t for t, n, m in self.events if t >= after and n == name and m == str(model)), None)

    def wait(self, name: str, model: int, after: float, timeout: float = 60) -> float:
        return wait_until(
            lambda: self.first(name, model, after),
            timeout=timeout,
            interval=0.005,
            description=f"KServe {name} renders model {model}",
        )


def summary(latencies_ms: list[float]) -> dict:
    xs = sorted(latencies_ms)
    return {
        "samples": len(xs),
        "p50_ms": round(statistics.median(xs), 1),
        "p95_ms": round(xs[max(0, math.ceil(0.95 * len(xs)) - 1)], 1),
        "min_ms": round(xs[0], 1),
        "max_ms": round(xs[-1], 1),
    }


def model_version(v: int, group: str, model: str) -> dict:
    """A model version as the training run's termination message leaves it in status."""
    return {
        "version": v,
        "phase": "Validated",
        "featureView": {"name": model, "version": 1},
        "featureGroups": [{"name": group, "version": 1}],
        "storageUri": f"file:///x/models/{model}/{v}/model",
        "metrics": {"roc_auc": 0.9},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--timeout", type=int, default=5, help="spec.rollout.readinessTimeout of (c), seconds")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    n = args.samples

    workdir = Path(tempfile.mkdtemp(prefix="fti-rollout-bench-"))
    plane = ControlPlane(find_binaries(), workdir)
    plane.start()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True)
    results: dict = {"commit": commit.stdout.strip(), "samples": n, "loadavg_start": loadavg()}
    operator = None
    kwatch = None
    try:
        api = plane.api_client()
        install_crd(api)
        plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        ext = client.ApiextensionsV1Api(api)
        for plural in ("featurepipelines", "trainingpipelines", "inferenceservices"):
            wait_until(
                lambda plural=plural: any(
                    c.type == "Established" and c.status == "True"
                    for c in ext.read_custom_resource_definition(f"{plural}.{G}").status.conditions or []
                ),
                timeout=30,
            )
        custom = client.CustomObjectsApi(api)
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        creds = install_chart_credentials(plane, "fti-system", release="fti")
        health = free_port()
        env = {
            **plane.env(),
            "KUBECONFIG": str(creds.kubeconfig),
            "FTI_PEERING": "",  # one instance: no peering to wait for
            "FTI_METRICS_PORT": "0",
            "FTI_HEALTH_PORT": str(health),
            "FTI_ARTIFACT_STORE": f"file://{workdir}/artifacts",
            "FTI_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT / "pipeline_images")]),
        }
        log = (workdir / "operator.log").open("w")
        operator = subprocess.Popen([sys.executable, "-m", "fti_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2).status == 200,
            timeout=60,
            ignore=(OSError,),
            description="operator liveness endpoint",
        )
        kwatch = KServeWatch(api).start()

        def create(body: dict) -> None:
            custom.create_namespaced_custom_object(G, V, NS, body["kind"].lower() + "s", body)

        def fisvc_status(name: str) -> dict:
            return custom.get_namespaced_custom_object(G, V, NS, "inferenceservices", name).get("status") or {}

        def wait_stable(name: str, model: int) -> None:
            wait_until(
                lambda: (fisvc_status(name).get("stable") or {}).get("model") == model,
                timeout=60,
                description=f"{name}: model {model} stable",
            )

        def set_spec_version(name: str, version) -> None:
            custom.patch_namespaced_custom_object(G, V, NS, "inferenceservices", name, {"spec": {"model": {"version": version}}})

        def isvc_with(name: str, model: str, version, timeout: str = "5m") -> dict:
            body = isvc(name, model)
            body["spec"]["model"]["version"] = version
            body["spec"]["rollout"] = {"autoRollback": True, "readinessTimeout": timeout, "revisionHistoryLimit": 3}
            return body

        def bring_up(name: str, model: int) -> None:
            """The first revision: KServe object rendered, KServe reports it ready, the operator makes it stable."""
            kwatch.wait(name, model, 0)
            set_isvc_status(api, NS, name, ready=True)
            wait_stable(name, model)

        # Setup (untimed): one materialized feature group; model "ma" with v1 (a), "mb" with v1..n+1 (b, c).
        create(fp("fg", "g"))
        create(tp("tp-a", "ma", "g"))
        create(tp("tp-b", "mb", "g"))
        fg_status = {
            "versions": [{"version": 1, "state": "Active", "lastRun": {"job": "setup", "succeeded": True, "rowsWritten": 10}}]
        }
        patch_status(custom, "featurepipelines", "fg", fg_status)
        patch_status(
            custom, "trainingpipelines", "tp-a", {"modelVersions": [model_version(1, "g", "ma")], "latestValidatedVersion": 1}
        )
        versions_b = [model_version(v, "g", "mb") for v in range(1, n + 2)]
        patch_status(custom, "trainingpipelines", "tp-b", {"modelVersions": versions_b, "latestValidatedVersion": n + 1})

        # (a) a new Validated model version appears -> KServe object renders it.
        create(isvc_with("is-a", "ma", "latest"))
        bring_up("is-a", 1)
        a = []
        for v in range(2, n + 2):
            status = {"modelVersions": [model_version(x, "g", "ma") for x in range(1, v + 1)], "latestValidatedVersion": v}
            obj = custom.get_namespaced_custom_object(G, V, NS, "trainingpipelines", "tp-a")
            body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": {**obj["status"], **status}}
            t0 = time.time()
            custom.patch_namespaced_custom_object_status(G, V, NS, "trainingpipelines", "tp-a", body)
            a.append((kwatch.wait("is-a", v, t0) - t0) * 1000)
            set_isvc_status(api, NS, "is-a", ready=True)
            wait_stable("is-a", v)
        results["a_model_validated_to_kserve_patched"] = summary(a)
        print(json.dumps(results["a_model_validated_to_kserve_patched"]), flush=True)

        # (b) spec.model.version changed -> KServe object renders it.
        create(isvc_with("is-b", "mb", 1))
        bring_up("is-b", 1)
        b = []
        for i in range(n):
            v = 2 if i % 2 == 0 else 1
            t0 = time.time()
            set_spec_version("is-b", v)
            b.append((kwatch.wait("is-b", v, t0) - t0) * 1000)
            set_isvc_status(api, NS, "is-b", ready=True)
            wait_stable("is-b", v)
        results["b_spec_change_to_kserve_patched"] = summary(b)
        print(json.dumps(results["b_spec_change_to_kserve_patched"]), flush=True)

        # (c) target never ready -> at since + timeout the stable model is rendered again.
        create(isvc_with("is-c", "mb", 1, timeout=f"{args.timeout}s"))
        bring_up("is-c", 1)
        c = []
        for v in range(2, n + 2):  # a fresh version each time: a failed pair is not retried (docs/rollouts.md)
            t0 = time.time()
            set_spec_version("is-c", v)
            kwatch.wait("is-c", v, t0)
            target = wait_until(
                lambda v=v: (
                    (fisvc_status("is-c").get("target") or {})
                    if (fisvc_status("is-c").get("target") or {}).get("model") == v
                    else None
                ),
                timeout=30,
                description=f"is-c: target {v}",
            )
            deadline = datetime.fromisoformat(target["since"]).timestamp() + args.timeout
            back = kwatch.wait("is-c", 1, t0, timeout=args.timeout + 60)
            c.append((back - deadline) * 1000)
            set_isvc_status(api, NS, "is-c", ready=True)  # KServe reports the stable pair's revision ready again
            wait_until(
                lambda v=v: (
                    (fisvc_status("is-c").get("failed") or {}).get("model") == v and not fisvc_status("is-c").get("target")
                ),
                timeout=30,
                description=f"is-c: rolled back from {v}",
            )
        results["c_deadline_to_rollback_patched"] = summary(c)
        results["c_readiness_timeout_s"] = args.timeout
        print(json.dumps(results["c_deadline_to_rollback_patched"]), flush=True)
        results["raw_ms"] = {"a": [round(x, 1) for x in a], "b": [round(x, 1) for x in b], "c": [round(x, 1) for x in c]}
    except (ApiException, TimeoutError) as exc:
        results["error"] = repr(exc)[:2000]
        print((workdir / "operator.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        if kwatch is not None:
            kwatch.stop.set()
        stop_operator(operator)
        plane.stop()
        report(results, args.out, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
