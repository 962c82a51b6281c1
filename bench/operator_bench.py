"""Operator benchmark on the test control plane.

    .venv/bin/python bench/operator_bench.py [--n 1000] [--idle 300] [--samples 100]
        [--tree DIR] [--identity chart|admin] [--out x.json]

`--tree DIR` runs the operator of another checkout (DIR/.venv, DIR/operator, DIR/crds), to
compare two versions side by side on the same bench script. `--identity chart` (the
default) runs the operator with a token of the chart's ServiceAccount and RBAC, as a
cluster runs it (tests/controlplane/chart_credentials.py); `admin` with the control plane's
admin kubeconfig (needed for code older than the chart's RBAC, e.g. one that PUTs children).
The load average is recorded before and after: the machines are shared.

1. Throughput: create N FeaturePipelines, N TrainingPipelines and N InferenceServices at
   once (8 client threads); time from the first create until every child exists
   (CronJob, training Job, KServe InferenceService). Target >= 50 objects/s. Where it went:
   CPU seconds of every process (etcd, kube-apiserver, kube-controller-manager, operator,
   this client) and the API server's apiserver_request_total diff by verb and resource
   (every client), until every child exists and until the operator is at rest again.
2. Latency: with the operator idle, create FeaturePipelines one at a time; time from the
   create call until the CronJob's ADDED event on a watch. Target p50 <= 200 ms.
3. RSS of the operator process at rest with all 3N objects. Target <= 200 MB.
4. API writes during `--idle` seconds at rest, from the API server's own
   apiserver_request_total (every writer), split by resource. Target 0 on our resources.

The operator runs as `python -m fti_operator` (its own process, so RSS is its own). The
InferenceServices need a servable model: setup (untimed) creates 10 TrainingPipelines and
their feature pipelines and records a Validated model v1 and materialized feature groups
in their status, as the Jobs' termination messages would. Schedules are yearly so no
CronJob fires during the idle window. No pod runner: Jobs stay pending (children are what
is measured).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

from controlplane.binaries import find_binaries  # noqa: E402
from controlplane.chart_credentials import install as install_chart_credentials  # noqa: E402
from controlplane.cluster import ControlPlane  # noqa: E402
from controlplane.kserve import install_crd  # noqa: E402
from run_costs import (  # noqa: E402
    apiserver_requests,
    apiserver_writes,
    by_verb_resource,
    count,
    cpu_seconds,
    cpu_split,
    diff,
    loadavg,
    metric_labels,
    report,
    rss_mb,
    stop_operator,
    writes,
)
from support.wait import wait_until  # noqa: E402

G, V = "fti.dev", "v1alpha1"
NS = "bench"
SETUP_MODELS = 10
YEARLY = "0 0 1 1 *"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fp(name: str, group: str, schedule: str | None = YEARLY) -> dict:
    spec = {
        "featureGroup": {"name": group, "version": 1, "primaryKey": ["cc_num"], "eventTime": "event_time", "online": True},
        "source": {"generator": {"function": "fti_pipelines.examples.fraud:card_profiles", "params": {"n_cards": 10}}},
        "ingestion": "full",
    }
    if schedule:
        spec["schedule"] = schedule
    return {"apiVersion": f"{G}/{V}", "kind": "FeaturePipeline", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def tp(name: str, model: str, group: str) -> dict:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "TrainingPipeline",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": {"name": model, "estimator": "sklearn.linear_model.LogisticRegression"},
            "featureView": {
                "name": model,
                "version": 1,
                "label": {"featureGroup": {"name": group, "version": 1}, "column": "is_fraud"},
                "features": [{"featureGroup": {"name": group, "version": 1}, "columns": ["credit_limit"]}],
            },
        },
    }


def isvc(name: str, model: str) -> dict:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": {"name": model, "version": "latest"},
            "mode": "online",
            "online": {"topology": "combined", "minReplicas": 1, "maxReplicas": 1},
        },
    }


def create(custom: client.CustomObjectsApi, body: dict) -> None:
    plural = body["kind"].lower() + "s"
    for _ in range(5):
        try:
            custom.create_namespaced_custom_object(G, V, NS, plural, body)
            return
        except ApiException as exc:
            if exc.status == 409:
                return
            if exc.status not in (429, 500, 503, 504):
                raise
            time.sleep(0.5)


def patch_status(custom, plural: str, name: str, status: dict) -> None:
    def attempt():
        obj = custom.get_namespaced_custom_object(G, V, NS, plural, name)
        merged = {**(obj.get("status") or {}), **status}
        custom.patch_namespaced_custom_object_status(
            G, V, NS, plural, name, {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": merged}
        )
        return True

    wait_until(attempt, timeout=60, ignore=(ApiException,), description=f"status of {plural}/{name}")


def count_children(api: client.ApiClient) -> tuple[int, int, int]:
    return (
        count(api, f"/apis/batch/v1/namespaces/{NS}/cronjobs", "fti.dev/kind=featurepipeline"),
        count(api, f"/apis/batch/v1/namespaces/{NS}/jobs", "fti.dev/kind=trainingpipeline"),
        count(api, f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"),
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=300)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--workers", type=int, default=None, help="FTI_WORKERS of the operator (default: its own)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose operator runs (its .venv, operator/, crds/)")
    ap.add_argument("--identity", choices=("chart", "admin"), default="chart", help="the operator's credentials")
    args = ap.parse_args()
    tree = args.tree.resolve()

    workdir = Path(tempfile.mkdtemp(prefix="fti-bench-"))
    plane = ControlPlane(find_binaries(), workdir)
    plane.start()
    results: dict = {"n_per_kind": args.n, "tree": str(tree), "identity": args.identity, "loadavg_start": loadavg()}
    results["commit"] = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()
    operator = None
    try:
        api = plane.api_client()
        install_crd(api)
        plane.kubectl("apply", "--server-side", "-f", str(tree / "crds"))
        ext = client.ApiextensionsV1Api(api)
        for plural in ("featurepipelines", "trainingpipelines", "inferenceservices"):
            wait_until(
                lambda plural=plural: any(
                    c.type == "Established" and c.status == "True"
                    for c in ext.read_custom_resource_definition(f"{plural}.{G}").status.conditions or []
                ),
                timeout=30,
            )
        core, batch, custom = client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        kubeconfig = {}
        if args.identity == "chart":  # the chart's SA, RBAC and ClusterKopfPeering
            creds = install_chart_credentials(plane, "fti-system", release="fti", peering=True)
            kubeconfig = {"KUBECONFIG": str(creds.kubeconfig)}
        else:
            custom.create_cluster_custom_object(
                "kopf.dev",
                "v1",
                "clusterkopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "fti-operator"}},
            )
        metrics_port = free_port()
        env = {
            **plane.env(),
            **kubeconfig,
            "FTI_METRICS_PORT": str(metrics_port),
            "FTI_HEALTH_PORT": str(free_port()),
            "FTI_ARTIFACT_STORE": f"file://{workdir}/artifacts",
            "FTI_LOG_LEVEL": "WARNING",
            **({"FTI_WORKERS": str(args.workers)} if args.workers else {}),
            "PYTHONPATH": os.pathsep.join([str(tree / "operator"), str(tree / "pipeline_images")]),
        }
        log = (workdir / "operator.log").open("w")
        python = str(tree / ".venv" / "bin" / "python")
        operator = subprocess.Popen([python, "-m", "fti_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)

        # Setup (untimed): servable models for the InferenceServices.
        for i in range(SETUP_MODELS):
            create(custom, fp(f"setup-fg-{i}", f"setup_g{i}"))
            create(custom, tp(f"setup-tp-{i}", f"m{i}", f"setup_g{i}"))
        wait_until(lambda: len(batch.list_namespaced_job(NS).items) >= SETUP_MODELS, timeout=120, description="setup Jobs")
        for i in range(SETUP_MODELS):
            patch_status(
                custom,
                "featurepipelines",
                f"setup-fg-{i}",
                {
                    "versions": [
                        {"version": 1, "state": "Active", "lastRun": {"job": "setup", "succeeded": True, "rowsWritten": 10}}
                    ]
                },
            )
            patch_status(
                custom,
                "trainingpipelines",
                f"setup-tp-{i}",
                {
                    "modelVersions": [
                        {
                            "version": 1,
                            "phase": "Validated",
                            "featureView": {"name": f"m{i}", "version": 1},
                            "featureGroups": [{"name": f"setup_g{i}", "version": 1}],
                            "storageUri": f"file:///x/models/m{i}/1/model",
                            "metrics": {"roc_auc": 0.9},
                        }
                    ],
                    "latestValidatedVersion": 1,
                },
            )

            # A finished run's Job queues its pipeline, whose reconcile records Materialized; the
            # status written here queues nothing (status changes are not triggers), so without
            # this the operator would find that transition only when the burst's first
            # InferenceService reading the group queues the pipeline, and count it in the burst.
            custom.patch_namespaced_custom_object(
                G, V, NS, "featurepipelines", f"setup-fg-{i}", {"metadata": {"annotations": {"bench.fti.dev/setup": "done"}}}
            )

        # Settle: wait until the operator's own request counter stops moving.
        def operator_calls() -> dict[str, float]:
            import urllib.request

            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            out = {}
            for line in text.splitlines():
                if line.startswith("fti_operator_api_requests_total{"):
                    labels = metric_labels(line)
                    out[f"{labels['verb']} {labels['resource']}"] = float(line.rsplit(" ", 1)[1])
            return out

        def operator_requests() -> float:
            return sum(operator_calls().values())

        prev = [-1.0]

        def settled():
            now = operator_requests()
            same = now == prev[0]
            prev[0] = now
            return same

        # The setup's reconciles must not count in the burst.
        wait_until(settled, timeout=600, interval=10, description="operator at rest after setup")

        # 1. Throughput, with where the CPU and the API requests went (every process, every client).
        pids = {**{p.name: p.pid for p in plane.processes}, "operator": operator.pid, "bench-client": os.getpid()}
        cpu0, req0, ops0 = cpu_seconds(pids), apiserver_requests(api), operator_calls()
        bodies = []
        for i in range(args.n):
            bodies += [fp(f"fp-{i}", f"g{i}"), tp(f"tp-{i}", f"model{i}", f"g{i}"), isvc(f"is-{i}", f"m{i % SETUP_MODELS}")]
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda b: create(custom, b), bodies))
        applied = time.perf_counter() - start
        last = [None]

        def all_children():
            last[0] = count_children(api)
            return last[0][0] >= args.n + SETUP_MODELS and last[0][1] >= args.n + SETUP_MODELS and last[0][2] >= args.n

        wait_until(all_children, timeout=1800, interval=0.5, description=f"all children (last {last[0]})")
        total = time.perf_counter() - start
        cpu1, req1 = cpu_seconds(pids), apiserver_requests(api)
        results["throughput"] = {
            "objects": 3 * args.n,
            "apply_seconds": round(applied, 2),
            "all_children_seconds": round(total, 2),
            "objects_per_second": round(3 * args.n / total, 1),
            "loadavg": loadavg(),
        }
        print(json.dumps(results["throughput"]), flush=True)
        prev[0] = -1.0
        wait_until(settled, timeout=600, interval=10, description="operator at rest")
        cpu2, req2, ops2 = cpu_seconds(pids), apiserver_requests(api), operator_calls()
        requests = by_verb_resource(diff(req2, req0))
        results["burst_cost"] = {
            "cpu_seconds_to_all_children": cpu_split(cpu1, cpu0),
            "cpu_seconds_to_at_rest": cpu_split(cpu2, cpu0),
            "apiserver_requests_to_all_children": sum(diff(req1, req0).values()),
            "apiserver_requests_to_at_rest": requests,
            "apiserver_requests_per_object": round(sum(requests.values()) / (3 * args.n), 2),
            "operator_requests": diff(ops2, ops0),
            "operator_requests_per_object": round(sum(diff(ops2, ops0).values()) / (3 * args.n), 2),
            "operator_writes_per_object": round(writes(diff(ops2, ops0)) / (3 * args.n), 2),
            "apiserver_writes_per_object": round(writes(requests) / (3 * args.n), 2),
        }
        print(json.dumps(results["burst_cost"]), flush=True)

        # 2. Latency: one object at a time, create -> child ADDED on a watch.
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watcher():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    batch.list_namespaced_cron_job, NS, label_selector="fti.dev/kind=featurepipeline", timeout_seconds=600
                ):
                    if ev["type"] == "ADDED":
                        seen.setdefault(ev["object"].metadata.name, time.perf_counter())
                    if stop.is_set():
                        w.stop()
            except Exception:  # the control plane stopping ends the stream; the samples are taken
                if not stop.is_set():
                    raise

        t = threading.Thread(target=watcher, daemon=True)
        t.start()
        time.sleep(2)  # the watch's initial listing
        latencies = []
        for i in range(args.samples):
            name = f"lat-{i}"
            t0 = time.perf_counter()
            create(custom, fp(name, f"lat_{i}"))
            wait_until(lambda name=name: f"{name}-v1" in seen, timeout=60, interval=0.005, description=f"CronJob of {name}")
            latencies.append((seen[f"{name}-v1"] - t0) * 1000)
        stop.set()
        latencies.sort()
        results["latency_ms"] = {
            "samples": len(latencies),
            "p50": round(statistics.median(latencies), 1),
            "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
            "max": round(latencies[-1], 1),
        }
        print(json.dumps(results["latency_ms"]), flush=True)
        wait_until(settled, timeout=600, interval=10, description="operator at rest")

        # 3. RSS at rest.
        results["rss_mb_at_rest"] = round(rss_mb(operator.pid), 1)
        results["objects_at_rest"] = 3 * args.n + 2 * SETUP_MODELS + args.samples
        print(json.dumps({"rss_mb": results["rss_mb_at_rest"]}), flush=True)

        # 4. Idle writes.
        before_ops = operator_requests()
        before = apiserver_writes(api)
        time.sleep(args.idle)  # a benchmark window, not test synchronisation
        after = apiserver_writes(api)
        results["idle"] = {
            "seconds": args.idle,
            "apiserver_writes_by_resource": diff(after, before),
            "operator_handler_requests": operator_requests() - before_ops,
        }
        print(json.dumps(results["idle"]), flush=True)
        results["rss_mb_after_idle"] = round(rss_mb(operator.pid), 1)
    finally:
        if operator is not None:
            results["operator_exit_code"] = stop_operator(operator)
        plane.stop()
        report(results, args.out, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
