"""Tree ensembles scored by the compiled numpy path answer exactly what sklearn answers.

Every model type the path takes, inside the training pipeline's ColumnTransformer (one-hot
and ordinal categories, log1p, the three scalers), on data with missing values: the
compiled probabilities / predictions must equal sklearn's bit for bit on the training
rows and on rows built to reach the edges (unknown categories, NaN, log1p of -1 and
below, values past float32's range). Rows sklearn has to judge itself go to sklearn.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from fti_pipelines.serving.compiled import NotCompilable, TreeModel, compile_model, probe_rows
from fti_pipelines.serving.predictor import Scorer
from fti_pipelines.training.transformations import build_model_pipeline, to_rows
from support.serving_fixtures import COLUMNS, training_frame

# The fraud example's transformations (examples/fraud/training-pipeline.yaml) on the fixture's columns,
# plus the other transformations the training pipeline offers.
EXAMPLE = [("amount", "log1p"), ("category", "oneHot"), ("age_group", "oneHot"), ("credit_limit", "standardScaler")]
OTHERS = [
    ("amount", "robustScaler"),
    ("category", "oneHot"),
    ("age_group", "ordinal"),
    ("amount_sum_1d", "minMaxScaler"),
    ("credit_limit", "standardScaler"),
]


def _data(n: int = 600):
    frame, y = training_frame(n=n, seed=9)
    frame.loc[::7, "amount_sum_1d"] = np.nan  # a point-in-time join's missing features
    frame.loc[::11, "credit_limit"] = np.nan
    frame.loc[::17, "amount"] = -3.0  # log1p(-3) = NaN (log1p(-1) = -inf: the edge rows, at serving time)
    multi = np.digitize(frame["amount_sum_1d"].fillna(0.0), [100.0, 250.0, 400.0])
    return frame, {"binary": y, "multi": multi, "regression": frame["amount_sum_1d"].fillna(0.0).to_numpy() + y * 50.0}


FRAME, TARGETS = _data()
MODELS = [
    (HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, max_leaf_nodes=31), "binary", EXAMPLE),
    (HistGradientBoostingClassifier(max_iter=30), "multi", OTHERS),
    (HistGradientBoostingRegressor(max_iter=40), "regression", EXAMPLE),
    (GradientBoostingClassifier(n_estimators=40), "binary", EXAMPLE),
    (GradientBoostingClassifier(n_estimators=15), "multi", OTHERS),
    (GradientBoostingRegressor(n_estimators=40, max_depth=4), "regression", OTHERS),
    (RandomForestClassifier(n_estimators=15, random_state=0), "binary", EXAMPLE),
    (RandomForestClassifier(n_estimators=10, random_state=0), "multi", OTHERS),
    (RandomForestRegressor(n_estimators=10, random_state=0), "regression", EXAMPLE),
    (ExtraTreesClassifier(n_estimators=15, random_state=0), "binary", OTHERS),
    (ExtraTreesRegressor(n_estimators=10, random_state=0, max_leaf_nodes=40), "regression", OTHERS),
]


def compiled(p) -> TreeModel:
    """The compiled model, answering batches of any size (serving hands big ones to sklearn)."""
    model = compile_model(p, len(COLUMNS))
    assert isinstance(model, TreeModel)
    model.max_rows = 1 << 62
    return model


def fitted(estimator, target: str, transforms):
    spec = [SimpleNamespace(column=c, type=t) for c, t in transforms]
    p = build_model_pipeline(FRAME, COLUMNS, spec, estimator)
    rows = to_rows(FRAME, COLUMNS)
    return p.fit(rows, TARGETS[target]), rows


@functools.cache
def example_model():
    """The fraud example's model, fitted once for the tests that only read it."""
    p, rows = fitted(*MODELS[0])
    return p, rows, compiled(p)


def edge_rows() -> list[list]:
    return [
        [42.0, "online", 123.4, 5, "26-40", 2500.0],
        [1.0, "never seen", None, "7", "60+", 1e9],  # unknown category, missing number, numeric string
        [-1.0, "travel", 0.0, True, "never seen", -3.5],  # log1p(-1) = -inf, unknown age group
        [-2.5, "grocery", float("nan"), 3, "18-25", None],  # log1p below -1: NaN; NaN; None
        [1e300, "retail", 1e-300, 0, "41-60", 0.0],  # beyond float32's range
    ]


def sklearn_answer(p, rows):
    x = np.array(rows, dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        return p.predict_proba(x) if hasattr(p, "predict_proba") else p.predict(x)


def compiled_answer(model: TreeModel, p, rows):
    with np.errstate(invalid="ignore", divide="ignore"):
        return model.proba(rows) if hasattr(p, "predict_proba") else model.predict(rows)


@pytest.mark.parametrize("estimator, target, transforms", MODELS, ids=[f"{type(e).__name__}-{t}" for e, t, _ in MODELS])
def test_compiled_trees_equal_sklearn_bit_for_bit(estimator, target, transforms):
    p, rows = fitted(estimator, target, transforms)
    model = compiled(p)
    probes = probe_rows(p, ["string" if isinstance(v, str) else "double" for v in rows[0]], n=2000, seed=4)
    for batch in (rows, probes):
        got = compiled_answer(model, p, batch)
        assert got is not None
        np.testing.assert_array_equal(got, sklearn_answer(p, batch))
    whole = compiled_answer(model, p, probes[:64])
    for i in range(64):  # one row, as served online: its own 1-D path, the batch's (= sklearn's) bits
        np.testing.assert_array_equal(compiled_answer(model, p, probes[i : i + 1]), whole[i : i + 1])
    for row in edge_rows():  # one at a time, as served: each compiled or handed to sklearn
        got = compiled_answer(model, p, [row])
        if got is not None:
            np.testing.assert_array_equal(got, sklearn_answer(p, [row]))
    compiled_scorer, plain = Scorer(p), Scorer(p, compile_model=False)
    assert isinstance(compiled_scorer.compiled, TreeModel)
    assert compiled_scorer.score(rows[:50]) == plain.score(rows[:50])


@pytest.mark.parametrize("estimator, target, transforms", MODELS, ids=[f"{type(e).__name__}-{t}" for e, t, _ in MODELS])
def test_one_served_row_gets_the_batch_paths_bits(estimator, target, transforms):
    """A row as served online (a list) takes the one-row feature path: the batch path's bits."""
    p, rows = fitted(estimator, target, transforms)
    model = compiled(p)
    features = model.features
    assert features.one_row is not None  # kept by the load-time check
    probes = probe_rows(p, ["string" if isinstance(v, str) else "double" for v in rows[0]], n=500, seed=5)
    for batch in (rows[:200], probes):
        with np.errstate(invalid="ignore", divide="ignore"):
            whole = features.transform(batch)
            answers = compiled_answer(model, p, batch)
            assert whole is not None and answers is not None
            taken = 0
            for i, row in enumerate(batch.tolist()):
                one = features.one_row(row)
                if one is not None:
                    taken += 1
                    assert one.tobytes() == whole[i : i + 1].tobytes(), row
                if i < 100:
                    np.testing.assert_array_equal(compiled_answer(model, p, [row]), answers[i : i + 1])
        assert taken >= 0.9 * len(batch)
    for row in edge_rows():
        with np.errstate(invalid="ignore", divide="ignore"):
            one = features.one_row(row)
            if one is not None:
                assert one.tobytes() == features.transform(np.array([row], dtype=object)).tobytes(), row


def test_single_rows_take_the_same_path_as_batches():
    _, rows, model = example_model()
    assert model.ensemble.nodes.masks is not None  # 31 leaves per tree: QuickScorer's bitmasks
    whole = model.proba(rows)
    assert whole is not None
    for i in range(0, len(rows), 37):
        np.testing.assert_array_equal(model.proba(rows[i : i + 1]), whole[i : i + 1])


def test_deep_trees_walk_level_by_level():
    p, rows = fitted(RandomForestRegressor(n_estimators=5, random_state=0), "regression", EXAMPLE)
    model = compiled(p)
    assert model.ensemble.nodes.masks is None  # more than 64 leaves per tree
    np.testing.assert_array_equal(model.predict(rows), p.predict(rows))


@pytest.mark.parametrize(
    "row",
    [
        [1.0, None, 1.0, 1, "18-25", 1.0],  # a missing category: sklearn's encoder decides
        [1.0, 3, 1.0, 1, "18-25", 1.0],  # a number where a category belongs
        ["inf", "online", 1.0, 1, "18-25", 1.0],  # the scalers refuse infinity
        ["abc", "online", 1.0, 1, "18-25", 1.0],  # not a number
        [1.0, "online", 1.0],  # too short
    ],
)
def test_rows_sklearn_must_judge_go_to_sklearn(row):
    _, _, model = example_model()
    assert model.proba([row]) is None


def test_float32_trees_hand_unrepresentable_values_to_sklearn():
    p, _ = fitted(*MODELS[3])  # GradientBoosting: float32 trees, no missing values
    model = compiled(p)
    assert model.proba([[1.0, "online", 1e300, 1, "18-25", 1.0]]) is None  # inf in float32
    assert model.proba([[1.0, "online", 2.0, 1, "18-25", 1.0]]) is not None


def test_categorical_splits_stay_on_sklearn():
    p, _ = fitted(HistGradientBoostingClassifier(max_iter=10, categorical_features=[4]), "binary", OTHERS)
    with pytest.raises(NotCompilable, match="categorical"):
        compile_model(p, len(COLUMNS))
    assert Scorer(p).compiled is None


def test_large_batches_go_to_sklearn_with_the_same_answers():
    p, rows, _ = example_model()
    scorer = Scorer(p)
    assert isinstance(scorer.compiled, TreeModel)
    assert scorer.compiled.proba(rows[:10].tolist()) is not None
    assert scorer.compiled.proba(rows.tolist()) is None  # 600 rows: sklearn's own tree walk is faster
    assert scorer.score(rows) == Scorer(p, compile_model=False).score(rows)


def test_one_served_row_of_a_binary_hgb_scores_like_sklearn(monkeypatch):
    """The fused one-row path (features, leaves, sum, link) answers sklearn's score for each row."""
    p, rows, _ = example_model()
    scorer, plain = Scorer(p), Scorer(p, compile_model=False)
    assert isinstance(scorer.compiled, TreeModel) and scorer.compiled.row is not None
    probes = probe_rows(p, ["string" if isinstance(v, str) else "double" for v in rows[0]], n=300, seed=6)
    served = [*rows[:300].tolist(), *probes.tolist(), *edge_rows()]
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = [plain.score([row]) for row in served]
        assert [scorer.score([row]) for row in served] == expected
        monkeypatch.setattr(scorer.compiled, "proba", lambda rows: pytest.fail("the batch path scored a served row"))
        assert scorer.score([rows[0].tolist()]) == expected[0]


@pytest.mark.parametrize("index", [1, 2, 3, 6], ids=["hgb-multi", "hgb-regression", "gb-binary", "forest-binary"])
def test_other_tree_models_keep_the_batch_proba_for_one_row(index):
    p, _ = fitted(*MODELS[index])
    assert compiled(p).row is None
