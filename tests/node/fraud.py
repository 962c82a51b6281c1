"""The fraud example on the real node, as a user would run it: shared by
tests/e2e/test_node_fraud.py and ``make demo-cluster`` (tests/node/demo.py).

The chart is installed as documented (README "On a cluster") with the images
``make images`` built, the data volume as a PVC bound to a hostPath PV on the node, and
the online store a Redis on the node's bridge address, reachable from pods. KServe is the
stand-in (kserve_standin.py); everything else is real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from controlplane.cluster import free_ports
from controlplane.processes import ManagedProcess
from support.wait import wait_until

from .node import NODE_IP, TestNode

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "fti-operator"
EXAMPLE = REPO / "examples" / "fraud"
RELEASE, OPERATOR_NS, NS = "fti", "fti-system", "fraud"
IMAGE_UID = 65532  # the images' user (docs/images.md)


def image_refs(tag: str) -> list[str]:
    return [f"ghcr.io/fti-dev/fti-{name}:{tag}" for name in ("operator", "feature", "training", "inference")]


class FraudOnNode:
    """Set up, run and inspect the example; ``close()`` stops what it started."""

    def __init__(self, node: TestNode, tag: str, log=print) -> None:
        self.node = node
        self.tag = tag
        self.log = log
        self.data_dir = node.workdir / "fti-data"
        self.redis: ManagedProcess | None = None
        self.redis_url = ""
        self.timings: dict[str, float] = {}

    def kubectl(self, *args, **kw):
        return self.node.plane.kubectl(*args, **kw)

    def _json(self, *args) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    # ------------------------------------------------------------------ setup
    def start_redis(self) -> str:
        (port,) = free_ports(1)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        self.redis = ManagedProcess(
            "redis-server",
            [
                binary,
                "--bind",
                NODE_IP,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                str(self.node.workdir),
            ],
            self.node.workdir / "logs" / "redis.log",
        ).start()
        self.redis_url = f"redis://{NODE_IP}:{port}/0"
        wait_until(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-h", NODE_IP, "-p", str(port), "ping"], capture_output=True, text=True, check=False
                ).stdout.strip()
                == "PONG"
            ),
            timeout=30,
            description="redis PONG",
        )
        return self.redis_url

    def storage(self) -> None:
        """A hostPath PV on the node (owned by the images' user) bound to the chart's claim."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chown(self.data_dir, IMAGE_UID, IMAGE_UID)
        self.kubectl("create", "namespace", NS)
        manifests = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": "fti-data"},
                "spec": {
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "fti-data",
                    "hostPath": {"path": str(self.data_dir), "type": "Directory"},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "fti-data", "namespace": NS},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "fti-data",
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            },
        ]
        for m in manifests:
            self.kubectl("apply", "-f", "-", input=json.dumps(m))
        wait_until(
            lambda: self._json("get", "pvc", "fti-data", "-n", NS)["status"].get("phase") == "Bound",
            timeout=60,
            description="PVC fti-data Bound",
        )

    def install_operator(self) -> None:
        self.kubectl("create", "namespace", OPERATOR_NS)
        self.kubectl("label", "namespace", OPERATOR_NS, "pod-security.kubernetes.io/enforce=restricted")
        out = self.node.plane.helm(
            "install",
            RELEASE,
            str(CHART),
            "-n",
            OPERATOR_NS,
            "--set",
            f"image.tag={self.tag}",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            f"pipelineImages.tag={self.tag}",
            "--set",
            "pipelineImages.pullPolicy=Never",
            "--set",
            "stores.volumeClaim=fti-data",
            "--set",
            f"stores.onlineStore={self.redis_url}",
            "--wait",
            "--timeout",
            "180s",
            timeout=240,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"helm install failed: {out.stderr}\n{self.describe(OPERATOR_NS)}")

    def apply_example(self) -> None:
        # The batch InferenceService scores new transactions from the data volume, as `make demo` does.
        requests = self.data_dir / "fraud" / "score-requests"
        subprocess.run(
            [sys.executable, "-m", "fti_pipelines.examples", "fraud-score-requests", "--out", f"{requests}/"],
            check=True,
            capture_output=True,
        )
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)
        self.kubectl("apply", "--server-side", "--validate=strict", "-f", str(EXAMPLE))

    def run_now(self, kind: str, *names: str) -> None:
        """``fti.dev/run=<token>``: run now instead of at the schedule (docs/concepts.md).
        The example's feature pipelines are scheduled (every 15 minutes, daily), and its
        training ran at creation before any features existed; `fti local apply` runs them
        in dependency order, on a cluster a user asks for the runs."""
        token = f"e2e-{time.time_ns()}"
        self.kubectl("annotate", "-n", NS, kind, *names, f"fti.dev/run={token}", "--overwrite")

    def score_batch(self, timeout: float) -> dict:
        """Run the batch InferenceService's CronJob now, as a user would (`kubectl create job
        --from=cronjob/...`): its pod scores the requests on the data volume in the inference
        image, and the operator records the run. Returns the InferenceService once its run is
        recorded as succeeded and its revision is stable (a batch revision is proven by a run)."""
        [cronjob] = self._json("get", "cronjobs", "-n", NS, "-l", "fti.dev/resource=fraud-batch,fti.dev/component=batch")["items"]
        self.kubectl("create", "job", f"--from=cronjob/{cronjob['metadata']['name']}", "-n", NS, "fraud-batch-now")

        def scored():
            isvc = self._json("get", "inferenceservice.fti.dev", "fraud-batch", "-n", NS)
            run = (isvc.get("status") or {}).get("lastRun") or {}
            if run.get("job") == "fraud-batch-now" and not run.get("succeeded"):
                raise AssertionError(f"batch scoring failed: {run}\n{self.describe(NS)}")
            return isvc if run.get("job") == "fraud-batch-now" and isvc["status"].get("stable") else None

        try:
            return wait_until(scored, timeout=timeout, interval=1, description="fraud-batch scored and stable")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.describe(NS)}") from None

    # ------------------------------------------------------------------ watch
    def ready(self, kind: str, name: str) -> dict | None:
        obj = self._json("get", kind, name, "-n", NS)
        conditions = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
        return obj if conditions.get("Ready") == "True" else None

    def wait_ready(self, kind: str, name: str, timeout: float) -> dict:
        t0 = time.monotonic()
        try:
            obj = wait_until(lambda: self.ready(kind, name), timeout=timeout, interval=1, description=f"{kind} {name} Ready")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.describe(NS)}\n{self.describe(OPERATOR_NS)}") from None
        self.timings[f"{kind}/{name}"] = time.monotonic() - t0
        self.log(f"fraud: {kind}/{name} Ready after {time.monotonic() - t0:.0f}s")
        return obj

    def train(self, timeout: float) -> dict:
        """The TrainingPipeline Ready with a Validated model. Its run at creation may have
        found no features yet (the example's feature pipelines run on a schedule); only
        then ask for another run, so a good first run is not followed by a second."""

        def settled():
            tp = self._json("get", "trainingpipeline", "fraud-model", "-n", NS)
            versions = (tp.get("status") or {}).get("modelVersions") or []
            if any(v.get("phase") == "Validated" for v in versions):
                return "validated"
            if versions and all(v.get("phase") in ("Failed", "Rejected") for v in versions):
                return "failed"
            return None

        t0 = time.monotonic()
        first = wait_until(settled, timeout=timeout, interval=1, description="the first training run settled")
        if first == "failed":
            self.log(f"fraud: the training run at creation failed ({time.monotonic() - t0:.0f}s); running it again")
            self.run_now("trainingpipeline", "fraud-model")
        return self.wait_ready("trainingpipeline", "fraud-model", timeout=timeout)

    def predict(self, instances: list[dict], model: str = "fraud-online", timeout: float = 60) -> dict:
        """Retried while the Service's endpoints reach kube-proxy (asynchronous, as anywhere)."""
        return wait_until(
            lambda: self._predict(instances, model),
            timeout=timeout,
            interval=0.5,
            ignore=(OSError,),
            description=f"a prediction from {model}",
        )

    def _predict(self, instances: list[dict], model: str) -> dict:
        """POST to the model server's Service (by ClusterIP: no cluster DNS here)."""
        import urllib.request

        svcs = self._json("get", "services", "-n", NS)["items"]
        svc = next(s for s in svcs if s["metadata"]["name"].endswith("-predictor") and s["metadata"]["name"].startswith(model))
        url = f"http://{svc['spec']['clusterIP']}/v1/models/{model}:predict"
        body = json.dumps({"instances": instances}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def operator_usage(self, seconds: float = 10.0) -> tuple[float, float]:
        """(RSS MiB, CPU millicores over ``seconds``) of the operator pod, from its cgroup
        (there is no metrics-server here): a benchmark figure, printed, never asserted."""
        from .node import CGROUP

        pods = self._json("get", "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=fti-operator")["items"]
        uid = pods[0]["metadata"]["uid"]
        qos = pods[0]["status"].get("qosClass", "Burstable").lower()
        base = Path("/sys/fs/cgroup")
        sub = f"{CGROUP}/kubepods" + ("" if qos == "guaranteed" else f"/{qos}") + f"/pod{uid}"
        stat = dict(line.split() for line in (base / "memory" / sub / "memory.stat").read_text().splitlines())
        cpu = base / "cpuacct" / sub / "cpuacct.usage"
        before, t0 = int(cpu.read_text()), time.monotonic()
        wait_until(
            lambda: time.monotonic() - t0 >= seconds, timeout=seconds + 5, interval=0.5, description="the CPU sampling window"
        )
        used = (int(cpu.read_text()) - before) / 1e6 / (time.monotonic() - t0)  # ms per s = millicores
        return int(stat["total_rss"]) / 2**20, used

    def describe(self, ns: str) -> str:
        parts = []
        for args in (
            ("get", "fti,jobs,pods,deploy,isvc.serving.kserve.io", "-n", ns, "-o", "wide"),
            ("get", "events", "-n", ns, "--sort-by=.lastTimestamp"),
            (
                "logs",
                "-n",
                ns,
                "--all-containers",
                "--prefix",
                "--tail=40",
                "-l",
                "app.kubernetes.io/name=fti-operator" if ns == OPERATOR_NS else "batch.kubernetes.io/job-name",
            ),
        ):
            out = self.kubectl(*args, check=False)
            parts.append(f"$ kubectl {' '.join(args)}\n{out.stdout}{out.stderr}"[-6000:])
        return "\n".join(parts)

    def close(self) -> None:
        """Uninstall the chart (its cluster-scoped objects too) and drop the example, so
        later tests on the same node start from a clean cluster."""
        self.node.plane.helm("uninstall", RELEASE, "-n", OPERATOR_NS, "--wait", "--timeout", "120s", check=False, timeout=150)
        self.kubectl("delete", "namespace", NS, OPERATOR_NS, "--wait=false", check=False)
        self.kubectl("delete", "pv", "fti-data", "--wait=false", check=False)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
