"""More rollouts on the real control plane: features that arrive late, canaries that end badly,
and a GitOps rollback whose features had been retired (docs/rollouts.md).

As in test_rollouts.py (tests/support/rollouts.py has the helpers both use): the operator runs as a process with a
token of the chart's ServiceAccount, the pipelines run for real on the small generated data
set, and KServe's controller is the one stand-in (`set_isvc_status` writes the status KServe
would). Each scenario asserts the KServe object as the API server has it, the status the
operator wrote and one Event per transition.

The scenarios share one namespace and run in file order: the upgrade held for its features
trains model 2 on card_profiles v2; the canaries use models 1 and 2; the GitOps rollback goes
back from model 2 to model 1, whose card_profiles v1 was retired meanwhile.
"""

from __future__ import annotations

import os

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from controlplane.kserve import set_isvc_status
from fti_pipelines.store.online import open_online_store
from support.examples import example
from support.rollouts import (
    GROUP,
    KSERVE,
    VERSION,
    apply,
    condition,
    custom,
    events,
    fraud_pipelines,
    get,
    kserve_child,
    online,
    served_model,
    trained,
    wait_child_model,
    wait_status,
)
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROFILES = "card-profiles"


def annotate(k8s, namespace: str, plural: str, name: str, annotations: dict[str, str]) -> dict:
    return custom(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name, {"metadata": {"annotations": annotations}}
    )


def fg_version(k8s, namespace: str, version: int) -> dict:
    """card-profiles' status line for one feature-group version ({} while there is none)."""
    st = get(k8s, namespace, "featurepipelines", PROFILES).get("status") or {}
    return next((v for v in st.get("versions") or [] if v["version"] == version), {})


def wait_run(k8s, namespace: str, version: int, check, description: str) -> dict:
    """Wait for card-profiles' status of `version` to satisfy `check`; a failed run fails at once."""

    def done():
        entry = fg_version(k8s, namespace, version)
        run = entry.get("lastRun") or {}
        assert run.get("succeeded") is not False, entry
        return entry if check(entry) else None

    return wait_until(done, timeout=600, description=f"card_profiles v{version}: {description}")


def delete_service(k8s, namespace: str, name: str) -> None:
    custom(k8s).delete_namespaced_custom_object(GROUP, VERSION, namespace, "inferenceservices", name)

    def gone() -> bool:
        try:
            get(k8s, namespace, "inferenceservices", name)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_until(gone, timeout=60, description=f"{name} deleted")


def child_versions(k8s, namespace: str, name: str, since: str, until: str) -> list[dict]:
    """Every version of the KServe child the API server had after resourceVersion `since`, up to `until`."""
    seen: list[dict] = []
    stream = watch.Watch().stream(
        custom(k8s).list_namespaced_custom_object,
        *KSERVE[:2],
        namespace,
        KSERVE[2],
        field_selector=f"metadata.name={name}",
        resource_version=since,
        timeout_seconds=60,
    )
    for event in stream:
        seen.append(event["object"])
        if event["object"]["metadata"]["resourceVersion"] == until:
            break
    assert seen and seen[-1]["metadata"]["resourceVersion"] == until, "the watch did not reach the final version"
    return seen


@pytest.fixture(scope="module")
def fraud(op, k8s, pod_runner):
    """A namespace with both feature groups materialized (card_profiles v1) and model 1 Validated."""
    ns = f"scenarios-{os.getpid()}"
    fraud_pipelines(k8s, ns)
    mv = wait_until(lambda: trained(k8s, ns, 1), timeout=900, description="model 1 trained")
    assert mv["phase"] == "Validated", (mv, pod_runner.dump(ns))
    yield ns
    client.CoreV1Api(k8s).delete_namespace(ns)


def test_an_upgrade_waits_for_its_features_then_proceeds_by_itself(op, k8s, fraud, pod_runner) -> None:
    ns = fraud
    apply(k8s, online(ns, "held", 1))
    wait_child_model(k8s, ns, "held", 1)
    set_isvc_status(k8s, ns, "held", ready=True)
    wait_status(k8s, ns, "held", lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable")

    # card_profiles v2, materialized offline only (not online yet), and model 2 trained on it.
    profiles = example("feature-pipeline-profiles.yaml", ns, **{"fti.dev/run": "v2-offline"})
    profiles["spec"]["featureGroup"].update(version=2, online=False)
    apply(k8s, profiles)
    v2 = wait_run(k8s, ns, 2, lambda e: (e.get("lastRun") or {}).get("succeeded"), "offline run")
    assert v2["online"] is False and "onlineRowsWritten" not in v2["lastRun"]
    training = example("training-pipeline.yaml", ns)
    fv = training["spec"]["featureView"]
    fv["version"] = 2
    for ref in fv["features"]:
        if ref["featureGroup"]["name"] == "card_profiles":
            ref["featureGroup"]["version"] = 2
    apply(k8s, training)
    mv = wait_until(lambda: trained(k8s, ns, 2), timeout=900, description="model 2 trained on card_profiles v2")
    assert mv["phase"] == "Validated", (mv, pod_runner.dump(ns))
    assert {"name": "card_profiles", "version": 2} in mv["featureGroups"]

    # The spec names model 2: held, the KServe object untouched, model 1 serving.
    before = kserve_child(k8s, ns, "held")
    apply(k8s, online(ns, "held", 2))
    obj = wait_status(k8s, ns, "held", lambda st: (st.get("pending") or {}).get("model") == 2, "model 2 pending its features")
    progressing = condition(obj, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "WaitingForFeatures"), progressing
    assert "card_profiles v2 not online" in progressing["message"]
    assert condition(obj, "UpToDate")["reason"] == "FeaturesNotReady" and condition(obj, "Ready")["status"] == "True"
    assert obj["status"]["stable"]["model"] == 1 and "target" not in obj["status"]
    assert obj["status"]["pending"]["featureGroups"] == mv["featureGroups"]

    # Declaring the group online does not put v2's rows in the online store: still held, now saying why.
    profiles["spec"]["featureGroup"]["online"] = True
    profiles["metadata"]["annotations"] = {}
    apply(k8s, profiles)
    obj = wait_status(
        k8s,
        ns,
        "held",
        lambda st: "offline only" in condition({"status": st}, "UpToDate").get("message", ""),
        "held while v2 is offline only",
    )
    assert condition(obj, "Progressing")["reason"] == "WaitingForFeatures" and "target" not in obj["status"]
    after = kserve_child(k8s, ns, "held")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] and after["spec"] == before["spec"]
    assert len(events(k8s, ns, "held", "FeaturesNotReady")) == 1

    # The run that publishes v2 online: the upgrade proceeds by itself.
    annotate(k8s, ns, "featurepipelines", PROFILES, {"fti.dev/run": "v2-online"})
    v2 = wait_run(k8s, ns, 2, lambda e: e.get("online"), "published online")
    assert v2["lastRun"]["onlineRowsWritten"] > 0
    wait_child_model(k8s, ns, "held", 2, timeout=120)
    obj = wait_status(k8s, ns, "held", lambda st: (st.get("target") or {}).get("model") == 2, "model 2 target")
    assert "pending" not in obj["status"] and condition(obj, "UpToDate")["status"] == "True"
    set_isvc_status(k8s, ns, "held", ready=True)
    obj = wait_status(k8s, ns, "held", lambda st: (st.get("stable") or {}).get("model") == 2, "model 2 stable")
    assert condition(obj, "Progressing")["reason"] == "RolloutComplete" and obj["status"]["stable"]["featureView"] == 2
    child = kserve_child(k8s, ns, "held")
    assert served_model(child) == 2 and "canaryTrafficPercent" not in child["spec"]["predictor"]
    assert len(events(k8s, ns, "held", "RolloutStarted")) == 2  # model 1, then model 2 — once each
    assert len(events(k8s, ns, "held", "RolloutComplete")) == 2


def settled_after(k8s, ns: str, name: str) -> dict:
    """The InferenceService once the operator has handled everything before this call: a promote
    request with no canary changes nothing but is recorded, and the operator handles one
    object's events in order."""
    token = f"barrier-{get(k8s, ns, 'inferenceservices', name)['metadata']['resourceVersion']}"
    annotate(k8s, ns, "inferenceservices", name, {"fti.dev/promote": token})
    return wait_status(k8s, ns, name, lambda st: (st.get("handled") or {}).get("promote") == token, "caught up")


def canary_on_model_2(k8s, ns: str, name: str, **rollout) -> dict:
    """Model 1 stable, then model 2 as a 10 % canary that KServe reports ready and routed."""
    body = online(ns, name, 1, **rollout)
    body["spec"]["online"]["canary"] = {"trafficPercent": 10}
    apply(k8s, body)
    wait_child_model(k8s, ns, name, 1)
    set_isvc_status(k8s, ns, name, ready=True)
    wait_status(k8s, ns, name, lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable")
    body["spec"]["model"]["version"] = 2
    apply(k8s, body)
    child = wait_child_model(k8s, ns, name, 2)
    assert child["spec"]["predictor"]["canaryTrafficPercent"] == 10
    return body


def test_canary_abort_gives_the_stable_pair_all_traffic_and_leaves_the_spec(op, k8s, fraud) -> None:
    ns, name = fraud, "ab"
    canary_on_model_2(k8s, ns, name)
    set_isvc_status(
        k8s,
        ns,
        name,
        ready=True,
        traffic=[
            {"revisionName": f"{name}-predictor-00002", "percent": 10, "latestRevision": True, "tag": "latest"},
            {"revisionName": f"{name}-predictor-00001", "percent": 90, "latestRevision": False, "tag": "prev"},
        ],
    )
    obj = wait_status(k8s, ns, name, lambda st: (st.get("target") or {}).get("traffic") == 10, "canary at 10 %")
    generation, since = obj["metadata"]["generation"], kserve_child(k8s, ns, name)["metadata"]["resourceVersion"]

    annotate(k8s, ns, "inferenceservices", name, {"fti.dev/abort": "a1"})
    obj = wait_status(k8s, ns, name, lambda st: st.get("failed"), "aborted")
    st = obj["status"]
    assert (st["failed"]["model"], st["failed"]["reason"]) == (2, "Aborted") and st["handled"]["abort"] == "a1"
    assert "target" not in st and (st["stable"]["model"], st["stable"]["traffic"]) == (1, 100)
    progressing = condition(obj, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "Aborted") and "retry" in progressing["message"]
    assert condition(obj, "Ready")["status"] == "True" and condition(obj, "CanaryReady") == {}
    # The spec is left alone: Git still names model 2.
    assert obj["spec"]["model"]["version"] == 2 and obj["metadata"]["generation"] == generation
    child = wait_child_model(k8s, ns, name, 1)
    assert "canaryTrafficPercent" not in child["spec"]["predictor"]
    # Never more than the canary share to the aborted pair: no version of the KServe object on
    # the way rendered model 2 without its 10 %.
    for version in child_versions(k8s, ns, name, since, child["metadata"]["resourceVersion"]):
        if served_model(version) == 2:
            assert version["spec"]["predictor"].get("canaryTrafficPercent") == 10, version["spec"]["predictor"]
    [aborted] = events(k8s, ns, name, "Aborted")
    assert aborted.type == "Warning" and "model 2" in aborted.message

    # KServe reports the stable pair ready again: nothing is retried while the spec stays.
    set_isvc_status(k8s, ns, name, ready=True)
    obj = settled_after(k8s, ns, name)
    assert obj["status"]["failed"]["model"] == 2 and "target" not in obj["status"]
    assert served_model(kserve_child(k8s, ns, name)) == 1 and len(events(k8s, ns, name, "Aborted")) == 1
    assert not events(k8s, ns, name, "CanaryStarted")[1:], "the aborted canary was started again"
    delete_service(k8s, ns, name)


def test_canary_not_ready_in_time_is_rolled_back_and_not_retried(op, k8s, fraud) -> None:
    ns, name = fraud, "late"
    rollbacks = op.metric("fti_rollbacks_total", reason="ProgressDeadlineExceeded")
    canary_on_model_2(k8s, ns, name, readinessTimeout="20s")
    obj = wait_status(k8s, ns, name, lambda st: (st.get("target") or {}).get("model") == 2, "model 2 canary target")
    since = obj["status"]["target"]["since"]
    assert condition(obj, "CanaryReady")["status"] == "Unknown"
    # KServe: the canary's revision fails, the previous one keeps all the traffic.
    set_isvc_status(
        k8s,
        ns,
        name,
        ready=False,
        reason="RevisionFailed",
        message="readiness probe failed: skew guard: feature view 2 expected, store has 1",
    )
    obj = wait_status(k8s, ns, name, lambda st: st.get("failed"), "canary rolled back at its deadline", timeout=120)
    failed = obj["status"]["failed"]
    assert (failed["model"], failed["featureView"], failed["reason"]) == (2, 2, "ProgressDeadlineExceeded")
    assert "skew guard" in failed["message"] and failed["since"] == since
    assert obj["status"]["stable"]["model"] == 1 and obj["status"]["stable"]["traffic"] == 100
    assert "target" not in obj["status"] and condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Progressing")["status"] == "False" and condition(obj, "Progressing")["reason"] == "RolledBack"
    child = wait_child_model(k8s, ns, name, 1)
    assert "canaryTrafficPercent" not in child["spec"]["predictor"]
    [rolled_back] = events(k8s, ns, name, "RolledBack")
    assert rolled_back.type == "Warning" and "model 2" in rolled_back.message
    assert op.metric("fti_rollbacks_total", reason="ProgressDeadlineExceeded") == rollbacks + 1

    # Not retried while the spec stays: KServe reporting the stable pair again changes nothing else.
    set_isvc_status(k8s, ns, name, ready=True)
    obj = settled_after(k8s, ns, name)
    assert obj["status"]["failed"]["model"] == 2 and "target" not in obj["status"]
    assert served_model(kserve_child(k8s, ns, name)) == 1 and len(events(k8s, ns, name, "RolledBack")) == 1
    assert len(events(k8s, ns, name, "CanaryStarted")) == 1
    assert op.metric("fti_rollbacks_total", reason="ProgressDeadlineExceeded") == rollbacks + 1
    delete_service(k8s, ns, name)


def test_gitops_rollback_to_a_retired_feature_version_brings_it_back(op, k8s, fraud) -> None:
    """After the held upgrade `held` serves model 2 (card_profiles v2) with model 1 in its history,
    and the canaries are gone: once the history is dropped, card_profiles v1 is needed by nothing."""
    ns = fraud
    batch = client.BatchV1Api(k8s)
    assert [h["model"] for h in get(k8s, ns, "inferenceservices", "held")["status"]["history"]] == [1]
    apply(k8s, online(ns, "held", 2, revisionHistoryLimit=0))
    wait_status(k8s, ns, "held", lambda st: not st.get("history") and (st.get("stable") or {}).get("model") == 2, "no history")
    wait_run(k8s, ns, 1, lambda e: e.get("state") == "Retired", "retired")
    cron = wait_until(
        lambda: (c := batch.read_namespaced_cron_job(f"{PROFILES}-v1", ns)).spec.suspend and c,
        timeout=30,
        description="v1 CronJob suspended",
    )
    assert cron.metadata.annotations.get("fti.dev/retired") == "true", "kept, marked retired"
    # Needed by nothing, its online data goes: a Job made from the suspended CronJob drops it
    # (the offline snapshots stay, to bring the version back below).
    entry = wait_run(k8s, ns, 1, lambda e: (e.get("onlineDrop") or {}).get("succeeded"), "online data dropped")
    dropped = entry["onlineDrop"]
    assert entry["online"] is False and dropped["keysDropped"] > 0 and entry["lastRun"]["job"] != dropped["job"]
    [drop_event] = events(k8s, ns, PROFILES, "OnlineDataDropped")
    assert dropped["job"] in drop_event.message and len(events(k8s, ns, PROFILES, "DroppingOnlineData")) == 1
    with open_online_store(op.env["FTI_ONLINE_STORE"], ns) as store:
        assert store.version_info("card_profiles", 1) is None and store.version_info("card_profiles", 2)["rows"] > 0

    # No pod may start in the namespace for now, so the re-materialization is seen under way.
    core = client.CoreV1Api(k8s)
    quota = client.V1ResourceQuota(metadata=client.V1ObjectMeta(name="hold-pods"), spec={"hard": {"pods": "0"}})
    core.create_namespaced_resource_quota(ns, quota)
    wait_until(lambda: core.read_namespaced_resource_quota("hold-pods", ns).status.hard, description="quota in force")
    before = kserve_child(k8s, ns, "held")

    # git revert: the spec names model 1 again.
    apply(k8s, online(ns, "held", 1, revisionHistoryLimit=0))
    entry = wait_run(k8s, ns, 1, lambda e: e.get("rematerializeJob"), "re-materializing")
    job = entry["rematerializeJob"]
    assert entry["state"] == "Rematerializing" and batch.read_namespaced_job(job, ns)
    cron = batch.read_namespaced_cron_job(f"{PROFILES}-v1", ns)
    assert not cron.spec.suspend and "fti.dev/retired" not in (cron.metadata.annotations or {})
    [started] = events(k8s, ns, PROFILES, "Rematerializing")
    assert job in started.message and f"{ns}/held" in started.message
    # The InferenceService waits, naming the Job; model 2 keeps serving, its KServe object untouched.
    obj = wait_status(
        k8s,
        ns,
        "held",
        lambda st: job in condition({"status": st}, "Progressing").get("message", ""),
        "waiting for the re-materialization Job",
    )
    assert condition(obj, "Progressing")["reason"] == "Rematerializing" and job in condition(obj, "UpToDate")["message"]
    assert obj["status"]["pending"]["model"] == 1 and obj["status"]["stable"]["model"] == 2
    assert "target" not in obj["status"] and condition(obj, "Ready")["status"] == "True"
    after = kserve_child(k8s, ns, "held")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] and after["spec"] == before["spec"]
    core.delete_namespaced_resource_quota("hold-pods", ns)

    # The run finishes: v1 is retained, and the rollback proceeds by itself.
    entry = wait_run(k8s, ns, 1, lambda e: (e.get("lastRun") or {}).get("job") == job, "re-materialized")
    assert entry["state"] == "Retained" and f"{ns}/held" in entry["neededBy"] and "rematerializeJob" not in entry
    assert entry["online"] is True, "the re-materializing run wrote the dropped online data again"
    with open_online_store(op.env["FTI_ONLINE_STORE"], ns) as store:
        assert store.version_info("card_profiles", 1)["rows"] == dropped["keysDropped"]
    wait_child_model(k8s, ns, "held", 1, timeout=120)
    set_isvc_status(k8s, ns, "held", ready=True)
    obj = wait_status(k8s, ns, "held", lambda st: (st.get("stable") or {}).get("model") == 1, "model 1 stable again")
    st = obj["status"]
    assert st["stable"]["featureView"] == 1 and {"name": "card_profiles", "version": 1} in st["stable"]["featureGroups"]
    assert "pending" not in st and condition(obj, "Progressing")["reason"] == "RolloutComplete"
    child = kserve_child(k8s, ns, "held")
    assert served_model(child) == 1 and "canaryTrafficPercent" not in child["spec"]["predictor"]
    assert len(events(k8s, ns, PROFILES, "Rematerializing")) == 1
    assert len(events(k8s, ns, "held", "RolloutComplete")) == 3  # model 1, model 2, model 1 again
    assert len([j for j in batch.list_namespaced_job(ns).items if j.metadata.name == job]) == 1
