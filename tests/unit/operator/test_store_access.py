"""Store access (reconcile/store_access.py): a Secret or the PVC that pipeline pods reference is
checked in the object's namespace before anything is rendered. Missing: StoreAccess=False and
Ready=False naming the object, the namespace and the chart value, one Warning Event, no child.
Created later: the next reconcile proceeds, no spec change. Pure parts first, then the three
reconcilers through the local driver (the same reconcilers as the controller, on MemKube)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fti_operator.config import OperatorConfig, SecretKeyRef
from fti_operator.local.driver import LocalDriver
from fti_operator.reconcile import store_access
from fti_operator.reconcile.store_access import Missing, Needed

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "fraud"
FULL = OperatorConfig(
    store_credentials_secret="fti-store-credentials",
    online_store_secret=SecretKeyRef("fti-online-store", "uri"),
    store_volume_claim="fti-data",
)


# ---- pure ----------------------------------------------------------------------------------------
def test_what_is_needed_follows_the_configuration():
    assert store_access.needed(OperatorConfig()) == []
    assert [(n.plural, n.name, n.key) for n in store_access.needed(FULL)] == [
        ("secrets", "fti-store-credentials", None),
        ("secrets", "fti-online-store", "uri"),
        ("persistentvolumeclaims", "fti-data", None),
    ]
    assert [n.value.split()[0] for n in store_access.needed(FULL)] == [
        "stores.credentialsSecret",
        "stores.onlineStoreSecret",
        "stores.volumeClaim",
    ]


def test_the_condition_names_each_missing_object_the_namespace_and_the_chart_value():
    creds, online, claim = store_access.needed(FULL)
    found = store_access.access_condition("fraud", [creds, online, claim], [])
    assert (found["type"], found["status"], found["reason"]) == ("StoreAccess", "True", "StoreObjectsFound")
    assert "fti-store-credentials" in found["message"] and "namespace fraud" in found["message"]

    missing = store_access.access_condition(
        "fraud",
        [creds, online, claim],
        [Missing(online, "SecretKeyNotFound"), Missing(claim, "VolumeClaimNotFound")],
    )
    assert (missing["status"], missing["reason"]) == ("False", "SecretKeyNotFound")
    message = missing["message"]
    assert "Secret fti-online-store in namespace fraud has no key uri (chart value stores.onlineStoreSecret" in message
    assert "PersistentVolumeClaim fti-data not found in namespace fraud (chart value stores.volumeClaim" in message


def test_blocked_status_keeps_the_other_conditions_and_the_transition_time():
    access = store_access.access_condition(
        "ns", [Needed("secrets", "s", "v")], [Missing(Needed("secrets", "s", "v"), "SecretNotFound")]
    )
    body = {
        "metadata": {"generation": 3},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Materialized", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Materialized", "status": "True", "reason": "RunSucceeded", "lastTransitionTime": "t0"},
                {**access, "lastTransitionTime": "2026-02-02T00:00:00Z"},
            ]
        },
    }
    status = store_access.blocked_status(body, access)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert status["observedGeneration"] == 3
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "SecretNotFound")
    assert by_type["Ready"]["lastTransitionTime"] != "2026-01-01T00:00:00Z"  # it flipped
    assert by_type["StoreAccess"]["lastTransitionTime"] == "2026-02-02T00:00:00Z"  # it did not
    assert by_type["Materialized"]["lastTransitionTime"] == "t0"

    # A status computed afterwards by a reconciler carries the condition, transition time kept.
    computed = {"conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": ""}]}
    kept = store_access.with_access(computed, access, body)
    assert [c["type"] for c in kept["conditions"]] == ["Ready", "StoreAccess"]
    assert kept["conditions"][1]["lastTransitionTime"] == "2026-02-02T00:00:00Z"
    assert store_access.with_access({"conditions": kept["conditions"]}, None, body)["conditions"] == computed["conditions"]


# ---- the reconcilers, on MemKube ---------------------------------------------------------------------
@pytest.fixture
def driver(tmp_path, monkeypatch):
    monkeypatch.setenv("FTI_STORE_CREDENTIALS_SECRET", "fti-store-credentials")
    monkeypatch.setenv("FTI_ONLINE_STORE_SECRET", "fti-online-store:uri")
    d = LocalDriver(tmp_path / "state", progress=lambda _m: None)
    yield d
    d.stop()


def _example(name: str) -> dict:
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    doc["metadata"]["namespace"] = "fraud"
    return doc


def _cond(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def _secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "fraud"}, "stringData": data}


def _children(driver: LocalDriver) -> list[str]:
    return [
        f"{plural}/{o['metadata']['name']}"
        for api, plural in (("batch/v1", "jobs"), ("batch/v1", "cronjobs"), ("serving.kserve.io/v1beta1", "inferenceservices"))
        for o in driver.kube.list(api, plural, "fraud")
    ]


def _warnings(driver: LocalDriver) -> list[dict]:
    return [e for e in driver.kube.list("v1", "events", "fraud") if e["type"] == "Warning"]


@pytest.mark.parametrize(
    "example",
    ["feature-pipeline-transactions.yaml", "training-pipeline.yaml", "inference-online.yaml", "inference-batch.yaml"],
)
def test_a_missing_secret_is_a_condition_an_event_and_no_child(driver, example):
    doc = _example(example)
    driver.apply(doc)
    driver.reconcile_all()
    driver.reconcile_all()  # a second pass announces nothing new
    obj = driver.get(doc["kind"], "fraud", doc["metadata"]["name"])
    access, ready = _cond(obj, "StoreAccess"), _cond(obj, "Ready")
    assert (access["status"], access["reason"]) == ("False", "SecretNotFound"), access
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound"), ready
    for text in (
        "Secret fti-store-credentials",
        "Secret fti-online-store (key uri)",
        "namespace fraud",
        "stores.credentialsSecret",
    ):
        assert text in access["message"], access["message"]
    assert access["observedGeneration"] == obj["metadata"]["generation"]
    assert _children(driver) == []
    warnings = [e for e in _warnings(driver) if e["involvedObject"]["name"] == doc["metadata"]["name"]]
    assert [e["reason"] for e in warnings] == ["SecretNotFound"], warnings


def test_the_missing_key_and_then_the_secret_created_later_let_the_pipeline_proceed(driver):
    doc = _example("feature-pipeline-transactions.yaml")
    name = doc["metadata"]["name"]
    driver.apply(doc)
    driver.kube.create(_secret("fti-store-credentials", {"AWS_ACCESS_KEY_ID": "k"}))
    driver.kube.create(_secret("fti-online-store", {"url": "redis://typo"}))
    partial = driver.kube.get_metadata("v1", "secrets", "fraud", "fti-store-credentials")
    assert partial is not None and set(partial) == {"apiVersion", "kind", "metadata"}, partial  # no value in it
    driver.reconcile_all()
    access = _cond(driver.get("FeaturePipeline", "fraud", name), "StoreAccess")
    assert (access["status"], access["reason"]) == ("False", "SecretKeyNotFound"), access
    assert "Secret fti-online-store in namespace fraud has no key uri" in access["message"]
    assert _children(driver) == []

    # The key is added: no spec change, the next reconcile (the driver's requeue) proceeds.
    secret = driver.kube.get("v1", "secrets", "fraud", "fti-online-store")
    driver.kube.patch("v1", "secrets", "fraud", "fti-online-store", {"stringData": {**secret["stringData"], "uri": "redis://x"}})
    generation = driver.get("FeaturePipeline", "fraud", name)["metadata"]["generation"]
    driver.reconcile_all()
    obj = driver.get("FeaturePipeline", "fraud", name)
    assert obj["metadata"]["generation"] == generation
    assert (_cond(obj, "StoreAccess")["status"], _cond(obj, "StoreAccess")["reason"]) == ("True", "StoreObjectsFound")
    assert _cond(obj, "Ready")["reason"] != "SecretKeyNotFound"
    assert _children(driver), "nothing was created once the Secret had its key"
    events = driver.kube.list("v1", "events", "fraud")
    assert [e["reason"] for e in events if e["reason"] in ("SecretKeyNotFound", "StoreAccessRestored")] == [
        "SecretKeyNotFound",
        "StoreAccessRestored",
    ]

    # Deleted again: the condition says so, and what exists stays (nothing is torn down).
    before = _children(driver)
    driver.kube.delete("v1", "secrets", "fraud", "fti-store-credentials")
    driver.reconcile_all()
    assert _cond(driver.get("FeaturePipeline", "fraud", name), "StoreAccess")["reason"] == "SecretNotFound"
    assert _children(driver) == before


def test_the_secret_is_only_read_for_its_key_and_the_credentials_only_as_metadata(driver):
    driver.apply(_example("feature-pipeline-transactions.yaml"))
    driver.kube.calls.clear()
    driver.reconcile_all()
    # Both Secrets are missing: the credentials one is asked for as metadata, the online one whole.
    assert driver.kube.calls[("GET", "secrets")] == 2


def test_fti_local_has_no_volume_claim_to_check(tmp_path, monkeypatch):
    monkeypatch.setenv("FTI_STORE_VOLUME_CLAIM", "fti-data")
    d = LocalDriver(tmp_path / "state", progress=lambda _m: None)
    try:
        assert d.config.store_volume_claim is None
        assert store_access.needed(d.config) == []
    finally:
        d.stop()


def test_fti_local_apply_says_which_secret_is_missing(driver):
    from fti_operator.api import FeaturePipeline, TrainingPipeline
    from fti_operator.local.apply import run_feature_pipelines, run_training_pipelines
    from fti_operator.local.driver import LocalRunError

    fp = FeaturePipeline.model_validate(_example("feature-pipeline-transactions.yaml"))
    with pytest.raises(LocalRunError, match="SecretNotFound: Secret fti-store-credentials not found in namespace fraud"):
        run_feature_pipelines(driver, [fp])
    tp = TrainingPipeline.model_validate(_example("training-pipeline.yaml"))
    with pytest.raises(LocalRunError, match="nothing started: SecretNotFound"):
        run_training_pipelines(driver, [tp])
