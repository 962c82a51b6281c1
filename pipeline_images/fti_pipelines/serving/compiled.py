"""The saved sklearn pipeline compiled at load time, for fast one-row scoring.

Two compiled paths: linear final estimators go to ONNX Runtime (below); tree ensembles
(HistGradientBoosting, GradientBoosting, RandomForest, ExtraTrees) to numpy over
flattened node arrays behind the same feature steps replayed in numpy (trees.py,
tabular.py), because a tree's threshold tests need the features bit for bit.

Why: sklearn spends milliseconds of CPU per `predict_proba` call on one row of the
training pipeline's model, almost all of it per-estimator input validation and dispatch,
not arithmetic; ONNX Runtime runs the same graph in tens of microseconds
(bench/RESULTS.md). model.joblib stays the only artifact (docs/store-layout.md): the
graph is converted in memory when the server loads.

It is used only when it is provably the same model:
- the pipeline has the training pipeline's shape (`build_model_pipeline`): a
  ColumnTransformer by position whose branches start with the float cast or an
  encoder, so every input column has one type (float64 or string), and a linear
  final estimator (the float64 path skl2onnx converts quickly and exactly);
- at load time the graph and sklearn agree to 1e-6 on probing rows built from the
  fitted steps (every known category, unknown ones, values around each scaler's
  range, missing numbers); otherwise the server logs why and keeps sklearn.
At request time a batch that the graph might read differently from sklearn (a
non-string category cell, an infinite number, a number that does not parse) goes
to sklearn, so answers and errors stay sklearn's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

from .tabular import Features, NotCompilable, is_float_cast
from .trees import TreeEnsemble, tree_ensemble

log = logging.getLogger("fti_pipelines.serving")

TOLERANCE = 1e-6
# Tree models: the same float64 operations in the same order, so the answers are sklearn's
# bit for bit on every probing row we have seen; the load-time check still allows this much.
TREE_TOLERANCE = 1e-12
# Above this many rows sklearn's compiled tree walk wins: numpy's per-row cost is ~4x
# sklearn's, its fixed per-call cost ~60x smaller (crossover ~200 rows, bench/RESULTS.md).
# Batch scoring's chunks therefore go to sklearn, the online requests here.
TREE_MAX_ROWS = 256
ENCODERS = (OneHotEncoder, OrdinalEncoder)
# Rows as the scorers take them: lists of instances (served) or a 2-D object array (batch, probing).
Rows = Sequence[Sequence[Any]] | np.ndarray


def column_kinds(pipeline: Any, width: int) -> list[str]:
    """ "double" or "string" per input position, from the pipeline's ColumnTransformer."""
    if not isinstance(pipeline, Pipeline) or not isinstance(pipeline.steps[0][1], ColumnTransformer):
        raise NotCompilable("the model is not a Pipeline starting with a ColumnTransformer")
    kinds: list[str | None] = [None] * width
    for _, step, cols in pipeline.steps[0][1].transformers_:
        if step == "drop":
            continue
        first = step.steps[0][1] if isinstance(step, Pipeline) else step
        if is_float_cast(first):
            kind = "double"
        elif isinstance(first, ENCODERS):
            kind = "string"
        else:
            raise NotCompilable(f"a ColumnTransformer branch starts with {type(first).__name__}")
        positions: list[Any] = [cols] if isinstance(cols, (int, np.integer)) else list(cols)
        for pos in positions:
            if not isinstance(pos, (int, np.integer)) or not 0 <= pos < width or kinds[pos] not in (None, kind):
                raise NotCompilable(f"column {pos!r} is not a position used by one kind of branch")
            kinds[pos] = kind
    return [k or "double" for k in kinds]  # a dropped column: never read, any type will do


# --- skl2onnx converters for the two steps it does not convert as sklearn computes them ---


def _same_shape(operator: Any) -> None:
    x = operator.inputs[0]
    operator.outputs[0].type = x.type.__class__([x.get_first_dimension(), x.get_second_dimension()])


def _function_transformer(scope: Any, operator: Any, container: Any) -> None:
    # The float cast happens on our side (the same np.asarray call), so here it is the identity.
    step, x, y = operator.raw_operator, operator.inputs[0].full_name, operator.outputs[0].full_name
    if is_float_cast(step):
        container.add_node("Identity", [x], [y], name=scope.get_unique_operator_name("Identity"))
    elif step.func is np.log1p and not step.kw_args:
        one = scope.get_unique_variable_name("one")
        container.add_initializer(one, 11, [], [1.0])  # 11 = TensorProto.DOUBLE
        shifted = scope.get_unique_variable_name("shifted")
        container.add_node("Add", [x, one], [shifted], name=scope.get_unique_operator_name("Add"))
        container.add_node("Log", [shifted], [y], name=scope.get_unique_operator_name("Log"))
    else:
        raise NotCompilable(f"FunctionTransformer({getattr(step.func, '__name__', step.func)!r})")


def _imputer(scope: Any, operator: Any, container: Any) -> None:
    # skl2onnx's own converter casts the fill values to float32; this one keeps float64.
    step, x, y = operator.raw_operator, operator.inputs[0].full_name, operator.outputs[0].full_name
    stats = np.asarray(step.statistics_, dtype=np.float64)
    if (
        not (isinstance(step.missing_values, float) and np.isnan(step.missing_values))
        or np.isnan(stats).any()
        or getattr(step, "add_indicator", False)
    ):
        raise NotCompilable("SimpleImputer other than NaN -> finite statistic per column")
    fill = scope.get_unique_variable_name("fill")
    container.add_initializer(fill, 11, [1, len(stats)], stats.tolist())
    missing = scope.get_unique_variable_name("missing")
    container.add_node("IsNaN", [x], [missing], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [missing, fill, x], [y], name=scope.get_unique_operator_name("Where"))


def to_onnx(pipeline: Any, kinds: Sequence[str]) -> bytes:
    """The ONNX graph of the pipeline: one [n, 1] input per column, float64 arithmetic."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    types = [
        (f"c{i}", DoubleTensorType([None, 1]) if k == "double" else StringTensorType([None, 1])) for i, k in enumerate(kinds)
    ]
    try:
        graph = convert_sklearn(
            pipeline,
            initial_types=types,
            options={id(pipeline.steps[-1][1]): {"zipmap": False}},
            custom_conversion_functions={FunctionTransformer: _function_transformer, SimpleImputer: _imputer},
            custom_shape_calculators={FunctionTransformer: _same_shape, SimpleImputer: _same_shape},
        )
    except NotCompilable:
        raise
    except Exception as exc:  # any estimator skl2onnx cannot convert: keep sklearn
        raise NotCompilable(f"skl2onnx: {type(exc).__name__}: {exc}") from exc
    return graph.SerializeToString()


def probe_rows(pipeline: Any, kinds: Sequence[str], n: int = 256, seed: int = 0) -> np.ndarray:
    """Rows that walk the fitted steps: known and unknown categories, numbers across each scaler's range, NaN."""
    rng = np.random.default_rng(seed)
    ct = pipeline.steps[0][1]
    cats: dict[int, list[Any]] = {}
    centre: dict[int, tuple[float, float]] = {}
    for _, step, cols in ct.transformers_:
        if step == "drop":
            continue
        positions: list[Any] = [cols] if isinstance(cols, (int, np.integer)) else list(cols)
        steps = step.steps if isinstance(step, Pipeline) else [("", step)]
        for _, s in steps:
            for j, pos in enumerate(positions):
                if isinstance(s, ENCODERS):
                    cats[pos] = [c for c in s.categories_[j] if isinstance(c, str)] + ["<unseen category>"]
                for loc, spread in (("mean_", "scale_"), ("center_", "scale_"), ("data_min_", "data_range_")):
                    if hasattr(s, loc) and hasattr(s, spread):
                        c, w = float(getattr(s, loc)[j]), float(getattr(s, spread)[j] or 1.0)
                        centre[pos] = (c, abs(w) or 1.0)
    rows = np.empty((n, len(kinds)), dtype=object)
    for pos, kind in enumerate(kinds):
        if kind == "string":
            rows[:, pos] = rng.choice(np.array(cats.get(pos, ["a", "b"]), dtype=object), n)
        else:
            c, w = centre.get(pos, (0.0, 10.0))
            values = c + w * rng.normal(0.0, 2.0, n)
            values[rng.random(n) < 0.1] = np.nan
            rows[:, pos] = values
    return rows


@dataclass
class CompiledModel:
    """predict_proba through ONNX Runtime, for batches the graph reads exactly like sklearn."""

    session: Any
    columns: list[tuple[str, int, str]]  # (graph input, row position, "double" | "string")

    def inputs(self, rows: Rows) -> dict[str, np.ndarray] | None:
        """The graph's feed, or None when sklearn must see these rows itself."""
        feed = {}
        for name, pos, kind in self.columns:
            try:
                column = [row[pos] for row in rows]
            except (IndexError, KeyError, TypeError):
                return None  # ragged rows: sklearn's error message
            if kind == "string":
                if not all(type(v) is str for v in column):
                    return None  # None, numbers, bools: sklearn's encoder decides what they mean
                feed[name] = np.array(column, dtype=object).reshape(-1, 1)
                continue
            try:
                values = np.asarray(column, dtype=np.float64)  # the pipeline's own float cast
            except (ValueError, TypeError):
                return None  # sklearn raises its own error for it
            if np.isinf(values).any():
                return None  # sklearn refuses infinity; the graph would not
            feed[name] = values.reshape(-1, 1)
        return feed

    def proba(self, rows: Rows) -> np.ndarray | None:
        feed = self.inputs(rows)
        if feed is None:
            return None
        try:
            return self.session.run(["probabilities"], feed)[0]
        except Exception as exc:  # noqa: BLE001 - whatever the runtime refuses, sklearn answers or explains
            log.warning("ONNX Runtime failed on %d row(s), scoring with sklearn: %s", len(rows), exc)
            return None


def _session(graph: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One thread, like the server's BLAS/OpenMP limit: a few rows gain nothing from a pool.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


def _compile_onnx(pipeline: Any, width: int, kinds: list[str]) -> CompiledModel:
    if not hasattr(pipeline, "predict_proba"):
        raise NotCompilable("the model has no predict_proba")
    final = type(pipeline.steps[-1][1])
    if not final.__module__.startswith("sklearn.linear_model"):
        # skl2onnx's tree classifiers answer float32 probabilities and some take minutes to
        # convert (a RandomForest of 20 trees: >10 min); trees have their own path (trees.py).
        raise NotCompilable(f"{final.__name__} is not a linear model")
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as exc:
        raise NotCompilable(f"{exc.name} is not installed") from exc
    graph = to_onnx(pipeline, kinds)
    try:
        session = _session(graph)
    except Exception as exc:  # a graph ONNX Runtime cannot run (e.g. float32-only kernels)
        raise NotCompilable(f"ONNX Runtime: {exc}") from exc
    # skl2onnx may leave out inputs no branch reads (remainder="drop").
    names = {f"c{i}": i for i in range(width)}
    model = CompiledModel(session, [(i.name, names[i.name], kinds[names[i.name]]) for i in session.get_inputs()])
    rows = probe_rows(pipeline, kinds)
    with np.errstate(invalid="ignore", divide="ignore"):  # log1p of probing values below -1: NaN, as served
        expected = pipeline.predict_proba(rows)
    feed = model.inputs(rows)
    if feed is None:
        raise NotCompilable("the probing rows do not fit the graph's inputs")
    got = session.run(["probabilities"], feed)[0]
    diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
    if not diff <= TOLERANCE:
        raise NotCompilable(f"ONNX Runtime and sklearn differ by {diff:.3g} on probing rows (> {TOLERANCE})")
    return model


@dataclass
class TreeModel:
    """A tree ensemble behind the pipeline's feature steps, both in numpy (tabular.py, trees.py)."""

    features: Features
    ensemble: TreeEnsemble
    tolerance: float = TREE_TOLERANCE

    max_rows: int = TREE_MAX_ROWS
    # TreeEnsemble.row_proba(), kept when it gives `proba`'s bits on the probing rows.
    row: Callable[[np.ndarray], list[float]] | None = None

    def proba_row(self, row: Sequence[Any]) -> list[float] | None:
        """`proba` of one served row as Python floats; None where `proba` must answer."""
        one_row = self.features.one_row
        if self.row is None or one_row is None:
            return None
        X = one_row(row)
        return None if X is None else self.row(X[0])

    def proba(self, rows: Rows) -> np.ndarray | None:
        X = self.features.transform(rows) if len(rows) <= self.max_rows else None
        return None if X is None else self.ensemble.proba(X)

    def predict(self, rows: Rows) -> np.ndarray | None:
        X = self.features.transform(rows) if len(rows) <= self.max_rows else None
        return None if X is None else self.ensemble.predict(X)


def _equal_on(name: str, got: np.ndarray | None, expected: np.ndarray, bound: float) -> None:
    if got is None or got.shape != expected.shape:
        raise NotCompilable(f"the compiled {name} does not answer the probing rows like sklearn")
    diff = float(np.max(np.abs(got - expected), initial=0.0, where=~np.isnan(expected)))
    if not diff <= bound or not np.array_equal(np.isnan(got), np.isnan(expected)):
        raise NotCompilable(f"compiled and sklearn {name} differ by {diff:.3g} on probing rows (> {bound})")


def one_row_agrees(features: Features, rows: np.ndarray) -> bool:
    """Keep the one-row feature path only if it gives the batch path's bits on every probing row."""
    if features.one_row is None:
        return False
    batch = features.transform(rows)
    for i, row in enumerate(rows.tolist()):
        got = features.one_row(row)
        if got is not None and (batch is None or got[0].tobytes() != batch[i].tobytes()):  # bit for bit
            log.info("one-row feature path off: it differs from the batch path on a probing row")
            features.one_row = None
            return False
    return True


def row_proba_agrees(model: TreeModel, rows: np.ndarray) -> Callable[[np.ndarray], list[float]] | None:
    """The ensemble's one-row proba if it gives the batch `proba`'s bits on every probing row."""
    row = model.ensemble.row_proba()
    X = model.features.transform(rows)
    expected = model.proba(rows)
    if row is None or X is None or expected is None:
        return None
    for i in range(len(rows)):
        if np.asarray(row(X[i]), dtype=np.float64).tobytes() != expected[i].tobytes():
            log.info("one-row tree proba off: it differs from the batch path on a probing row")
            return None
    return row


def _compile_trees(pipeline: Any, width: int, kinds: list[str]) -> TreeModel:
    ensemble = tree_ensemble(pipeline.steps[-1][1])
    # Infinity reaches a HistGradientBoosting model as a number (it validates with
    # ensure_all_finite=False); float32 trees and the imputer refuse it.
    # Checked on every probing row at once, whatever the row limit for serving.
    model = TreeModel(Features(pipeline, width, allow_inf=ensemble.family == "hgb"), ensemble, max_rows=1 << 62)
    rows = probe_rows(pipeline, kinds, n=1024)
    with np.errstate(invalid="ignore", divide="ignore"):  # log1p of probing values below -1: NaN, as served
        features = pipeline[:-1].transform(rows)
        _equal_on("features", model.features.transform(rows), np.asarray(features, dtype=np.float64), 0.0)
        if hasattr(pipeline, "predict_proba"):
            expected = pipeline.predict_proba(rows)
            got = model.proba(rows)
            _equal_on("probabilities", got, expected, model.tolerance)
            assert got is not None
            if not np.array_equal(got.argmax(axis=1), expected.argmax(axis=1)):
                raise NotCompilable("compiled and sklearn pick different classes on probing rows")
        else:
            _equal_on("predictions", model.predict(rows), pipeline.predict(rows), model.tolerance)
        if one_row_agrees(model.features, rows[:256]) and hasattr(pipeline, "predict_proba"):
            model.row = row_proba_agrees(model, rows[:256])
    model.max_rows = TREE_MAX_ROWS
    return model


def compile_model(pipeline: Any, width: int) -> CompiledModel | TreeModel:
    """The compiled model, checked against sklearn on probing rows; NotCompilable says why not."""
    kinds = column_kinds(pipeline, width)
    if type(pipeline.steps[-1][1]).__module__.startswith("sklearn.ensemble"):
        return _compile_trees(pipeline, width, kinds)
    return _compile_onnx(pipeline, width, kinds)


def try_compile(pipeline: Any, width: int) -> CompiledModel | TreeModel | None:
    """compile_model, or None with a log line saying why sklearn keeps serving."""
    try:
        model = compile_model(pipeline, width)
    except NotCompilable as exc:
        log.info("scoring with sklearn (not compiled): %s", exc)
        return None
    if isinstance(model, TreeModel):
        log.info("scoring with numpy tree traversal (agrees with sklearn to %g on probing rows)", model.tolerance)
    else:
        log.info("scoring with ONNX Runtime (agrees with sklearn to %g on probing rows)", TOLERANCE)
    return model
