"""The by-position pipeline: every transformation type, fitted on rows as KServe's runtime hands them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from fti_operator.api.training_pipeline import Transformation
from fti_pipelines.contract import PipelineError
from fti_pipelines.training.transformations import build_model_pipeline, input_schema, to_rows

FRAME = pd.DataFrame(
    {
        "a": [1.0, 2.0, 3.0, 4.0, 50.0, 60.0, 70.0, 80.0],
        "b": [0, 1, 2, 3, 4, 5, 6, 7],
        "c": [10.0, None, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
        "d": [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
        "e": ["x", "y", "x", "y", "z", "z", "z", None],
        "f": pd.array(["p", "q", "p", "q", "r", "r", "s", "s"], dtype="string"),
        "g": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
    }
)
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
ALL = [
    Transformation(column=c, type=t)
    for c, t in [
        ("a", "standardScaler"),
        ("b", "minMaxScaler"),
        ("c", "robustScaler"),
        ("d", "log1p"),
        ("e", "oneHot"),
        ("f", "ordinal"),
    ]
]
COLUMNS = list(FRAME.columns)


def test_every_transformation_type_fits_and_serves_string_rows():
    model = build_model_pipeline(FRAME, COLUMNS, ALL, HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=1))
    model.fit(to_rows(FRAME, COLUMNS), Y)
    # KServe: np.array(instances) of mixed rows is a unicode array; unseen categories are ignored.
    served = np.array([[70.0, 6, 70.0, 11.0, "z", "s", 3.5], [1.0, 0, 10.0, 5.0, "new", "new", 0.5]])
    assert served.dtype.kind == "U"
    assert model.predict(served).tolist() == [1, 0]
    features = model.named_steps["features"]
    assert [cols for _, _, cols in features.transformers] == [[i] for i in range(len(COLUMNS))]  # by position


def test_estimator_without_nan_support_gets_an_imputer():
    model = build_model_pipeline(FRAME, COLUMNS, ALL, LogisticRegression())
    assert [name for name, _ in model.steps] == ["features", "impute", "model"]
    model.fit(to_rows(FRAME, COLUMNS), Y)
    assert model.predict(np.array([[None, None, None, None, None, None, None]], dtype=object)).shape == (1,)


def test_string_column_without_encoding_and_scaler_on_strings_are_refused():
    with pytest.raises(PipelineError, match="'e' holds strings"):
        build_model_pipeline(FRAME, COLUMNS, [t for t in ALL if t.column != "e"], LogisticRegression())
    with pytest.raises(PipelineError, match="standardScaler on 'e' needs a numeric column"):
        build_model_pipeline(FRAME, COLUMNS, [Transformation(column="e", type="standardScaler")], LogisticRegression())


def test_rows_and_schema():
    rows = to_rows(FRAME, COLUMNS)
    assert rows.dtype == object and rows[1, 2] != rows[1, 2]  # NaN for a missing number
    assert rows[7, 4] is None  # None for a missing string, as a JSON null arrives
    assert [s["dtype"] for s in input_schema(FRAME, COLUMNS)] == [
        "float64",
        "int64",
        "float64",
        "float64",
        "string",
        "string",
        "float64",
    ]
