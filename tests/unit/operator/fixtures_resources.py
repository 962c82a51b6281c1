"""Sample resources of the three kinds for the operator unit tests."""

from __future__ import annotations

import copy

from fti_operator.api.identity import API_VERSION

FP = {
    "apiVersion": API_VERSION,
    "kind": "FeaturePipeline",
    "metadata": {"name": "card-transactions", "namespace": "fraud", "uid": "uid-fp", "generation": 3},
    "spec": {
        "featureGroup": {
            "name": "card_transactions",
            "version": 2,
            "primaryKey": ["cc_num"],
            "eventTime": "event_time",
            "online": True,
        },
        "source": {"uri": "file:///data/raw/transactions/", "format": "parquet"},
        "transform": "fraud_features.transactions:aggregate",
        "ingestion": "incremental",
        "schedule": "*/15 * * * *",
        "validation": {"onFailure": "quarantine", "expectations": [{"column": "cc_num", "notNull": True}]},
        "template": {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
    },
}

TP = {
    "apiVersion": API_VERSION,
    "kind": "TrainingPipeline",
    "metadata": {"name": "fraud-model", "namespace": "fraud", "uid": "uid-tp", "generation": 1},
    "spec": {
        "model": {"name": "fraud", "estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 200}},
        "featureView": {
            "name": "fraud",
            "version": 1,
            "label": {"featureGroup": {"name": "card_transactions", "version": 2}, "column": "is_fraud"},
            "features": [
                {"featureGroup": {"name": "card_transactions", "version": 2}, "columns": ["amount_sum_1d", "tx_count_1d"]},
                {"featureGroup": {"name": "card_profiles", "version": 1}, "columns": ["age_group", "credit_limit"]},
            ],
        },
        "evaluation": {"metrics": ["roc_auc"], "gates": [{"metric": "roc_auc", "min": 0.85}]},
        "template": {"resources": {"limits": {"nvidia.com/gpu": 1}}},
    },
}

ISVC_ONLINE = {
    "apiVersion": API_VERSION,
    "kind": "InferenceService",
    "metadata": {"name": "fraud-online", "namespace": "fraud", "uid": "uid-is", "generation": 1},
    "spec": {
        "model": {"name": "fraud", "version": "latest"},
        "mode": "online",
        "online": {"topology": "combined", "requestFeatures": ["amount"], "minReplicas": 1, "maxReplicas": 4},
    },
}

ISVC_BATCH = {
    "apiVersion": API_VERSION,
    "kind": "InferenceService",
    "metadata": {"name": "fraud-batch", "namespace": "fraud", "uid": "uid-isb", "generation": 1},
    "spec": {
        "model": {"name": "fraud", "version": "latest"},
        "mode": "batch",
        "batch": {
            "schedule": "0 * * * *",
            "input": {"uri": "file:///data/raw/transactions/"},
            "output": {"uri": "file:///data/predictions/fraud/"},
        },
    },
}


def variant(base: dict, path: str, value) -> dict:
    """A deep copy of `base` with the dotted `path` set to `value` (None deletes it)."""
    out = copy.deepcopy(base)
    node = out
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out
