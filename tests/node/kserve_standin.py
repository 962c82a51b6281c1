"""A STAND-IN for KServe's controller in RawDeployment mode, for the test bed's node.

KServe's controller cannot be built here (its Go module is refused by the module
proxy), so this small test controller does what RawDeployment does with an
``serving.kserve.io/v1beta1`` InferenceService, and nothing more:

- per component (``predictor``, ``transformer``) whose spec inlines containers: a
  Deployment ``<name>-<component>`` running that PodSpec (``minReplicas`` replicas,
  owned by the InferenceService so deleting it cascades) and a Service
  ``<name>-<component>`` (port 80 -> the container's 8080, as KServe's);
- status as KServe writes it (tests/controlplane/kserve.py ``set_isvc_status``:
  ``Ready``, ``PredictorReady``/``TransformerReady``, ``latestReadyRevision``, ``url``,
  ``deploymentMode: RawDeployment``), derived from the real pods' readiness: a
  component is ready when its Deployment's pods of the current revision are Ready,
  which is decided by the containers' own readiness probes (the model server's skew
  guard included).

Not done: a ``model:`` predictor (KServe's stock model servers are images no registry
serves here) is reported not ready with reason ``StandInUnsupported``; no canary split
(RawDeployment has none either); no Ingress, and no cluster DNS on the node, so the
``url`` names a host only a client with DNS could resolve — tests use the Service's
ClusterIP.
"""

from __future__ import annotations

import logging
import threading

from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane.kserve import GROUP, PLURAL, VERSION, revision_name, set_isvc_status

log = logging.getLogger(__name__)
COMPONENTS = ("predictor", "transformer")
# The component fields that are KServe's, not the PodSpec's.
KSERVE_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "canaryTrafficPercent",
    "model",
    "scaleTarget",
    "scaleMetric",
    "containerConcurrency",
    "timeout",
    "batcher",
    "logger",
    "annotations",
    "labels",
    "deploymentStrategy",
}
REVISION_LABEL = "serving.kserve.io/revision"


class KServeStandIn:
    """Reconciles every InferenceService in the cluster every ``interval`` seconds."""

    def __init__(self, api: client.ApiClient, interval: float = 0.5) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kserve-standin", daemon=True)
        self.errors: list[str] = []

    def start(self) -> KServeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            except Exception as exc:  # noqa: BLE001 - keep reconciling; tests read .errors
                self.errors.append(repr(exc))
                items = []
            for isvc in items:
                if isvc["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.reconcile(isvc)
                except ApiException as exc:
                    # A namespace being deleted refuses new objects; the InferenceService
                    # goes with it, as KServe's controller would find on its next retry.
                    if exc.status in (403, 404, 409) and ("NamespaceTerminating" in (exc.body or "") or exc.status != 403):
                        continue
                    log.exception("kserve stand-in")
                    self.errors.append(repr(exc))
                except Exception as exc:
                    log.exception("kserve stand-in")
                    self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def reconcile(self, isvc: dict) -> None:
        meta = isvc["metadata"]
        name, ns, generation = meta["name"], meta["namespace"], meta.get("generation", 1)
        owner = client.V1OwnerReference(
            api_version=f"{GROUP}/{VERSION}",
            kind="InferenceService",
            name=name,
            uid=meta["uid"],
            controller=True,
            block_owner_deletion=True,
        )
        ready, reasons = True, []
        for component in COMPONENTS:
            spec = (isvc.get("spec") or {}).get(component)
            if spec is None:
                continue
            if not spec.get("containers"):
                ready, reasons = False, [*reasons, f"{component}: the stand-in runs only inline containers"]
                continue
            revision = revision_name(name, generation, component)
            self._apply_deployment(ns, f"{name}-{component}", component, name, revision, spec, owner)
            self._apply_service(ns, f"{name}-{component}", component, name, owner)
            ok, why = self._component_ready(ns, f"{name}-{component}", revision)
            if not ok:
                ready, reasons = False, [*reasons, f"{component}: {why}"]
        status = isvc.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        was_ready = conditions.get("Ready", {}).get("status") == "True"
        message = "; ".join(reasons) or None
        if (
            status.get("observedGeneration") == generation
            and was_ready == ready
            and (ready or conditions.get("Ready", {}).get("message") == message)
        ):
            return
        entry = "transformer" if (isvc.get("spec") or {}).get("transformer") else "predictor"
        set_isvc_status(
            self.api,
            ns,
            name,
            ready=ready,
            reason=None if ready else "StandInUnsupported" if "inline containers" in (message or "") else "RevisionMissing",
            message=message,
            url=f"http://{name}-{entry}.{ns}.svc.cluster.local",
            deployment_mode="RawDeployment",
        )

    def _apply_deployment(self, ns, dep_name, component, isvc_name, revision, spec, owner) -> None:
        labels = {"serving.kserve.io/inferenceservice": isvc_name, "component": component}
        pod_spec = {k: v for k, v in spec.items() if k not in KSERVE_FIELDS}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": dep_name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [self.api.sanitize_for_serialization(owner)],
            },
            "spec": {
                "replicas": max(int(spec.get("minReplicas") or 1), 1),
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": {**labels, REVISION_LABEL: revision}}, "spec": pod_spec},
            },
        }
        try:
            current = self.apps.read_namespaced_deployment(dep_name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.apps.create_namespaced_deployment(ns, body)
            return
        if (current.spec.template.metadata.labels or {}).get(REVISION_LABEL) != revision:
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            self.apps.replace_namespaced_deployment(dep_name, ns, body)

    def _apply_service(self, ns, svc_name, component, isvc_name, owner) -> None:
        try:
            self.core.read_namespaced_service(svc_name, ns)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        self.core.create_namespaced_service(
            ns,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc_name, "namespace": ns, "ownerReferences": [self.api.sanitize_for_serialization(owner)]},
                "spec": {
                    "selector": {"serving.kserve.io/inferenceservice": isvc_name, "component": component},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
        )

    def _component_ready(self, ns, dep_name, revision) -> tuple[bool, str]:
        pods = self.core.list_namespaced_pod(ns, label_selector=f"{REVISION_LABEL}={revision}").items
        live = [p for p in pods if not p.metadata.deletion_timestamp and p.metadata.name.startswith(dep_name)]
        if not live:
            return False, "no pod of this revision yet"
        for pod in live:
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if conditions.get("Ready") == "True":
                return True, ""
        waiting = [
            cs.state.waiting.reason for p in live for cs in (p.status.container_statuses or []) if cs.state and cs.state.waiting
        ]
        return False, "pods not Ready" + (f" ({', '.join(sorted(set(waiting)))})" if waiting else "")
