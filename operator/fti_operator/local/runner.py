"""The embedded runner: the operator's rendered children, executed on this machine.

`fti local apply` renders each resource with the same pure renderers the operator uses,
then runs the rendered pod template's containers as local processes (kubelet.py)
instead of handing them to a cluster. Results come back through the pipeline contract's
termination message and go into a status of the same shape the operator writes.
Order follows the data: feature pipelines, then training, then inference.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from time import monotonic
from typing import Any, Callable

from ..api import FeaturePipeline, InferenceService, TrainingPipeline
from ..config import OperatorConfig
from ..render import feature as render_feature
from ..render import inference as render_inference
from ..render import training as render_training
from ..render.pods import JOB_NAME_LABEL
from ..versions.models import models_from_status, next_model_version, resolve_model
from ..versions.serving import FeatureGroupAvailability, decide_pair
from . import results
from .kubelet import ContainerRun, ImageMap, LocalNode
from .state import LocalState


class LocalRunError(RuntimeError):
    """A step that failed; the message says which resource and why."""


@dataclass
class Server:
    name: str
    namespace: str
    url: str
    port: int
    pid: int
    log_path: Path
    model_version: int
    feature_view_version: int
    process: Any = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a stuck server is killed
                self.process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, timeout: float, proc: Any = None) -> None:
    """Poll `url` until it answers 200, the process dies, or the deadline passes."""
    deadline = monotonic() + timeout
    last = "no answer"
    while monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalRunError(f"server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if proc is not None:
            try:
                proc.wait(timeout=0.2)
            except Exception:  # noqa: BLE001 - still running: poll again
                pass
    raise LocalRunError(f"{url} not ready after {timeout:.0f}s: {last}")


@dataclass
class LocalRunner:
    state_dir: Path
    progress: Callable[[str], None] = print
    echo_logs: bool = False
    # Paths in manifests that a volume provides in a cluster (the chart's data volume at
    # OperatorConfig.data_volume_path by default) -> local directories.
    mounts: dict[str, Path] = field(default_factory=dict)
    config: OperatorConfig = field(init=False)
    state: LocalState = field(init=False)
    servers: dict[str, Server] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("FTI_ARTIFACT_STORE", f"file://{self.state_dir / 'store'}")
        env.setdefault("FTI_ONLINE_STORE", f"sqlite:///{self.state_dir / 'online.db'}")
        self.config = OperatorConfig.from_env(env)
        self.state = LocalState.load(self.state_dir)
        self.image_map = ImageMap()
        self.mounts = {self.config.data_volume_path: self.state_dir / "volume", **self.mounts}

    # --- running one pod template --------------------------------------------------
    def _node(self, workdir: Path) -> LocalNode:
        return LocalNode(workdir, self.image_map, mounts=self.mounts)

    def _run_job(self, job: dict[str, Any]) -> tuple[ContainerRun, dict[str, Any]]:
        name = job["metadata"]["name"]
        template = job["spec"]["template"]
        pod_meta = {
            "name": f"{name}-local",
            "namespace": job["metadata"].get("namespace", "default"),
            "labels": {**(template.get("metadata") or {}).get("labels", {}), JOB_NAME_LABEL: name},
        }
        workdir = self.state_dir / "runs" / name
        run: ContainerRun | None = None
        for container in template["spec"]["containers"]:
            run = self._node(workdir).run(container, pod_meta, echo=self.echo_logs)
            if not run.succeeded:
                break
        assert run is not None
        try:
            result = json.loads(run.termination_message) if run.termination_message else {}
        except json.JSONDecodeError:
            result = {"ok": False, "error": run.termination_message[-500:]}
        if not isinstance(result, dict):
            result = {"ok": False, "error": str(result)}
        result.setdefault("ok", run.succeeded)
        return run, result

    # --- the three kinds -------------------------------------------------------------
    def run_feature_pipeline(self, fp: FeaturePipeline) -> dict[str, Any]:
        entry = self.state.put(fp.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
        token = datetime.now(timezone.utc).strftime("local-%Y%m%dT%H%M%S.%f")
        job = render_feature.render_run_now(fp, self.config, token)
        self.progress(f"FeaturePipeline {fp.metadata.name}: feature group {fp.spec.feature_group.name} "
                      f"v{fp.spec.feature_group.version} (job {job['metadata']['name']})")
        run, result = self._run_job(job)
        status = results.feature_status(entry, job["metadata"]["name"], run, result)
        self._save(fp, status)
        if not result.get("ok"):
            raise LocalRunError(f"FeaturePipeline {fp.metadata.name}: {result.get('reason', 'Failed')}: "
                                f"{result.get('error', '')} (log: {run.log_path})")
        return result

    def run_training_pipeline(self, tp: TrainingPipeline, force: bool = False) -> dict[str, Any] | None:
        entry = self.state.put(tp.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
        status = entry.get("status") or {}
        training_hash = render_training.training_hash(tp)
        done = [mv for mv in status.get("modelVersions", []) if mv.get("trainingHash") == training_hash
                and mv.get("phase") in ("Validated", "Rejected")]
        if done and not force:
            self.progress(f"TrainingPipeline {tp.metadata.name}: spec unchanged since model version "
                          f"{done[-1]['version']}; not retraining (use --retrain)")
            return None
        version = next_model_version(int(mv["version"]) for mv in status.get("modelVersions", []))
        job = render_training.render(tp, version, self.config)
        self.progress(f"TrainingPipeline {tp.metadata.name}: training model {tp.spec.model.name} "
                      f"version {version} (job {job['metadata']['name']})")
        run, result = self._run_job(job)
        new_status = results.training_status(entry, version, job["metadata"]["name"], training_hash, run, result)
        self._save(tp, new_status)
        if not result.get("ok"):
            raise LocalRunError(f"TrainingPipeline {tp.metadata.name}: {result.get('reason', 'Failed')}: "
                                f"{result.get('error', '')} (log: {run.log_path})")
        return result

    def resolve_pair(self, isvc: InferenceService) -> render_inference.ResolvedPair:
        """The (model, feature view) pair to serve, checked as the operator checks it (DESIGN §4.2)."""
        name = isvc.spec.model.name
        models = [m for tp in self.state.of_kind("TrainingPipeline")
                  if tp["spec"]["model"]["name"] == name
                  for m in models_from_status(name, tp.get("status"), namespace=tp["metadata"].get("namespace"))]
        availability: dict[tuple[str, int], FeatureGroupAvailability] = {}
        for fp in self.state.of_kind("FeaturePipeline"):
            fg = fp["spec"]["featureGroup"]
            for v in (fp.get("status") or {}).get("versions", []):
                ok = bool((v.get("lastRun") or {}).get("succeeded"))
                availability[(fg["name"], int(v["version"]))] = FeatureGroupAvailability(ok, ok and bool(fg.get("online")))
        model = resolve_model(isvc.spec.model.version, models)
        decision = decide_pair(isvc.spec.model.version, name, model, availability, isvc.spec.mode)
        if not decision.allowed or decision.model is None:
            raise LocalRunError(f"InferenceService {isvc.metadata.name}: {decision.reason}: {decision.message}")
        m = decision.model
        revision = int(((self.state.get("InferenceService", isvc.metadata.namespace, isvc.metadata.name) or {})
                        .get("status") or {}).get("serving", {}).get("revision", 0))
        serving = ((self.state.get("InferenceService", isvc.metadata.namespace, isvc.metadata.name) or {})
                   .get("status") or {}).get("serving") or {}
        if serving.get("model") != m.version or serving.get("featureView") != m.feature_view_version:
            revision += 1
        return render_inference.ResolvedPair(max(revision, 1), name, m.version, m.feature_view_name or "",
                                             int(m.feature_view_version or 0), m.storage_uri)

    def run_batch(self, isvc: InferenceService) -> dict[str, Any]:
        entry = self.state.put(isvc.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
        pair = self.resolve_pair(isvc)
        child = render_inference.render_batch(isvc, pair, self.config)
        job = child if child["kind"] == "Job" else {
            "metadata": {**child["metadata"], "name": f"{child['metadata']['name']}-local"},
            "spec": child["spec"]["jobTemplate"]["spec"],
        }
        self.progress(f"InferenceService {isvc.metadata.name}: batch scoring with model {pair.model_name} "
                      f"v{pair.model_version} / feature view v{pair.feature_view_version}")
        run, result = self._run_job(job)
        self._save(isvc, results.batch_status(entry, pair, job["metadata"]["name"], run, result))
        if not result.get("ok"):
            raise LocalRunError(f"InferenceService {isvc.metadata.name}: {result.get('reason', 'Failed')}: "
                                f"{result.get('error', '')} (log: {run.log_path})")
        return result

    def start_online(self, isvc: InferenceService, port: int | None = None, timeout: float = 120) -> Server:
        entry = self.state.put(isvc.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"}))
        pair = self.resolve_pair(isvc)
        child = render_inference.render_online(isvc, pair, self.config)
        if "transformer" in child["spec"]:
            raise LocalRunError(f"InferenceService {isvc.metadata.name}: topology transformer needs KServe's "
                                "sklearn runtime as predictor; locally use topology combined")
        container = child["spec"]["predictor"]["containers"][0]
        port = port or free_port()
        pod_meta = {"name": f"{child['metadata']['name']}-local", "namespace": child["metadata"]["namespace"],
                    "labels": child["metadata"].get("labels", {})}
        workdir = self.state_dir / "servers" / isvc.metadata.name
        running = self._node(workdir).start(container, pod_meta, extra_args=["--http_port", str(port)])
        proc, log_path = running.process, running.log_path
        url = f"http://127.0.0.1:{port}"
        server = Server(isvc.metadata.name, isvc.metadata.namespace or "default", url, port, proc.pid, log_path,
                        pair.model_version, pair.feature_view_version, proc)
        try:
            wait_http_ok(f"{url}/v1/models/{isvc.metadata.name}", timeout, proc)
        except LocalRunError as exc:
            server.stop()
            tail = log_path.read_text(errors="replace")[-1500:]
            raise LocalRunError(f"InferenceService {isvc.metadata.name}: {exc}\n--- server log ({log_path}) ---\n{tail}") from None
        self.servers[isvc.metadata.name] = server
        self._save(isvc, results.online_status(entry, pair, url))
        self.state.servers[isvc.metadata.name] = {"url": url, "port": port, "pid": proc.pid, "log": str(log_path)}
        self.state.save()
        self.progress(f"InferenceService {isvc.metadata.name}: serving model {pair.model_name} v{pair.model_version} / "
                      f"feature view {pair.feature_view_name} v{pair.feature_view_version} at {url}")
        return server

    def stop_servers(self) -> None:
        for name, server in list(self.servers.items()):
            server.stop()
            self.state.servers.pop(name, None)
            self.servers.pop(name)
        self.state.save()

    def _save(self, resource: Any, status: dict[str, Any]) -> None:
        self.state.set_status(resource.kind, resource.metadata.namespace, resource.metadata.name, status)
        self.state.save()
