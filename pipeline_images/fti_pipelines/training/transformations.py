"""The model-dependent transformations, inside the saved sklearn Pipeline.

KServe's stock sklearn runtime hands the model plain ordered rows — `np.array` of
the request's instances, a string array when a row mixes numbers and strings — so
the pipeline addresses every column by its POSITION in the feature view's order and
converts numeric columns to float itself. Only scikit-learn and numpy objects go
into the pipeline: the runtime image has no fti_pipelines to unpickle anything else.

Per column: numeric columns become float64 (None -> NaN) and then get their scaler
or log1p; string columns need a oneHot or ordinal transformation. Everything is
fitted on the training split only (the caller fits the pipeline on it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from ..contract import PipelineError
from .estimator import allows_nan

NUMERIC_TRANSFORMS = {"standardScaler", "minMaxScaler", "robustScaler", "log1p"}
CATEGORICAL_TRANSFORMS = {"oneHot", "ordinal"}


def _as_float() -> FunctionTransformer:
    # np.asarray(..., dtype=float64) parses numeric strings and turns None into NaN.
    return FunctionTransformer(np.asarray, kw_args={"dtype": "float64"}, feature_names_out="one-to-one")


def column_kind(series: pd.Series) -> str:
    """numeric | categorical | datetime: how a feature column can enter a model."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "categorical"


def _column_step(kind: str, transform: str | None, column: str) -> Any:
    if transform in CATEGORICAL_TRANSFORMS:
        if transform == "oneHot":
            return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    if kind == "categorical":
        raise PipelineError(
            "UntransformedColumn",
            f"featureView.transformations: feature column {column!r} holds strings; give it a oneHot or ordinal transformation",
            column=column,
        )
    if kind == "datetime":
        raise PipelineError(
            "UnsupportedColumn",
            f"featureView.features: feature column {column!r} is a timestamp; models take numbers and "
            "categories (derive a numeric feature from it in the feature pipeline)",
            column=column,
        )
    steps = [("float", _as_float())]
    if transform == "standardScaler":
        steps.append(("scale", StandardScaler()))
    elif transform == "minMaxScaler":
        steps.append(("scale", MinMaxScaler()))
    elif transform == "robustScaler":
        steps.append(("scale", RobustScaler()))
    elif transform == "log1p":
        # log1p of values below -1 is NaN, which the estimator (or the imputer) handles as missing.
        steps.append(("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")))
    return Pipeline(steps) if len(steps) > 1 else steps[0][1]


def build_model_pipeline(frame: pd.DataFrame, columns: list[str], transformations: list[Any] | None, estimator: Any) -> Pipeline:
    """An unfitted Pipeline([("features", ColumnTransformer by position), (imputer), ("model", estimator)]).

    Columns that get the same treatment share one ColumnTransformer branch (all
    standard-scaled columns in one StandardScaler, all one-hot columns in one encoder):
    each branch costs a fixed overhead per call, which dominates scoring one row online.
    """
    by_column = {t.column: t.type for t in transformations or []}
    groups: dict[tuple[str, str | None], list[int]] = {}
    for pos, col in enumerate(columns):
        kind = column_kind(frame[col])
        transform = by_column.get(col)
        if transform in NUMERIC_TRANSFORMS and kind != "numeric":
            raise PipelineError(
                "InvalidTransformation",
                f"featureView.transformations: {transform} on {col!r} needs a numeric column, but {col!r} is {frame[col].dtype}",
                column=col,
            )
        _column_step(kind, transform, col)  # refuses strings without encoding, timestamps
        groups.setdefault(("categorical" if transform in CATEGORICAL_TRANSFORMS else kind, transform), []).append(pos)
    parts = [
        (transform or kind, _column_step(kind, transform, columns[positions[0]]), positions)
        for (kind, transform), positions in groups.items()
    ]
    features = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)
    steps: list[tuple[str, Any]] = [("features", features)]
    if not allows_nan(estimator):
        # Point-in-time joins leave nulls where an entity had no earlier feature row.
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    steps.append(("model", estimator))
    return Pipeline(steps)


def to_rows(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Plain ordered rows (object array), as the served model will receive them.

    Missing values become None (the form a JSON null takes), strings plain str.
    """
    out = np.empty((len(frame), len(columns)), dtype=object)
    for pos, col in enumerate(columns):
        s = frame[col]
        if column_kind(s) == "numeric":
            out[:, pos] = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        else:
            values = s.astype(object).to_numpy()
            out[:, pos] = np.where(pd.isna(values), np.array(None, dtype=object), values)
    return out


def input_schema(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, str]]:
    """[{name, dtype}] in model input order, dtypes as simple names (float64, int64, string, bool)."""
    schema = []
    for col in columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s):
            dtype = "bool"
        elif pd.api.types.is_integer_dtype(s):
            dtype = "int64"
        elif pd.api.types.is_float_dtype(s):
            dtype = "float64"
        elif pd.api.types.is_datetime64_any_dtype(s):
            dtype = "datetime"
        else:
            dtype = "string"
        schema.append({"name": col, "dtype": dtype})
    return schema


__all__ = ["build_model_pipeline", "column_kind", "input_schema", "to_rows"]
