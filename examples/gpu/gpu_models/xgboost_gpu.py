"""model.entrypoint of examples/gpu/training-pipeline.yaml: an XGBoost classifier on the GPU.

The training pipeline calls `build(**model.params)` and treats the result like any
scikit-learn classifier (fit, predict_proba, get_params; docs/concepts.md, model.entrypoint):
XGBoost's scikit-learn API is one. `device="cuda"` trains on the GPU the pod was given
(`nvidia.com/gpu: 1`); the saved model unpickles wherever xgboost is installed, so the
serving image needs xgboost too (README.md).
"""

from __future__ import annotations

from typing import Any


def build(**params: Any) -> Any:
    from xgboost import XGBClassifier  # only in the image this example builds

    return XGBClassifier(device="cuda", tree_method="hist", **params)
