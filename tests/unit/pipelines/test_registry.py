"""The model registry: the docs/store-layout.md layout, immutability, latest validated version."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fti_pipelines.registry import ModelNotFound, ModelRegistry
from fti_pipelines.store.artifacts import ArtifactExists, ArtifactStore


def card(verdict="Validated", **extra):
    return {
        "verdict": verdict,
        "reasons": [],
        "metrics": {"roc_auc": np.float64(0.9)},
        "featureView": {"name": "fraud", "version": 1, "columns": ["a", "b"]},
        "trainingDataset": {"version": 1, "hash": "sha256:x"},
        "inputSchema": [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "float64"}],
        **extra,
    }


def fitted():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, [0, 1, 0, 1])


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(ArtifactStore(f"file://{tmp_path}/store"))


def test_layout_is_exactly_the_design(registry, tmp_path):
    stored = registry.register("fraud", 1, fitted(), card(), {"roc_curve.png": b"png", "report.html": b"<html>"})
    root = tmp_path / "store" / "models" / "fraud" / "1"
    assert sorted(p.name for p in (root / "model").iterdir()) == ["model.joblib"]  # alone in its folder
    assert (root / "model.json").exists() and (root / "_COMMITTED").exists()
    assert sorted(p.name for p in (root / "report").iterdir()) == ["report.html", "roc_curve.png"]
    assert stored["storageUri"] == f"file://{tmp_path}/store/models/fraud/1/model"
    assert registry.card("fraud", 1)["metrics"] == {"roc_auc": 0.9}


def test_load_gives_a_pipeline_that_takes_plain_ordered_rows(registry):
    registry.register("fraud", 1, fitted(), card())
    model, c = registry.load("fraud", 1)
    assert c["version"] == 1 and c["name"] == "fraud"
    assert model.predict(np.array([[1.0, 0.0]])).tolist() == [1]


def test_versions_are_immutable(registry):
    registry.register("fraud", 1, fitted(), card())
    with pytest.raises(ArtifactExists):
        registry.register("fraud", 1, fitted(), card("Rejected"))
    assert registry.card("fraud", 1)["verdict"] == "Validated"


def test_latest_validated_skips_rejected_versions(registry):
    assert registry.latest_validated("fraud") is None
    registry.register("fraud", 1, fitted(), card())
    registry.register("fraud", 2, fitted(), card())
    registry.register("fraud", 3, fitted(), card("Rejected", reasons=["roc_auc 0.6 < min 0.8"]))
    assert registry.versions("fraud") == [1, 2, 3]
    assert registry.latest_validated("fraud") == 2


def test_unknown_version_and_bad_cards_are_refused(registry):
    with pytest.raises(ModelNotFound, match="fraud version 7"):
        registry.card("fraud", 7)
    with pytest.raises(ValueError, match="verdict"):
        registry.register("fraud", 1, fitted(), card("Maybe"))
    with pytest.raises(ValueError, match="report file name"):
        registry.register("fraud", 1, fitted(), card(), {"../evil.png": b""})
    assert registry.versions("fraud") == []


def test_a_half_written_version_is_invisible(registry, tmp_path):
    class Boom(Exception):
        pass

    store = registry.store
    # The failure under test is a writer raising inside commit_dir.
    with pytest.raises(Boom), store.commit_dir("models", "fraud", 1) as staging:  # noqa: PT012
        store.fs.pipe(f"{staging}/model/model.joblib", b"partial")
        raise Boom()
    assert registry.versions("fraud") == []
    assert registry.latest_validated("fraud") is None
