"""The training pipeline end to end on the example data: contract, registry, gates, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from fti_pipelines.contract import run_pipeline
from fti_pipelines.examples import fraud
from fti_pipelines.registry import ModelRegistry
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.tenancy import namespace_store
from fti_pipelines.training.run import main

FEATURES = ["amount", "category", "amount_sum_1d", "tx_count_1d", "amount_avg_7d", "tx_count_1h"]
SPEC = {
    "model": {"name": "fraud", "estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 25}},
    "featureView": {
        "name": "fraud",
        "version": 1,
        "label": {"featureGroup": {"name": "card_transactions", "version": 1}, "column": "is_fraud"},
        "features": [
            {"featureGroup": {"name": "card_transactions", "version": 1}, "columns": FEATURES},
            {"featureGroup": {"name": "card_profiles", "version": 1}, "columns": ["age_group", "credit_limit"]},
        ],
        "transformations": [
            {"column": "category", "type": "oneHot"},
            {"column": "age_group", "type": "oneHot"},
            {"column": "credit_limit", "type": "standardScaler"},
            {"column": "amount", "type": "log1p"},
        ],
    },
    "trainingData": {"split": {"type": "time", "testFraction": 0.25}},
    "evaluation": {
        "metrics": ["roc_auc", "average_precision", "f1"],
        "gates": [{"metric": "roc_auc", "min": 0.8}],
        "bias": {"sensitiveColumn": "age_group", "metric": "recall", "maxGap": 0.5, "minGroupSize": 20},
    },
}


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory):
    root = tmp_path_factory.mktemp("fti")
    uri = f"file://{root}/store"
    fs = FeatureStore(namespace_store(uri, "default"))
    tx = fraud.aggregate_transactions(fraud.transactions(n_cards=300, days=20, seed=3))
    fs.ingest("card_transactions", 1, tx, primary_key=["cc_num"], event_time="event_time", mode="full")
    fs.ingest(
        "card_profiles", 1, fraud.card_profiles(n_cards=300, seed=3), primary_key=["cc_num"], event_time="event_time", mode="full"
    )
    return uri


def run(store_uri, tmp_path, spec=None, version=None, uid=None, job=None):
    log = tmp_path / "termination-log"
    env = {"FTI_SPEC": json.dumps(spec or SPEC), "FTI_ARTIFACT_STORE": store_uri, "FTI_TERMINATION_LOG": str(log)}
    if version is not None:
        env["FTI_MODEL_VERSION"] = str(version)
    if uid is not None:
        env["FTI_RESOURCE_UID"] = uid
    if job is not None:
        env["FTI_RUN_ID"] = job
    code = run_pipeline(main, env)
    return code, json.loads(log.read_text())


def spec_with(path: list, value):
    spec = copy.deepcopy(SPEC)
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


def test_validated_model_is_registered_with_its_card_and_report(store_uri, tmp_path):
    code, result = run(store_uri, tmp_path, version=1)
    assert code == 0 and result["ok"] is True
    assert result["verdict"] == "Validated", result
    assert result["model"] == "fraud" and result["version"] == 1
    assert result["metrics"]["roc_auc"] >= 0.8
    assert result["featureView"] == {"name": "fraud", "version": 1}
    assert result["trainingDataset"]["version"] >= 1 and result["trainingDataset"]["hash"].startswith("sha256:")
    assert result["storageUri"] == f"{store_uri}/namespaces/default/models/fraud/1/model"

    registry = ModelRegistry(namespace_store(store_uri, "default"))
    model, card = registry.load("fraud", 1)
    assert card["verdict"] == "Validated"
    assert card["featureView"]["columns"] == [*FEATURES, "age_group", "credit_limit"]
    assert card["entityKeys"] == ["cc_num"]
    assert [c["name"] for c in card["inputSchema"]] == card["featureView"]["columns"]
    assert card["bias"]["sensitiveColumn"] == "age_group" and set(card["bias"]["groups"]) <= set(fraud.AGE_GROUPS) | {"null"}
    assert card["trainingDataset"]["rows"] == card["split"]["train"] + card["split"]["test"] + card["split"]["unlabelled"]
    report = namespace_store(store_uri, "default").list("models", "fraud", "1", "report")
    assert {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png", "report.html", "report.md"} <= set(report)
    assert namespace_store(store_uri, "default").read_bytes("models", "fraud", "1", "report", "roc_curve.png")[:4] == b"\x89PNG"

    # The training profile monitoring compares the prediction log with (docs/monitoring.md).
    assert result["profileUri"] == card["profileUri"] == f"{result['storageUri']}/monitoring-profile.json"
    profile = namespace_store(store_uri, "default").read_json("models", "fraud", "1", "model", "monitoring-profile.json")
    assert list(profile["features"]) == card["featureView"]["columns"]
    assert profile["features"]["category"]["kind"] == "categorical" and profile["features"]["amount"]["kind"] == "numeric"
    assert profile["rows"]["profiled"] == card["split"]["train"] == profile["features"]["amount"]["count"]
    assert profile["score"]["count"] == card["split"]["test"] and len(profile["score"]["quantiles"]) == 1001
    assert profile["trainingDataset"] == {k: card["trainingDataset"][k] for k in ("version", "hash")}
    assert 0 < profile["labelRate"] < 1

    # What KServe's sklearn runtime does with JSON instances: np.array(rows) -> a string array.
    rows = [[900.0, "online", 2500.0, 5, 300.0, 3, "18-25", 1500.0], [12.5, "grocery", 40.0, 1, 45.0, 1, "60+", 8000.0]]
    as_served = np.array(rows)
    assert as_served.dtype.kind == "U"
    proba = model.predict_proba(as_served)[:, 1]
    assert proba.shape == (2,) and proba[0] > proba[1]
    # JSON nulls (a missing feature) reach the model as None in an object array.
    assert model.predict_proba(np.array([[None, "online", None, None, None, None, None, None]], dtype=object)).shape == (1, 2)


def test_same_inputs_reuse_the_same_dataset_version_and_hash(store_uri, tmp_path):
    _, first = run(store_uri, tmp_path, version=11)
    _, second = run(store_uri, tmp_path, version=12)
    assert first["trainingDataset"] == second["trainingDataset"]
    assert first["metrics"] == second["metrics"]  # seeded estimator, same data: same model


def test_a_retried_run_gets_its_own_version_back_and_another_run_the_next_free_one(store_uri, tmp_path):
    code, first = run(store_uri, tmp_path, version=21, uid="uid-a", job="fraud-tp-v21")
    assert code == 0 and first["version"] == 21 and "existing" not in first
    # The same run's pod started again (same owner uid, same Job): its own model, not retrained.
    code, again = run(store_uri, tmp_path, version=21, uid="uid-a", job="fraud-tp-v21")
    assert code == 0 and again["existing"] is True and again["version"] == 21
    # A re-created TrainingPipeline (new uid) asking for the same number with another spec: it
    # never receives the other run's model, it trains its own under the next free version.
    other_spec = spec_with(["model", "params"], {"max_iter": 5})
    code, other = run(store_uri, tmp_path, spec=other_spec, version=21, uid="uid-b", job="fraud-tp-v21")
    assert code == 0 and other["version"] > 21 and "existing" not in other
    registry = ModelRegistry(namespace_store(store_uri, "default"))
    assert registry.card("fraud", other["version"])["params"] == {"max_iter": 5}
    assert registry.claim("fraud", 21)["run"]["resourceUid"] == "uid-a"
    assert registry.claim("fraud", other["version"])["run"] == {
        "namespace": "default",
        "resource": "local",
        "resourceUid": "uid-b",
        "specHash": registry.claim("fraud", other["version"])["run"]["specHash"],
        "job": "fraud-tp-v21",
    }
    # Without an owner uid nothing identifies a retry: a new version every time.
    code, anonymous = run(store_uri, tmp_path, version=21)
    assert code == 0 and anonymous["version"] > other["version"]


def test_failed_gate_is_a_successful_run_with_verdict_rejected(store_uri, tmp_path):
    code, result = run(
        store_uri, tmp_path, spec_with(["evaluation", "gates"], [{"metric": "roc_auc", "min": 0.9999}]), version=31
    )
    assert code == 0 and result["ok"] is True
    assert result["verdict"] == "Rejected"
    assert any("roc_auc" in r and "min 0.9999" in r for r in result["reasons"])
    registry = ModelRegistry(namespace_store(store_uri, "default"))
    assert registry.card("fraud", 31)["verdict"] == "Rejected"


def test_bias_gap_above_max_gap_rejects(store_uri, tmp_path):
    bias = {"sensitiveColumn": "age_group", "metric": "selection_rate", "maxGap": 0.0001, "minGroupSize": 1}
    code, result = run(store_uri, tmp_path, spec_with(["evaluation", "bias"], bias), version=41)
    assert code == 0 and result["verdict"] == "Rejected"
    assert result["bias"]["passed"] is False and result["bias"]["gap"] > 0.0001
    assert any("bias gate selection_rate across age_group" in r for r in result["reasons"])


def test_sensitive_column_that_is_not_a_feature_is_joined_for_the_gate(store_uri, tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["featureView"]["features"][1]["columns"] = ["credit_limit"]
    spec["featureView"]["version"] = 2  # another definition: another feature view version
    spec["featureView"]["transformations"] = [t for t in spec["featureView"]["transformations"] if t["column"] != "age_group"]
    code, result = run(store_uri, tmp_path, spec, version=51)
    assert code == 0, result
    card = ModelRegistry(namespace_store(store_uri, "default")).card("fraud", 51)
    assert "age_group" not in card["featureView"]["columns"]
    assert set(card["bias"]["groups"]) & set(fraud.AGE_GROUPS)


def test_scaler_is_fitted_on_the_training_split_only(store_uri, tmp_path):
    _code, _ = run(store_uri, tmp_path, version=61)
    model, card = ModelRegistry(namespace_store(store_uri, "default")).load("fraud", 61)
    scaler = model.named_steps["features"].named_transformers_["standardScaler"].named_steps["scale"]
    from fti_pipelines.feature_view import TrainingDatasets

    ds = TrainingDatasets(namespace_store(store_uri, "default")).read("fraud", 1, card["trainingDataset"]["version"])
    ds = ds[ds.is_fraud.notna()].sort_values("event_time", kind="stable")
    train = ds.iloc[: card["split"]["train"]]
    assert scaler.mean_[0] == pytest.approx(train.credit_limit.mean())
    assert scaler.mean_[0] != pytest.approx(ds.credit_limit.mean(), rel=1e-9)


def test_random_split_and_entrypoint_and_estimator_without_nan_support(store_uri, tmp_path):
    spec = spec_with(["model"], {"name": "fraud", "estimator": "sklearn.naive_bayes.GaussianNB"})
    spec["trainingData"]["split"] = {"type": "random", "testFraction": 0.3, "seed": 1}
    code, result = run(store_uri, tmp_path, spec, version=71)
    assert code == 0, result
    model, card = ModelRegistry(namespace_store(store_uri, "default")).load("fraud", 71)
    assert "impute" in model.named_steps  # GaussianNB takes no NaN; nulls from the join are imputed
    assert card["split"]["type"] == "random"
    spec = spec_with(
        ["model"],
        {
            "name": "fraud",
            "entrypoint": "sklearn.ensemble:RandomForestClassifier",
            "params": {"n_estimators": 10, "max_depth": 6},
        },
    )
    code, result = run(store_uri, tmp_path, spec, version=72)
    assert code == 0, result


@pytest.mark.parametrize(
    "spec_path,value,reason,needle",
    [
        (
            ["model", "estimator"],
            "sklearn.ensemble.NoSuchForest",
            "EstimatorNotFound",
            "model.estimator 'sklearn.ensemble.NoSuchForest'",
        ),
        (["model", "estimator"], "nosuchpkg.Model", "EstimatorNotFound", "module 'nosuchpkg' cannot be imported"),
        (["model", "estimator"], "sklearn.linear_model.LinearRegression", "InvalidEstimator", "not a classifier"),
        (["model", "params"], {"max_iterations": 3}, "InvalidParams", "'max_iterations'"),
    ],
)
def test_bad_estimator_fails_naming_the_field_and_registers_nothing(store_uri, tmp_path, spec_path, value, reason, needle):
    before = namespace_store(store_uri, "default").fs.find(namespace_store(store_uri, "default").path())
    code, result = run(store_uri, tmp_path, spec_with(spec_path, value), version=81)
    assert (
        namespace_store(store_uri, "default").fs.find(namespace_store(store_uri, "default").path()) == before
    )  # stores left as they were
    assert code == 1 and result["ok"] is False
    assert result["reason"] == reason and needle in result["error"]
    assert 81 not in ModelRegistry(namespace_store(store_uri, "default")).versions("fraud")


def test_feature_group_version_not_in_store_fails_naming_it(store_uri, tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["featureView"]["features"][1]["featureGroup"]["version"] = 9
    spec["featureView"]["version"] = 3  # another definition: another feature view version
    code, result = run(store_uri, tmp_path, spec, version=91)
    assert code == 1 and result["reason"] == "FeatureGroupNotFound"
    assert "featureView.features[1].featureGroup: feature group card_profiles version 9" in result["error"]


def test_unknown_column_fails_naming_it(store_uri, tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["featureView"]["features"][1]["columns"] = ["age_group", "credit_limit", "shoe_size"]
    spec["featureView"]["version"] = 4  # another definition: another feature view version
    code, result = run(store_uri, tmp_path, spec, version=92)
    assert code == 1 and result["reason"] == "UnknownColumn"
    assert "featureView.features[1].columns: 'shoe_size'" in result["error"]


def test_string_feature_without_encoding_and_invalid_spec_fail_clearly(store_uri, tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["featureView"]["transformations"] = [t for t in spec["featureView"]["transformations"] if t["column"] != "category"]
    spec["featureView"]["version"] = 5  # another definition: another feature view version
    code, result = run(store_uri, tmp_path, spec, version=93)
    assert code == 1 and result["reason"] == "UntransformedColumn" and "'category'" in result["error"]
    code, result = run(store_uri, tmp_path, spec_with(["trainingData", "split", "testFraction"], 1.5), version=94)
    assert code == 1 and result["reason"] == "InvalidSpec" and "spec.trainingData.split.testFraction" in result["error"]


def test_without_model_version_a_local_run_takes_the_next_free_one(tmp_path, store_uri):
    registry = ModelRegistry(namespace_store(store_uri, "default"))
    # Every number claimed so far, by runs that registered a model or failed after claiming one.
    before = max([*registry.versions("fraud"), *registry.claims("fraud")], default=0)
    code, result = run(store_uri, tmp_path)
    assert code == 0 and result["version"] == before + 1


def test_a_feature_view_version_redefined_is_refused_before_training(store_uri, tmp_path):
    run(store_uri, tmp_path, version=101)  # v1 of the view, as SPEC defines it, is registered
    store = namespace_store(store_uri, "default")
    assert store.read_json("feature_views", "fraud", "v1.json")["definition"]["label"]["column"] == "is_fraud"
    spec = copy.deepcopy(SPEC)
    spec["featureView"]["features"][0]["columns"] = [*FEATURES[:-1], "amount_max_7d"]
    spec["featureView"]["transformations"][3] = {"column": "amount", "type": "standardScaler"}
    claims = sorted(ModelRegistry(store).claims("fraud"))
    code, result = run(store_uri, tmp_path, spec, version=102, uid="uid-x", job="x-v102")
    assert code == 1 and result["reason"] == "FeatureViewRedefined"
    assert "feature view fraud v1 is already defined differently" in result["error"]
    assert "added amount_max_7d; removed tx_count_1h" in result["error"]
    assert "transformation of amount: log1p -> standardScaler" in result["error"]
    assert result["error"].endswith("bump featureView.version")
    assert sorted(ModelRegistry(store).claims("fraud")) == claims  # refused before a version was claimed
