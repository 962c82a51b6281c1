"""Tenancy: two namespaces with identical names for everything share one artifact store and one
online store, and never read each other's data (docs/store-layout.md).

The fraud example's feature and training pipelines run through the pipeline contract in
namespaces `team-a` and `team-b`, each on its own generated data (another seed and size), with
the same group, view and model names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fti_pipelines import feature
from fti_pipelines.contract import run_pipeline
from fti_pipelines.registry import ModelRegistry
from fti_pipelines.store.artifacts import ArtifactStore
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.online import open_online_store
from fti_pipelines.store.online.tenancy import NamespacedOnlineStore
from fti_pipelines.store.tenancy import namespace_store
from fti_pipelines.training.run import main as train_main
from support.examples import example

DATA = {"team-a": {"seed": 7, "n_cards": 300}, "team-b": {"seed": 11, "n_cards": 200}}


def run(main, doc: dict, namespace: str, store: str, online: str, tmp_path: Path) -> dict:
    log = tmp_path / f"{namespace}-{doc['metadata']['name']}.json"
    env = {
        "FTI_SPEC": json.dumps(doc["spec"]),
        "FTI_ARTIFACT_STORE": store,
        "FTI_ONLINE_STORE": online,
        "FTI_NAMESPACE": namespace,
        "FTI_RESOURCE": doc["metadata"]["name"],
        "FTI_RUN_ID": f"{doc['metadata']['name']}-1",
        "FTI_RESOURCE_UID": f"uid-{namespace}-{doc['metadata']['name']}",
        "FTI_TERMINATION_LOG": str(log),
    }
    code = run_pipeline(main, env)
    result = json.loads(log.read_text())
    assert code == 0, result
    return result


def data_of(doc: dict, namespace: str) -> dict:
    gen = doc["spec"]["source"]["generator"]
    gen["params"].update(DATA[namespace])
    if "days" in gen["params"]:
        gen["params"]["days"] = 10
    return doc


@pytest.fixture(scope="module")
def teams(tmp_path_factory) -> tuple[str, str, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("tenancy")
    store, online = f"file://{tmp}/store", f"sqlite:///{tmp}/online.db"
    trained = {}
    for ns in DATA:
        for name in ("feature-pipeline-transactions.yaml", "feature-pipeline-profiles.yaml"):
            run(feature.run, data_of(example(name, ns), ns), ns, store, online, tmp)
        trained[ns] = run(train_main, example("training-pipeline.yaml", ns), ns, store, online, tmp)
    return store, online, trained


def test_two_namespaces_with_the_same_names_share_no_path(teams):
    store, _, trained = teams
    assert ArtifactStore(store).list() == ["namespaces"]  # nothing outside a namespace
    assert ArtifactStore(store).list("namespaces") == ["team-a", "team-b"]
    for ns, result in trained.items():
        # Each namespace's registry numbers its own models: both are v1 of `fraud`.
        assert result["version"] == 1 and result["storageUri"] == f"{store}/namespaces/{ns}/models/fraud/1/model"


def test_each_namespace_trains_on_its_own_rows(teams):
    store, _, trained = teams
    labelled = {}
    for ns in DATA:
        tx = FeatureStore(namespace_store(store, ns)).read("card_transactions", 1)
        labelled[ns] = int(tx["is_fraud"].notna().sum())
        rows = trained[ns]["rows"]
        assert rows["train"] + rows["test"] == labelled[ns], ns
        card = ModelRegistry(namespace_store(store, ns)).card("fraud", 1)
        assert card["run"]["namespace"] == ns
    assert labelled["team-a"] != labelled["team-b"]  # different data, so the counts tell them apart
    assert trained["team-a"]["trainingDataset"]["hash"] != trained["team-b"]["trainingDataset"]["hash"]


def test_each_namespace_reads_its_own_online_rows(teams):
    store, online, _ = teams
    latest = {}
    for ns in DATA:
        tx = FeatureStore(namespace_store(store, ns)).read("card_transactions", 1)
        latest[ns] = tx.sort_values("event_time").groupby("cc_num").tail(1).set_index("cc_num")
    shared = sorted(set(latest["team-a"].index) & set(latest["team-b"].index))[:20]
    assert shared
    differ = 0
    for ns in DATA:
        with open_online_store(online, ns) as view:
            assert view.versions() == [("card_profiles", 1), ("card_transactions", 1)]
            for cc in shared:
                row = view.get("card_transactions", 1, (cc,))
                assert row["amount"] == pytest.approx(float(latest[ns].loc[cc, "amount"])), (ns, cc)
    differ = sum(float(latest["team-a"].loc[cc, "amount"]) != float(latest["team-b"].loc[cc, "amount"]) for cc in shared)
    assert differ > 0  # the same card number holds other values in each namespace
    with open_online_store(online) as raw:  # the backend underneath: every group carries its namespace
        assert {g for g, _ in raw.versions()} == {f"{ns}.{g}" for ns in DATA for g in ("card_transactions", "card_profiles")}


def test_a_store_with_the_layout_from_before_namespaces_is_refused(tmp_path):
    from fti_pipelines.contract import PipelineError

    old = ArtifactStore(f"file://{tmp_path}/old")
    old.write_json("models", "fraud", "1", "model.json", {})
    with pytest.raises(PipelineError) as err:
        namespace_store(old.uri, "team-a")
    assert err.value.reason == "UnscopedStoreLayout" and "models/" in err.value.message
    assert "namespaces/<namespace>/" in err.value.message
    with pytest.raises(PipelineError, match="not a Kubernetes namespace name"):
        namespace_store(f"file://{tmp_path}/new", "../team-a")


def test_a_namespace_view_cannot_name_another_namespaces_group(online_store):
    view = NamespacedOnlineStore(online_store, "team-a")
    frame = pd.DataFrame({"k": [1], "t": pd.to_datetime(["2026-01-01"], utc=True), "x": [1.0]})
    view.write("g", 1, ["k"], "t", frame)
    NamespacedOnlineStore(online_store, "team-b").write("g", 1, ["k"], "t", frame.assign(x=2.0))
    assert view.get("g", 1, (1,))["x"] == 1.0
    assert NamespacedOnlineStore(online_store, "team-b").get("g", 1, (1,))["x"] == 2.0
    with pytest.raises(ValueError, match="feature group name"):
        view.get("team-b.g", 1, (1,))
    assert view.versions() == [("g", 1)] and view.versions("g") == [("g", 1)]
    view.drop_version("g", 1)
    assert view.get("g", 1, (1,)) is None and NamespacedOnlineStore(online_store, "team-b").get("g", 1, (1,))["x"] == 2.0
