"""Build the estimator a TrainingPipeline names: a dotted class path + params, or an entrypoint.

Every failure names the spec field and the value (`model.estimator`, `model.params`,
`model.entrypoint`), so a typo in a manifest reads as one clear error in the
TrainingPipeline's status rather than a traceback.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from sklearn.base import clone, is_classifier
from sklearn.utils import get_tags

from fti_operator.api.training_pipeline import ModelSpec

from ..contract import PipelineError


def _import(path: str, field: str, sep: str) -> Any:
    module_name, _, attr = path.rpartition(sep)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PipelineError(
            "EstimatorNotFound", f"{field} {path!r}: module {module_name!r} cannot be imported ({exc})", field=field, value=path
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise PipelineError(
            "EstimatorNotFound", f"{field} {path!r}: module {module_name!r} has no attribute {attr!r}", field=field, value=path
        ) from exc


def build_estimator(model: ModelSpec, seed: int | None = None) -> Any:
    """An unfitted estimator. `seed` fills random_state when the spec leaves it unset."""
    params = dict(model.params or {})
    if model.estimator:
        cls = _import(model.estimator, "model.estimator", ".")
        if not inspect.isclass(cls):
            raise PipelineError("InvalidEstimator", f"model.estimator {model.estimator!r} is not a class")
        try:
            estimator: Any = cls()
        except TypeError as exc:
            raise PipelineError(
                "InvalidEstimator", f"model.estimator {model.estimator!r} cannot be created without arguments: {exc}"
            ) from exc
        _check_estimator(estimator, "model.estimator", model.estimator)
        valid = estimator.get_params(deep=False)
        unknown = sorted(k for k in params if k not in valid)
        if unknown:
            raise PipelineError(
                "InvalidParams",
                f"model.params: {', '.join(map(repr, unknown))} not accepted by {model.estimator} "
                f"(accepted: {', '.join(sorted(valid))})",
                field="model.params",
            )
        try:
            estimator.set_params(**params)
        except (ValueError, TypeError) as exc:
            raise PipelineError("InvalidParams", f"model.params: {exc}", field="model.params") from exc
        source = model.estimator
    else:
        entrypoint = model.entrypoint or ""  # the API model requires estimator or entrypoint
        factory = _import(entrypoint, "model.entrypoint", ":")
        if not callable(factory):
            raise PipelineError("InvalidEstimator", f"model.entrypoint {entrypoint!r} is not callable")
        try:
            estimator = factory(**params)
        except TypeError as exc:
            raise PipelineError(
                "InvalidParams", f"model.params for entrypoint {entrypoint!r}: {exc}", field="model.params"
            ) from exc
        _check_estimator(estimator, "model.entrypoint", entrypoint)
        source = entrypoint
    if seed is not None and "random_state" in estimator.get_params(deep=False) and "random_state" not in params:
        # Same data + same spec = same model: seed estimators that take a seed.
        estimator.set_params(random_state=seed)
    try:
        clone(estimator)  # sklearn's contract: get_params round-trips, so the pipeline can be saved and refitted
    except Exception as exc:  # any estimator bug, reported against the spec field
        raise PipelineError("InvalidEstimator", f"{source!r} does not follow the scikit-learn estimator API: {exc}") from exc
    return estimator


def _check_estimator(estimator: Any, field: str, value: str) -> None:
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise PipelineError("InvalidEstimator", f"{field} {value!r} is not a scikit-learn estimator (needs fit and get_params)")
    if not is_classifier(estimator):
        raise PipelineError(
            "InvalidEstimator", f"{field} {value!r} is not a classifier; the training pipeline evaluates binary classifiers"
        )


def allows_nan(estimator: Any) -> bool:
    """Whether the estimator accepts missing values (else the model gets an imputer)."""
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # noqa: BLE001 - third-party estimators without tags: be safe, impute
        return False


__all__ = ["allows_nan", "build_estimator"]
