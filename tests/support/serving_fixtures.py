"""A small but real served revision for inference tests: features online, a registered model.

Two feature groups (card_transactions v2 with request features amount/category, and
card_profiles v1), materialized in a SQLite online store; a model trained by the
training pipeline's own `build_model_pipeline` on a few hundred seeded rows and
registered through the ModelRegistry, so the server loads exactly what training writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

MODEL = "fraud"
VIEW = "fraud"
TX = ("card_transactions", 2)
PROFILES = ("card_profiles", 1)
COLUMNS = ["amount", "category", "amount_sum_1d", "tx_count_1d", "age_group", "credit_limit"]
REQUEST_FEATURES = ["amount", "category"]
CATEGORIES = ["grocery", "online", "travel", "retail"]
AGE_GROUPS = ["18-25", "26-40", "41-60", "60+"]
N_CARDS = 50
FIRST_CARD = 1000


@dataclass
class ServedRevision:
    artifact_store: str
    online_store: str
    spec: dict[str, Any]
    card: dict[str, Any]
    pipeline: Any
    online_rows: dict[int, dict[str, Any]]  # cc_num -> looked-up values (both groups)

    @property
    def env(self) -> dict[str, str]:
        return {"FTI_ARTIFACT_STORE": self.artifact_store, "FTI_ONLINE_STORE": self.online_store}

    def instance(self, cc_num: int, amount: float = 42.0, category: str = "online") -> dict[str, Any]:
        return {"cc_num": cc_num, "amount": amount, "category": category}

    def expected_row(self, cc_num: int, amount: float = 42.0, category: str = "online") -> list[Any]:
        feats = self.online_rows[cc_num]
        return [amount, category, feats["amount_sum_1d"], feats["tx_count_1d"], feats["age_group"], feats["credit_limit"]]


def feature_frames(
    seed: int = 3, n_cards: int = N_CARDS, first_card: int = FIRST_CARD, spread_minutes: int = 600
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """card_transactions and card_profiles rows for `n_cards` cards (the benchmarks scale it up)."""
    rng = np.random.default_rng(seed)
    cards = np.arange(first_card, first_card + n_cards, dtype=np.int64)
    t0 = pd.Timestamp("2026-11-01T00:00:00Z")
    tx = pd.DataFrame(
        {
            "cc_num": cards,
            "event_time": t0 + pd.to_timedelta(rng.integers(0, spread_minutes, n_cards), unit="min"),
            "amount": rng.gamma(2.0, 40.0, n_cards).round(2),
            "category": rng.choice(CATEGORIES, n_cards),
            "amount_sum_1d": rng.gamma(2.0, 100.0, n_cards).round(2),
            "tx_count_1d": rng.integers(1, 20, n_cards).astype(np.int64),
        }
    )
    profiles = pd.DataFrame(
        {
            "cc_num": cards,
            "event_time": pd.Series([t0 - pd.Timedelta(days=30)] * n_cards),
            "age_group": rng.choice(AGE_GROUPS, n_cards),
            "credit_limit": rng.choice([1000.0, 2500.0, 5000.0, 8000.0], n_cards),
        }
    )
    return tx, profiles


def training_frame(n: int = 400, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 40.0, n),
            "category": rng.choice(CATEGORIES, n),
            "amount_sum_1d": rng.gamma(2.0, 100.0, n),
            "tx_count_1d": rng.integers(1, 20, n).astype(np.int64),
            "age_group": rng.choice(AGE_GROUPS, n),
            "credit_limit": rng.choice([1000.0, 2500.0, 5000.0, 8000.0], n),
        }
    )
    score = frame["amount"] / 80 + (frame["category"] == "online") * 1.5 + frame["tx_count_1d"] / 10 + rng.normal(0, 0.5, n)
    return frame, (score > score.median()).astype(int).to_numpy()


def train_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression

    from fti_pipelines.training.transformations import build_model_pipeline

    frame, y = training_frame()
    transforms = [
        SimpleNamespace(column="category", type="oneHot"),
        SimpleNamespace(column="age_group", type="oneHot"),
        SimpleNamespace(column="credit_limit", type="standardScaler"),
        SimpleNamespace(column="amount", type="standardScaler"),
        SimpleNamespace(column="amount_sum_1d", type="standardScaler"),
    ]
    pipeline = build_model_pipeline(frame, COLUMNS, transforms, LogisticRegression(max_iter=500))
    from fti_pipelines.training.transformations import to_rows

    pipeline.fit(to_rows(frame, COLUMNS), y)
    return pipeline


def model_card(*, verdict: str = "Validated", view_version: int = 1) -> dict[str, Any]:
    tx, prof = {"name": TX[0], "version": TX[1]}, {"name": PROFILES[0], "version": PROFILES[1]}
    return {
        "verdict": verdict,
        "reasons": [] if verdict == "Validated" else ["roc_auc 0.51 < 0.8"],
        "metrics": {"roc_auc": 0.9},
        "featureView": {
            "name": VIEW,
            "version": view_version,
            "label": {"featureGroup": tx, "column": "is_fraud"},
            "features": [
                {
                    "featureGroup": tx,
                    "columns": ["amount", "category", "amount_sum_1d", "tx_count_1d"],
                    "primaryKey": ["cc_num"],
                    "eventTime": "event_time",
                },
                {
                    "featureGroup": prof,
                    "columns": ["age_group", "credit_limit"],
                    "primaryKey": ["cc_num"],
                    "eventTime": "event_time",
                },
            ],
            "columns": COLUMNS,
        },
        "entityKeys": ["cc_num"],
        "inputSchema": [
            {"name": "amount", "dtype": "float64"},
            {"name": "category", "dtype": "string"},
            {"name": "amount_sum_1d", "dtype": "float64"},
            {"name": "tx_count_1d", "dtype": "int64"},
            {"name": "age_group", "dtype": "string"},
            {"name": "credit_limit", "dtype": "float64"},
        ],
        "trainingDataset": {"version": 1, "hash": "sha256:test", "rows": 400},
        "estimator": "sklearn.linear_model.LogisticRegression",
    }


def serving_spec(
    name: str = "fraud-online",
    *,
    model_version: int = 1,
    view_version: int = 1,
    missing_entity: str = "reject",
    defaults: dict | None = None,
) -> dict[str, Any]:
    online: dict[str, Any] = {"topology": "combined", "requestFeatures": REQUEST_FEATURES, "missingEntity": missing_entity}
    if defaults is not None:
        online["defaults"] = defaults
    return {
        "name": name,
        "model": {"name": MODEL, "version": model_version},
        "featureView": {"name": VIEW, "version": view_version},
        "mode": "online",
        "online": online,
    }


DEFAULTS = {"amount_sum_1d": 0.0, "tx_count_1d": 0, "age_group": "26-40", "credit_limit": 2500.0}


def build_revision(
    root: Path,
    *,
    materialize: tuple[tuple[str, int], ...] = (TX, PROFILES),
    verdict: str = "Validated",
    card_view_version: int = 1,
    model_version: int = 1,
    **spec_kwargs: Any,
) -> ServedRevision:
    """Write features online and a model version under `root`; return URIs and the spec."""
    from fti_pipelines.registry import ModelRegistry
    from fti_pipelines.store.online import open_online_store
    from fti_pipelines.store.tenancy import namespace_store

    artifact_uri = f"file://{root}/artifacts"
    online_uri = f"sqlite:///{root}/online.db"
    tx, profiles = feature_frames()
    store = open_online_store(online_uri, "default")
    try:
        if TX in materialize:
            store.write(TX[0], TX[1], ["cc_num"], "event_time", tx)
        if PROFILES in materialize:
            store.write(PROFILES[0], PROFILES[1], ["cc_num"], "event_time", profiles)
    finally:
        store.close()
    pipeline = train_pipeline()
    card = ModelRegistry(namespace_store(artifact_uri, "default")).register(
        MODEL, model_version, pipeline, model_card(verdict=verdict, view_version=card_view_version)
    )
    rows = {}
    for rec in tx.merge(profiles.drop(columns="event_time"), on="cc_num").to_dict("records"):
        rows[int(rec["cc_num"])] = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
    return ServedRevision(
        artifact_uri, online_uri, serving_spec(model_version=model_version, **spec_kwargs), card, pipeline, rows
    )
