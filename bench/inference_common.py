"""Shared setup of the inference benchmarks: N cards of features (offline + online) and a registered model.

The model and the feature view are those of tests/support/serving_fixtures.py (six inputs
from two feature groups, two of them request features), at benchmark scale; `model="example"`
registers the fraud example's HistGradientBoosting model on the same columns instead.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.serving_fixtures import (  # noqa: E402
    MODEL,
    PROFILES,
    TX,
    feature_frames as fixture_feature_frames,
    model_card,
    serving_spec,
    train_pipeline,
)

FIRST_CARD = 4_000_000_000_000_000


# The namespace whose stores the benchmarks fill and the servers read (FTI_NAMESPACE unset).
NAMESPACE = "default"


def feature_frames(n_cards: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The serving tests' feature rows at benchmark scale, event times spread over one day."""
    return fixture_feature_frames(seed=seed, n_cards=n_cards, first_card=FIRST_CARD, spread_minutes=1440)


def example_pipeline(n_rows: int = 20_000) -> Any:
    """The fraud example's model (examples/fraud/training-pipeline.yaml) on the fixture's columns.

    Same estimator and params (HistGradientBoostingClassifier, max_iter 150, learning rate
    0.1, 31 leaves) and the same transformations where the column exists (log1p amount,
    one-hot category and age group, standard-scaled credit limit); 20 000 training rows so
    the trees grow to the example's size.
    """
    from types import SimpleNamespace

    from sklearn.ensemble import HistGradientBoostingClassifier

    from fti_pipelines.training.transformations import build_model_pipeline, to_rows
    from support.serving_fixtures import COLUMNS, training_frame

    frame, y = training_frame(n=n_rows)
    transforms = [
        SimpleNamespace(column=c, type=t)
        for c, t in [("amount", "log1p"), ("category", "oneHot"), ("age_group", "oneHot"), ("credit_limit", "standardScaler")]
    ]
    estimator = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31, random_state=0)
    pipeline = build_model_pipeline(frame, COLUMNS, transforms, estimator)
    return pipeline.fit(to_rows(frame, COLUMNS), y)


def make_world(
    root: Path, n_cards: int, *, online: str | None = None, offline: bool = False, model: str = "fixture"
) -> dict[str, Any]:
    """Write features and register the model under `root`; returns URIs, spec, frames."""
    from fti_pipelines.registry import ModelRegistry
    from fti_pipelines.store.offline import FeatureStore
    from fti_pipelines.store.online import open_online_store
    from fti_pipelines.store.tenancy import namespace_store

    root.mkdir(parents=True, exist_ok=True)
    artifact_uri = f"file://{root}/artifacts"
    online_uri = online or f"sqlite:///{root}/online.db"
    tx, profiles = feature_frames(n_cards)
    # The namespace the served pipelines read (FTI_NAMESPACE unset: "default"; docs/store-layout.md).
    store = open_online_store(online_uri, NAMESPACE)
    try:
        store.write(TX[0], TX[1], ["cc_num"], "event_time", tx)
        store.write(PROFILES[0], PROFILES[1], ["cc_num"], "event_time", profiles)
    finally:
        store.close()
    artifacts = namespace_store(artifact_uri, NAMESPACE)
    if offline:
        fs = FeatureStore(artifacts)
        fs.ingest(TX[0], TX[1], tx, primary_key=["cc_num"], event_time="event_time", mode="full")
        fs.ingest(PROFILES[0], PROFILES[1], profiles, primary_key=["cc_num"], event_time="event_time", mode="full")
    pipeline = example_pipeline() if model == "example" else train_pipeline()
    if not ModelRegistry(artifacts).exists(MODEL, 1):
        ModelRegistry(artifacts).register(MODEL, 1, pipeline, model_card())
    return {
        "artifact_store": artifact_uri,
        "online_store": online_uri,
        "spec": serving_spec(),
        "tx": tx,
        "profiles": profiles,
        "pipeline": pipeline,
    }


def pct(values_s: list[float], p: float) -> float:
    """Percentile in microseconds of a list of seconds."""
    return float(np.percentile(np.asarray(values_s) * 1e6, p))


def summary(values_s: list[float]) -> dict[str, float]:
    return {
        "p50_us": pct(values_s, 50),
        "p99_us": pct(values_s, 99),
        "mean_us": statistics.fmean(values_s) * 1e6,
        "n": len(values_s),
    }
