"""The model compiled to ONNX Runtime answers exactly like sklearn, or sklearn answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import FunctionTransformer

from fti_pipelines.serving import compiled
from fti_pipelines.serving.compiled import NotCompilable, compile_model, try_compile
from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.errors import RequestError
from fti_pipelines.serving.predictor import Scorer
from fti_pipelines.training.transformations import build_model_pipeline, to_rows
from support.serving_fixtures import COLUMNS, train_pipeline, training_frame


@pytest.fixture(scope="module")
def pipeline():
    return train_pipeline()


def fitted(transforms, estimator, *, nan_every: int = 0):
    frame, y = training_frame()
    if nan_every:
        frame.loc[::nan_every, "amount_sum_1d"] = np.nan
    p = build_model_pipeline(frame, COLUMNS, [SimpleNamespace(column=c, type=t) for c, t in transforms], estimator)
    return p.fit(to_rows(frame, COLUMNS), y), to_rows(frame, COLUMNS)


def sklearn_proba(p, rows):
    return p.predict_proba(np.array(rows, dtype=object))


def test_fixture_model_compiles_and_agrees(pipeline):
    model = compile_model(pipeline, len(COLUMNS))
    rows = [
        [42.0, "online", 123.4, 5, "26-40", 2500.0],
        [1.0, "never seen", None, "7", "60+", 1e9],  # unknown category, missing number, numeric string
        [0.0, "travel", 0.0, True, "18-25", -3.5],
    ]
    np.testing.assert_allclose(model.proba(rows), sklearn_proba(pipeline, rows), rtol=0, atol=1e-12)


def test_every_training_transform_agrees_on_the_training_rows():
    p, X = fitted(
        [
            ("category", "oneHot"),
            ("age_group", "ordinal"),
            ("amount", "log1p"),
            ("amount_sum_1d", "minMaxScaler"),
            ("credit_limit", "robustScaler"),
        ],
        LogisticRegression(max_iter=500),
        nan_every=7,
    )
    model = compile_model(p, len(COLUMNS))
    np.testing.assert_allclose(model.proba(X.tolist()), p.predict_proba(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "row",
    [
        [1.0, None, 1.0, 1, "18-25", 1.0],  # a missing category: sklearn's encoder decides
        [1.0, 3, 1.0, 1, "18-25", 1.0],  # a number where a category belongs
        ["inf", "online", 1.0, 1, "18-25", 1.0],  # sklearn refuses infinity
        ["abc", "online", 1.0, 1, "18-25", 1.0],  # not a number
        [1.0, "online", 1.0],  # too short
    ],
)
def test_rows_the_graph_might_read_differently_go_to_sklearn(pipeline, row):
    model = compile_model(pipeline, len(COLUMNS))
    assert model.proba([row]) is None


def test_a_runtime_failure_falls_back_to_sklearn(pipeline):
    scorer = Scorer(pipeline)

    class Broken:
        def run(self, *args):
            raise RuntimeError("runtime refused the feed")

    scorer.compiled.session = Broken()
    rows = [[42.0, "online", 123.4, 5, "26-40", 2500.0]]
    np.testing.assert_allclose(scorer.proba(rows), sklearn_proba(pipeline, rows), rtol=0, atol=0)


def test_scorer_keeps_sklearn_answers_and_errors(pipeline):
    fast, plain = Scorer(pipeline), Scorer(pipeline, compile_model=False)
    assert fast.compiled is not None and plain.compiled is None
    rows = [[42.0, "online", 123.4, 5, "26-40", 2500.0], [1.0, None, None, 2, "60+", 1000.0]]
    p_fast, l_fast = fast.score(rows)
    p_plain, l_plain = plain.score(rows)
    np.testing.assert_allclose(p_fast, p_plain, rtol=0, atol=1e-12)
    assert l_fast == l_plain
    for scorer in (fast, plain):
        with pytest.raises(RequestError) as err:
            scorer.proba([["inf", "online", 1.0, 1, "18-25", 1.0]])
        assert err.value.status == 422


def test_models_outside_the_exact_path_stay_on_sklearn(pipeline):
    p, _ = fitted([("category", "oneHot"), ("age_group", "oneHot")], KNeighborsClassifier())
    with pytest.raises(NotCompilable, match="not a linear model"):
        compile_model(p, len(COLUMNS))
    odd, _ = fitted(
        [("amount", "standardScaler"), ("category", "oneHot"), ("age_group", "oneHot")], LogisticRegression(max_iter=500)
    )
    odd.steps[0][1].transformers_[0][1].steps[1] = ("sqrt", FunctionTransformer(np.sqrt).fit(np.ones((2, 1))))
    assert try_compile(odd, len(COLUMNS)) is None
    assert try_compile(pipeline.steps[-1][1], 3) is None  # not a pipeline by position


def test_a_graph_that_disagrees_at_load_time_is_refused(pipeline, monkeypatch):
    other, _ = fitted([("category", "oneHot"), ("age_group", "oneHot")], LogisticRegression(C=1e-3, max_iter=500))
    real = compiled.to_onnx
    monkeypatch.setattr(compiled, "to_onnx", lambda p, kinds: real(other, kinds))
    with pytest.raises(NotCompilable, match="differ"):
        compile_model(pipeline, len(COLUMNS))
    assert Scorer(pipeline).compiled is None


def test_compilation_can_be_switched_off():
    spec = {"model": {"name": "m", "version": 1}, "featureView": {"name": "v", "version": 1}}
    assert ServingConfig.from_spec(spec, {}).compile_model is True
    assert ServingConfig.from_spec(spec, {"FTI_SERVING_COMPILE": "false"}).compile_model is False
