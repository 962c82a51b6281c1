"""Rollout flows driven step by step, with the operator SIGKILLed at any one step.

A flow (upgrade, canary → promote, automatic rollback, re-materializing rollback) is a
straight script of what a user and KServe do, interleaved with the observable transitions
the operator must make (`Run.step`). Run once without a kill it gives the reference end
state; run with `kill_at` naming a step, the operator is SIGKILLed as soon as that
transition is observed and started again, and the flow goes on. `end_state` is what the
two runs are compared on: the KServe child as the API server has it, the status without
timestamps, the Events per reason and the Jobs the flow created. `ChildWatch` sees every
version the API server ever held of the KServe child, so a mixed pair written for a moment
and repaired is still caught (docs/rollouts.md: a pair is one revision's model and its
feature view, never one from each).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from controlplane.kserve import set_isvc_status
from support.examples import example
from support.rollouts import GROUP, KSERVE, VERSION, apply, custom, fraud_pipelines, get, trained
from support.wait import WaitTimeout, wait_until

TIMESTAMPS = frozenset({"since", "lastTransitionTime", "finishedAt", "createdAt", "startedAt"})
SKEW = "readiness probe failed: skew guard: feature view 1 expected, store has 2"


# ---- reading and writing the objects ----------------------------------------------------------


def status_of(k8s, ns: str, name: str) -> dict:
    return get(k8s, ns, "inferenceservices", name).get("status") or {}


def annotate(k8s, ns: str, plural: str, name: str, **annotations: str) -> None:
    custom(k8s).patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name, {"metadata": {"annotations": annotations}})


def kserve_child(k8s, ns: str, name: str) -> dict | None:
    try:
        return custom(k8s).get_namespaced_custom_object(*KSERVE[:2], ns, KSERVE[2], name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def events(k8s, ns: str, name: str, kind: str = "InferenceService") -> list:
    """Events the operator posted on our object `name` (not on KServe's child of the same name)."""
    items = client.CoreV1Api(k8s).list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [e for e in items if e.involved_object.kind == kind and (e.involved_object.api_version or "").startswith(GROUP)]


def remat_jobs(k8s, ns: str, pipeline: str, version: int) -> set[str]:
    """Jobs that bring `version` of a FeaturePipeline's group back (made from its CronJob)."""
    selector = f"fti.dev/trigger=rematerialize,fti.dev/resource={pipeline},fti.dev/feature-group-version={version}"
    return {j.metadata.name for j in client.BatchV1Api(k8s).list_namespaced_job(ns, label_selector=selector).items}


def version_entry(k8s, ns: str, pipeline: str, version: int) -> dict:
    st = get(k8s, ns, "featurepipelines", pipeline).get("status") or {}
    return next((v for v in st.get("versions") or [] if v["version"] == version), {})


def fraud_models(k8s, ns: str, pod_runner) -> None:
    """Namespace `ns` with the fraud example's feature groups materialized (v1) and its model
    trained twice on them: model versions 1 and 2 Validated, by the real pipelines."""
    fraud_pipelines(k8s, ns)
    for version, token in ((1, None), (2, "second")):
        if token:  # a run-now token trains again on the same features
            annotate(k8s, ns, "trainingpipelines", "fraud-model", **{"fti.dev/run": token})
        mv = wait_until(lambda v=version: trained(k8s, ns, v), timeout=900, description=f"model {version} trained")
        assert mv["phase"] == "Validated", (mv, pod_runner.dump(ns))


# ---- the pair a child serves --------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """Model version -> (feature-view version, storage URI), as the TrainingPipeline recorded them."""

    models: dict[int, tuple[int, str]]

    @classmethod
    def read(cls, k8s, ns: str, pipeline: str) -> Registry:
        st = get(k8s, ns, "trainingpipelines", pipeline).get("status") or {}
        return cls(
            {
                int(m["version"]): (int(m["featureView"]["version"]), m["storageUri"])
                for m in st.get("modelVersions") or []
                if m.get("phase") == "Validated"
            }
        )


def spec_env(component: dict) -> dict:
    [container] = component["containers"]
    return json.loads(next(e["value"] for e in container["env"] if e["name"] == "FTI_SPEC"))


def served(child: dict) -> tuple[int, int]:
    """(model, feature view) the transformer of a child looks features up for."""
    spec = spec_env(child["spec"]["transformer"])
    return int(spec["model"]["version"]), int(spec["featureView"]["version"])


def mixed(child: dict, registry: Registry) -> str | None:
    """Why this version of the child is not one revision's pair, or None: the predictor's model,
    the transformer's feature view and the labels must all name the same registered pair."""
    model, view = served(child)
    labels = child["metadata"].get("labels") or {}
    uri = child["spec"]["predictor"]["model"]["storageUri"]
    expected = registry.models.get(model)
    if expected is None:
        return f"model {model} is not a validated model version"
    if (labels.get("fti.dev/model-version"), labels.get("fti.dev/feature-view-version")) != (str(model), str(view)):
        return f"labels {labels} do not name model {model} / feature view {view}"
    if view != expected[0]:
        return f"model {model} was trained on feature view {expected[0]}, the transformer reads {view}"
    if uri != expected[1]:
        return f"the predictor loads {uri}, model {model} is {expected[1]}"
    return None


class ChildWatch:
    """Every version of one KServe child the API server holds, from a watch (a poll could miss one)."""

    def __init__(self, k8s, ns: str, name: str):
        self.api = client.CustomObjectsApi(client.ApiClient(k8s.configuration))
        self.ns, self.name = ns, name
        self.versions: dict[str, dict] = {}  # resourceVersion -> object
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def __enter__(self) -> ChildWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.api.api_client.close()

    def _list(self) -> str:
        listed = self.api.list_namespaced_custom_object(
            *KSERVE[:2], self.ns, KSERVE[2], field_selector=f"metadata.name={self.name}"
        )
        for obj in listed["items"]:
            self.versions[obj["metadata"]["resourceVersion"]] = obj
        return str(listed["metadata"]["resourceVersion"])

    def _run(self) -> None:
        rv = self._list()
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    self.api.list_namespaced_custom_object,
                    *KSERVE[:2],
                    self.ns,
                    KSERVE[2],
                    field_selector=f"metadata.name={self.name}",
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=5,
                ):
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.versions[rv] = obj
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:
                    raise
                rv = self._list()  # too old: list again (versions in between are not lost: the list has the last)

    def mixed(self, registry: Registry) -> list[str]:
        return [f"resourceVersion {rv}: {why}" for rv, obj in self.versions.items() if (why := mixed(obj, registry))]


# ---- a flow, step by step -------------------------------------------------------------------------


@dataclass
class Run:
    """One run of a flow on one InferenceService; `kill_at` names the step after which to SIGKILL."""

    k8s: Any
    op: Any  # tests/integration/conftest.py Operator: start(), kill()
    ns: str
    name: str
    kill_at: str | None = None
    down_until: Callable[[Run], datetime] | None = None  # keep the operator down until then (then restart)
    reached: list[str] = field(default_factory=list)
    restarted_at: datetime | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str, predicate: Callable[[], Any], timeout: float = 120) -> Any:
        """Wait for a transition the operator makes; if it is the kill point, kill and restart."""
        value = wait_until(predicate, timeout=timeout, ignore=(ApiException,), description=f"{self.name}: {name}")
        self.reached.append(name)
        if name == self.kill_at:
            self.op.kill()
            if self.down_until is not None:
                until = self.down_until(self)
                wait_until(lambda: datetime.now(UTC) >= until, timeout=600, description="the operator down until then")
            self.restarted_at = datetime.now(UTC)
            self.op.start()
        return value

    def status(self) -> dict:
        return status_of(self.k8s, self.ns, self.name)

    def child(self) -> dict | None:
        return kserve_child(self.k8s, self.ns, self.name)

    def child_serves(self, model: int) -> Callable[[], Any]:
        return lambda: (c := self.child()) is not None and served(c)[0] == model and c

    def status_has(self, check: Callable[[dict], Any]) -> Callable[[], Any]:
        return lambda: (st := self.status()) and check(st) and st

    def kserve(self, **kwargs: Any) -> None:
        """What KServe's controller would report for the child as it is now."""
        set_isvc_status(self.k8s, self.ns, self.name, **kwargs)


def online(ns: str, name: str, model: int, **rollout: Any) -> dict:
    """The example's online service in the transformer topology: predictor and transformer are
    separate components, so a model from one revision beside features of another could show."""
    body = example("inference-online.yaml", ns)
    # Rollouts only: the example's hourly drift check would be a run one flow has and another lacks.
    body["spec"].pop("monitoring", None)
    body["metadata"]["name"] = name
    body["spec"]["model"]["version"] = model
    body["spec"]["online"]["topology"] = "transformer"
    body["spec"]["rollout"].update(rollout)
    return body


def first_stable(run: Run, body: dict) -> None:
    """Serve `body`'s model first (not a step of the flow under test: no kill point here)."""
    model = body["spec"]["model"]["version"]
    apply(run.k8s, body)
    wait_until(run.child_serves(model), timeout=120, ignore=(ApiException,), description=f"{run.name}: child {model}")
    run.kserve(ready=True)
    wait_until(
        run.status_has(lambda st: (st.get("stable") or {}).get("model") == model),
        timeout=120,
        ignore=(ApiException,),
        description=f"{run.name}: model {model} stable",
    )


# ---- the four flows -------------------------------------------------------------------------------

UPGRADE = ("target-recorded", "child-written", "stable")


def upgrade(run: Run, old: int, new: int) -> None:
    body = online(run.ns, run.name, old)
    first_stable(run, body)
    body["spec"]["model"]["version"] = new
    apply(run.k8s, body)
    run.step("target-recorded", run.status_has(lambda st: (st.get("target") or {}).get("model") == new))
    run.step("child-written", run.child_serves(new))
    run.kserve(ready=True)
    run.step("stable", run.status_has(lambda st: st["stable"]["model"] == new and "target" not in st))


CANARY = ("target-recorded", "child-written", "canary-ready", "promoted", "child-full")


def canary_promote(run: Run, old: int, new: int) -> None:
    body = online(run.ns, run.name, old)
    body["spec"]["online"]["canary"] = {"trafficPercent": 10}
    first_stable(run, body)
    body["spec"]["model"]["version"] = new
    apply(run.k8s, body)
    run.step("target-recorded", run.status_has(lambda st: (st.get("target") or {}).get("model") == new))
    run.step(
        "child-written",
        lambda: (c := run.child()) and served(c)[0] == new and c["spec"]["predictor"].get("canaryTrafficPercent") == 10,
    )
    gen = run.child()["metadata"]["generation"]
    latest, prev = f"{run.name}-predictor-{gen:05d}", run.status()["stable"]["kserveRevision"]
    run.kserve(
        ready=True,
        traffic=[
            {"revisionName": latest, "percent": 10, "latestRevision": True, "tag": "latest"},
            {"revisionName": prev, "percent": 90, "latestRevision": False, "tag": "prev"},
        ],
    )
    run.step(
        "canary-ready",
        run.status_has(
            lambda st: (st.get("target") or {}).get("traffic") == 10 and condition(st, "CanaryReady").get("status") == "True"
        ),
    )
    annotate(run.k8s, run.ns, "inferenceservices", run.name, **{"fti.dev/promote": "p1"})
    run.step(
        "promoted",
        run.status_has(
            lambda st: (st.get("handled") or {}).get("promote") == "p1" and st["stable"]["model"] == new and "target" not in st
        ),
    )
    run.step("child-full", lambda: (c := run.child()) and "canaryTrafficPercent" not in c["spec"]["predictor"])
    stable_ready_again(run)  # KServe moves all traffic to the promoted revision


def stable_ready_again(run: Run) -> None:
    """KServe reports the child ready again, the stable pair rendered anew (after a promotion, a
    rollback) under a new KServe revision name; wait until the status records that name, so the
    end state does not depend on whether the last reconcile had run."""
    run.kserve(ready=True)
    child = run.child() or {}
    latest = ((child.get("status") or {}).get("components") or {}).get("predictor", {}).get("latestReadyRevision")
    run.step("stable-observed", run.status_has(lambda st: latest and (st.get("stable") or {}).get("kserveRevision") == latest))


AUTO_ROLLBACK = ("target-recorded", "child-written", "not-ready-seen", "down-across-deadline", "rolled-back", "child-restored")


def deadline_of(run: Run) -> datetime:
    since = datetime.fromisoformat(run.notes["since"])
    return since + timedelta(seconds=run.notes["timeout"])


def auto_rollback(run: Run, old: int, new: int, timeout: int) -> None:
    """`down-across-deadline` kills the operator before the deadline and starts it after (Run.down_until)."""
    run.notes["timeout"] = timeout
    body = online(run.ns, run.name, old, readinessTimeout=f"{timeout}s")
    first_stable(run, body)
    body["spec"]["model"]["version"] = new
    apply(run.k8s, body)
    st = run.step("target-recorded", run.status_has(lambda st: (st.get("target") or {}).get("model") == new))
    run.notes["since"] = st["target"]["since"]
    run.step("child-written", run.child_serves(new))
    run.kserve(ready=False, reason="RevisionFailed", message=SKEW)

    def not_ready_seen() -> Any:
        st = run.status()
        return "skew guard" in condition(st, "Progressing").get("message", "") and "failed" not in st and st

    run.step("not-ready-seen", not_ready_seen)
    # The same observation, as the last one before the deadline: `down_until` keeps the operator
    # down until the deadline has passed, so only the recorded `since` can make it fire on time.
    run.step("down-across-deadline", lambda: "failed" not in run.status())
    run.step("rolled-back", run.status_has(lambda st: st.get("failed")), timeout=120 + timeout)
    run.step("child-restored", run.child_serves(old))
    stable_ready_again(run)


REMATERIALIZE = ("waiting-for-features", "job-created", "run-recorded", "target-recorded", "child-written", "stable")


def rematerializing_rollback(run: Run, retired_model: int, current_model: int, pipeline: str, retired: int) -> None:
    """Serve `current_model` with no history, so `retired` of `pipeline` retires; then the spec
    names `retired_model` again (GitOps), which reads that version: it must come back first."""
    body = online(run.ns, run.name, current_model, revisionHistoryLimit=0)
    first_stable(run, body)
    seen: list[dict] = [{}]

    def retired_now() -> bool:
        seen[0] = version_entry(run.k8s, run.ns, pipeline, retired)
        return seen[0].get("state") == "Retired"

    try:
        wait_until(retired_now, timeout=120, description=f"{pipeline} v{retired} retired")
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; {pipeline} v{retired} is {seen[0]}") from None
    before = remat_jobs(run.k8s, run.ns, pipeline, retired)
    run.notes["jobs_before"] = before
    body["spec"]["model"]["version"] = retired_model
    apply(run.k8s, body)
    run.step(
        "waiting-for-features",
        run.status_has(
            lambda st: (
                (st.get("pending") or {}).get("model") == retired_model
                and condition(st, "Progressing").get("reason") in ("WaitingForFeatures", "Rematerializing")
            )
        ),
    )
    jobs = run.step("job-created", lambda: remat_jobs(run.k8s, run.ns, pipeline, retired) - before)
    [job] = jobs
    run.step(
        "run-recorded",
        lambda: (version_entry(run.k8s, run.ns, pipeline, retired).get("lastRun") or {}).get("job") == job,
        timeout=600,
    )
    run.step("target-recorded", run.status_has(lambda st: (st.get("target") or {}).get("model") == retired_model))
    run.step("child-written", run.child_serves(retired_model))
    run.kserve(ready=True)
    run.step("stable", run.status_has(lambda st: st["stable"]["model"] == retired_model and "target" not in st))


# ---- what a run ends with -------------------------------------------------------------------------


def _clean(value: Any, name: str) -> Any:
    """Timestamps out, the per-run object name replaced: what two runs of one flow must share."""
    if isinstance(value, dict):
        return {k: _clean(v, name) for k, v in value.items() if k not in TIMESTAMPS}
    if isinstance(value, list):
        return [_clean(v, name) for v in value]
    if isinstance(value, str):
        return value.replace(name, "NAME")
    return value


def end_state(run: Run) -> dict[str, Any]:
    """The KServe child (spec, labels, our revision annotation, how many spec writes), the status
    without timestamps, and the Events the operator posted on the InferenceService, per reason."""
    child = run.child() or {}
    meta = child.get("metadata") or {}
    return _clean(
        {
            "child": {
                "spec": child.get("spec"),
                "labels": meta.get("labels"),
                "revision": (meta.get("annotations") or {}).get("fti.dev/revision"),
                "generation": meta.get("generation"),
            },
            "status": run.status(),
            "events": dict(Counter(e.reason for e in events(run.k8s, run.ns, run.name))),
        },
        run.name,
    )


def delete(run: Run) -> None:
    """Delete the InferenceService and wait until it is gone (its features are then needed by nothing)."""
    try:
        custom(run.k8s).delete_namespaced_custom_object(GROUP, VERSION, run.ns, "inferenceservices", run.name)
    except ApiException as exc:
        if exc.status != 404:
            raise

    def gone() -> bool:
        try:
            get(run.k8s, run.ns, "inferenceservices", run.name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=60, description=f"{run.name} deleted")
