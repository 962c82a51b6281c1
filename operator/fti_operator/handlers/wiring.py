"""Kopf registrations: settings, indexes, watch events -> a work queue, Job results, triggers.

How it runs (the decisions, and why):
- Reconcile model: the three kinds are watched with `on.event`; events enqueue the object's
  key in a deduplicating work queue (queue.py) whose workers run the level-based reconcile
  (get -> compare owned fields -> create/replace; status only when it differs). Kopf's
  create/update handlers are not used: they write a diff-base annotation after every change
  and Kopf's progress records on retries — writes that buy nothing when the reconcile is
  level-based anyway. The settings still keep both records in annotations under `fti.dev/`
  so `status` stays entirely ours should a change handler ever be added. Index and event
  handlers are async: they only compute, compare and enqueue, and a sync one costs a
  thread-pool hop per event and handler.
- Watches: `watching.server_timeout`/`client_timeout` are set (a silently dropped watch
  otherwise leaves the operator blind).
- Peering: one replica (Deployment strategy Recreate) plus mandatory Kopf peering. A second
  instance of lower priority starts paused and stays so while the first is alive; two of
  equal priority both freeze — they never fight (tested in tests/integration). Kopf peering
  is not leader election: for HA, run a standby with a lower FTI_PEERING_PRIORITY.
- Cross-resource lookups go through `@kopf.index`: model versions by model name
  (TrainingPipelines), materialized feature-group versions (FeaturePipelines), InferenceServices
  by model (and so which feature-group versions are still needed, DESIGN §4.3).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Mapping

import kopf

from .. import metrics
from ..config import OperatorConfig
from ..render.pods import LABEL_MANAGED_BY, MANAGED_BY
from ..status import job_finished
from ..versions import ModelInfo, models_from_status, needed_feature_groups
from ..versions.retention import served_model_versions
from . import feature, inference, jobs, training
from .kube import ApiError
from .queue import WorkQueue
from .runtime import GROUP, VERSION, Runtime, runtime, set_runtime

log = logging.getLogger("fti_operator")
FP, TP, IS = "featurepipelines", "trainingpipelines", "inferenceservices"
# Watches are re-established at least this often: without a server timeout a silently dropped
# connection leaves the operator blind forever (a known Kopf pitfall).
WATCH_SERVER_TIMEOUT = 300
WATCH_CLIENT_TIMEOUT = 330


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = 30
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="fti.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="fti.dev", key="last-handled-configuration")
    settings.persistence.finalizer = "fti.dev/finalizer"
    # Kopf would post an Event for every handler success; ours are the meaningful ones.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = max(16, config.workers)
    settings.networking.request_timeout = 60
    if config.peering:
        # Mandatory peering starts the operator paused until it has seen the peers, so a
        # lower-priority instance never handles an object before it knows to stand back.
        settings.peering.name = config.peering
        settings.peering.mandatory = True
        settings.peering.priority = config.peering_priority


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = getattr(memo, "config", None) or OperatorConfig.from_env()
    configure(settings, config)
    try:
        rt = runtime()
    except RuntimeError:
        rt = Runtime(config)
        set_runtime(rt)
    log.info("fti-operator started: artifact store %s, namespaces %s", config.artifact_store, config.namespaces or "all")


@kopf.on.login()
def _login(**kwargs: Any):
    # In a pod: the service account; elsewhere: $KUBECONFIG (read at login time, not import time).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


# ---- indexes ---------------------------------------------------------------------------------
@kopf.index(GROUP, VERSION, TP)
async def models_by_name(namespace: str, name: str, spec: Mapping, status: Mapping, **_: Any):
    model = (spec.get("model") or {}).get("name")
    return {(namespace, model): tuple(models_from_status(model, status, namespace=namespace, pipeline=name))} if model else {}


@kopf.index(GROUP, VERSION, TP)
async def models_by_group(namespace: str, name: str, spec: Mapping, status: Mapping, **_: Any):
    """(namespace, feature group) -> names of the models whose versions read it: a FeaturePipeline's
    reconcile looks at those models' InferenceServices only, not at every one in the namespace."""
    model = (spec.get("model") or {}).get("name")
    if not model:
        return {}
    return {(namespace, g): model for m in models_from_status(model, status, namespace=namespace, pipeline=name)
            for g, _v in m.feature_groups}


@kopf.index(GROUP, VERSION, FP)
async def feature_availability(namespace: str, spec: Mapping, status: Mapping, **_: Any):
    return feature.availability(namespace, spec, status)


@kopf.index(GROUP, VERSION, FP)
async def pipelines_by_group(namespace: str, name: str, spec: Mapping, **_: Any):
    group = (spec.get("featureGroup") or {}).get("name")
    return {(namespace, group): name} if group else {}


@kopf.index(GROUP, VERSION, IS)
async def services_by_model(namespace: str, name: str, spec: Mapping, status: Mapping, **_: Any):
    model = (spec.get("model") or {}).get("name")
    return {(namespace, model): (name, tuple(served_model_versions(status)))} if model else {}


def _models(models_by_name: kopf.Index, namespace: str, model: str) -> list[ModelInfo]:
    return [m for infos in models_by_name.get((namespace, model), []) for m in infos]


def _needed(namespace: str, group: str, services_by_model: kopf.Index, models_by_name: kopf.Index,
            models_by_group: kopf.Index) -> dict[tuple[str, int], list[str]]:
    """Which versions of `group` (and of the other groups the same models read) revisions need.

    Only the InferenceServices of models that read `group` are looked at: lookups by key, so one
    FeaturePipeline's reconcile costs the same with ten InferenceServices or ten thousand."""
    services, models = [], {}
    for model in set(models_by_group.get((namespace, group), [])):
        for name, versions in services_by_model.get((namespace, model), []):
            services.append((f"{namespace}/{name}", model, list(versions)))
        for m in _models(models_by_name, namespace, model):
            models[(model, m.version)] = m
    return needed_feature_groups(services, models)


def _availability(namespace: str, models: list[ModelInfo], feature_availability: kopf.Index) -> dict[tuple[str, int], Any]:
    """(group, version) -> availability of the feature-group versions `models` read (lookups by key)."""
    out = {}
    for m in models:
        for group, version in m.feature_groups:
            for info in feature_availability.get((namespace, group, version), []):
                out[(group, version)] = info
    return out


# ---- reconcile entry points ------------------------------------------------------------------
def reconcile_feature(body: Mapping, services_by_model: kopf.Index, models_by_name: kopf.Index,
                      models_by_group: kopf.Index) -> dict[str, int]:
    rt = runtime()
    meta = body["metadata"]
    group = ((body.get("spec") or {}).get("featureGroup") or {}).get("name")
    with metrics.reconcile_timer("FeaturePipeline"), rt.lock("featurepipeline", meta["namespace"], meta["name"]):
        return feature.reconcile(rt, body, _needed(meta["namespace"], group, services_by_model, models_by_name, models_by_group))


def reconcile_training(body: Mapping) -> dict[str, int]:
    rt = runtime()
    meta = body["metadata"]
    with metrics.reconcile_timer("TrainingPipeline"), rt.lock("trainingpipeline", meta["namespace"], meta["name"]):
        return training.reconcile(rt, body)


def reconcile_inference(body: Mapping, models_by_name: kopf.Index, feature_availability: kopf.Index) -> dict[str, int]:
    rt = runtime()
    meta = body["metadata"]
    ns, model = meta["namespace"], body["spec"]["model"]["name"]
    with metrics.reconcile_timer("InferenceService"), rt.lock("inferenceservice", ns, meta["name"]):
        models = _models(models_by_name, ns, model)
        result = inference.reconcile(rt, body, models, _availability(ns, models, feature_availability))
    status = body.get("status") or {}
    metrics.record_served(ns, meta["name"], status.get("serving"), status.get("canary"))
    return result


# The three kinds are watched with on.event and reconciled from the work queue (deduplicated,
# retried): no Kopf diff-base or progress annotations are written, so a change costs only the
# writes the change needs. A reconcile is queued on the initial listing (resume), when
# generation or annotations changed since the last successful reconcile, on deletion, and
# by the cross-resource triggers below.
_reconciled: dict[tuple[str, str, str], tuple] = {}


def _signature(body: Mapping) -> tuple:
    meta = body["metadata"]
    return (meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items())),
            bool(meta.get("deletionTimestamp")), tuple(meta.get("finalizers") or ()))


# The newest body the watch delivered for each queued key (the informer-cache pattern): the
# reconcile starts from it instead of a GET, which the API server would answer from etcd. Held
# only while the key waits, so memory at rest does not grow with the number of objects. A stale
# body is harmless: child creates are idempotent by name, status patches carry resourceVersion
# (a conflict re-reads), and the newer event queues the key again.
_bodies: dict[tuple[str, str, str], dict] = {}


def _own_event(plural: str, body: Mapping, type: str | None) -> None:
    meta = body["metadata"]
    key = (plural, meta["namespace"], meta["name"])
    if type == "DELETED":
        _reconciled.pop(key, None)
        _bodies.pop(key, None)
        runtime().forget(plural[:-1], meta["namespace"], meta["name"])
        return
    queue = type is None or _reconciled.get(key) != _signature(body)
    if queue or key in _bodies:
        _bodies[key] = dict(body)
    if queue:
        enqueue(plural, meta["namespace"], meta["name"])


def _schedule_loop(stop: threading.Event, scheduled_trainings: kopf.Index) -> None:
    """Scheduled training runs: every 30 s the scheduled TrainingPipelines are reconciled (reads only
    unless a run is due), instead of a Kopf timer per object."""
    while not stop.wait(30):
        for (ns, name), _ in list(scheduled_trainings.items()):
            enqueue(TP, ns, name)


@kopf.index(GROUP, VERSION, TP)
async def scheduled_trainings(namespace: str, name: str, spec: Mapping, **_: Any):
    return {(namespace, name): spec["schedule"]} if spec.get("schedule") and not spec.get("suspend") else {}


_schedule_stop = threading.Event()


@kopf.on.cleanup()
def _cleanup(**_: Any) -> None:
    _schedule_stop.set()
    if _queue is not None:
        _queue.stop()


@kopf.on.event("serving.kserve.io", "v1beta1", IS, labels={LABEL_MANAGED_BY: MANAGED_BY})
async def kserve_changed(body: kopf.Body, type: str | None, models_by_name: kopf.Index, feature_availability: kopf.Index,
                         **_: Any) -> None:
    """KServe readiness/URL changes flow into our status (Serving condition, url).

    Only those: the ADDED event of a child we just created, or KServe bumping fields we do not
    report, would re-run the owner's reconcile for nothing (two reads each)."""
    meta = body["metadata"]
    key = ("kserve", meta["namespace"], meta["name"])
    seen = (inference.kserve_ready(body), (body.get("status") or {}).get("url"))
    if type == "DELETED":
        _last_seen.pop(key, None)
    elif not _changed(key, seen, initial=inference.NOT_REPORTED) or type is None:
        return  # the initial listing: the owners' own resume reconcile covers it
    owner = _owner_name(body)
    if owner:
        _remember(models_by_name=models_by_name, feature_availability=feature_availability)
        enqueue(IS, body["metadata"]["namespace"], owner)


def _owner_name(body: Mapping) -> str | None:
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("apiVersion") == f"{GROUP}/{VERSION}" and ref.get("controller"):
            return ref["name"]
    return None


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY})
async def job_event(body: kopf.Body, type: str | None, services_by_model: kopf.Index, models_by_name: kopf.Index,
                    models_by_group: kopf.Index, **_: Any) -> None:
    # Most Job events (created, pods started) carry no result: filtered here, on the loop; only a
    # finished Job's recording (API calls) goes to a thread.
    if type == "DELETED" or job_finished(body) is None:
        return
    await asyncio.get_running_loop().run_in_executor(None, _record_job, body, services_by_model, models_by_name, models_by_group)


def _record_job(body: Mapping, services_by_model: kopf.Index, models_by_name: kopf.Index, models_by_group: kopf.Index) -> None:
    rt = runtime()
    kind = jobs.record(rt, body)
    if kind is None:
        return
    labels = body["metadata"].get("labels") or {}
    fresh = rt.kube.get(f"{GROUP}/{VERSION}", kind + "s", body["metadata"]["namespace"], labels.get("fti.dev/resource"))
    if fresh is None:
        return
    # Conditions and derived fields follow the recorded result.
    if kind == "featurepipeline":
        reconcile_feature(fresh, services_by_model, models_by_name, models_by_group)
    elif kind == "trainingpipeline":
        reconcile_training(fresh)


# ---- cross-resource triggers -----------------------------------------------------------------
# Kopf hands indexes only to handlers; the queue workers use the same live Index objects.
_indexes: dict[str, kopf.Index] = {}
_queue: WorkQueue | None = None
_queue_lock = threading.Lock()
_schedule_thread_started = threading.Event()
_last_seen: dict[tuple[str, str, str], Any] = {}


def _remember(**indexes: kopf.Index) -> None:
    _indexes.update(indexes)


def _process(key: tuple[str, str, str]) -> None:
    try:
        _reconcile_key(key)
    except ApiError as exc:
        if not exc.namespace_terminating:
            raise  # the queue retries
        # Nothing can be created there any more, and the namespace controller deletes the object
        # next (its deletion event queues the finalizer step): retrying would only add requests.
        log.info("%s %s/%s: namespace is being deleted, not retrying", *key)


def _reconcile_key(key: tuple[str, str, str]) -> None:
    plural, ns, name = key
    fresh = _bodies.pop(key, None) or runtime().kube.get(f"{GROUP}/{VERSION}", plural, ns, name)
    if fresh is None:
        return
    # Recorded before the reconcile: the MODIFIED events of its own status patch arrive while it
    # runs and must not queue it again (a failed reconcile is retried by the queue anyway).
    _reconciled[key] = _signature(fresh)
    if plural == IS:
        if not fresh["metadata"].get("deletionTimestamp"):
            reconcile_inference(fresh, _indexes["models_by_name"], _indexes["feature_availability"])
    elif plural == FP:
        reconcile_feature(fresh, _indexes["services_by_model"], _indexes["models_by_name"], _indexes["models_by_group"])
    elif plural == TP:
        if not fresh["metadata"].get("deletionTimestamp"):
            reconcile_training(fresh)


def enqueue(plural: str, namespace: str, name: str) -> None:
    global _queue
    with _queue_lock:
        if _queue is None:
            _queue = WorkQueue(_process, workers=runtime().config.workers)
    _queue.add((plural, namespace, name))


_NOTHING = object()


def _changed(key: tuple[str, str, str], value: Any, initial: Any = _NOTHING) -> bool:
    """Did `value` change since the last call for `key` (the first call compares with `initial`)?"""
    if _last_seen.get(key, initial) == value:
        _last_seen[key] = value
        return False
    _last_seen[key] = value
    return True


@kopf.on.event(GROUP, VERSION, TP)
async def training_changed(body: kopf.Body, type: str | None, models_by_name: kopf.Index, feature_availability: kopf.Index,
                           services_by_model: kopf.Index, pipelines_by_group: kopf.Index, scheduled_trainings: kopf.Index,
                           models_by_group: kopf.Index, **_: Any) -> None:
    """New or changed model versions: InferenceServices of that model re-resolve (`latest`)."""
    _remember(models_by_name=models_by_name, feature_availability=feature_availability,
              services_by_model=services_by_model, pipelines_by_group=pipelines_by_group, models_by_group=models_by_group)
    _own_event(TP, body, type)
    if not _schedule_thread_started.is_set():
        _schedule_thread_started.set()
        threading.Thread(target=_schedule_loop, args=(_schedule_stop, scheduled_trainings), daemon=True,
                         name="fti-schedules").start()
    meta = body["metadata"]
    ns, model = meta["namespace"], (body.get("spec") or {}).get("model", {}).get("name")
    versions = tuple((mv.get("version"), mv.get("phase"), mv.get("storageUri")) for mv in (body.get("status") or {}).get("modelVersions") or [])
    if type == "DELETED":
        # The model's versions leave the indexes with it: the feature pipelines it read re-decide
        # whether a version is still needed (a blocked deletion must not wait for another event).
        _enqueue_pipelines(pipelines_by_group, ns, _pipeline_groups(body.get("spec") or {}))
    if not model or not _changed(("tp", ns, meta["name"]), versions) or type is None:
        return
    for isvc_name, _served in services_by_model.get((ns, model), []):
        enqueue(IS, ns, isvc_name)


def _pipeline_groups(tp_spec: Mapping) -> set[str]:
    """The feature groups a TrainingPipeline spec reads (label and features)."""
    view = tp_spec.get("featureView") or {}
    refs = [(view.get("label") or {}).get("featureGroup")] + [f.get("featureGroup") for f in view.get("features") or []]
    return {ref["name"] for ref in refs if ref and ref.get("name")}


def _enqueue_pipelines(pipelines_by_group: kopf.Index, ns: str, groups: set[str]) -> None:
    for group in sorted(groups):
        for fp_name in list(pipelines_by_group.get((ns, group), [])):
            enqueue(FP, ns, fp_name)


@kopf.on.event(GROUP, VERSION, FP)
async def feature_changed(body: kopf.Body, type: str | None, models_by_name: kopf.Index, feature_availability: kopf.Index,
                          services_by_model: kopf.Index, pipelines_by_group: kopf.Index, models_by_group: kopf.Index,
                          **_: Any) -> None:
    """A feature-group version became (un)available: InferenceServices whose models read it re-decide."""
    _remember(models_by_name=models_by_name, feature_availability=feature_availability,
              services_by_model=services_by_model, pipelines_by_group=pipelines_by_group, models_by_group=models_by_group)
    _own_event(FP, body, type)
    meta = body["metadata"]
    ns = meta["namespace"]
    group = ((body.get("spec") or {}).get("featureGroup") or {}).get("name")
    state = feature.availability(ns, body.get("spec") or {}, body.get("status") or {})
    if not group or not _changed(("fp", ns, meta["name"]), tuple(sorted(state.items()))) or type is None:
        return
    for model in set(models_by_group.get((ns, group), [])):
        for isvc_name, _served in list(services_by_model.get((ns, model), [])):
            enqueue(IS, ns, isvc_name)


@kopf.on.event(GROUP, VERSION, IS)
async def serving_changed(body: kopf.Body, type: str | None, services_by_model: kopf.Index, models_by_name: kopf.Index,
                          pipelines_by_group: kopf.Index, feature_availability: kopf.Index, models_by_group: kopf.Index,
                          **_: Any) -> None:
    """Served/canary/history changed (or the service went): feature groups' retention is recomputed."""
    _remember(models_by_name=models_by_name, feature_availability=feature_availability,
              services_by_model=services_by_model, pipelines_by_group=pipelines_by_group, models_by_group=models_by_group)
    _own_event(IS, body, type)
    meta = body["metadata"]
    ns, model = meta["namespace"], ((body.get("spec") or {}).get("model") or {}).get("name")
    served = () if type == "DELETED" else tuple(served_model_versions(body.get("status")))
    if not model or not _changed(("is", ns, meta["name"]), served) or type is None:
        return
    if type == "DELETED":
        _last_seen.pop(("is", ns, meta["name"]), None)
    groups = {g for m in _models(models_by_name, ns, model) for g, _v in m.feature_groups}
    if type == "DELETED" and not groups:
        # The model went first (a namespace being deleted): which groups this service read is no
        # longer known, so every feature pipeline of the namespace re-decides its finalizer.
        groups = {group for (gns, group) in list(pipelines_by_group.keys()) if gns == ns}
    _enqueue_pipelines(pipelines_by_group, ns, groups)
