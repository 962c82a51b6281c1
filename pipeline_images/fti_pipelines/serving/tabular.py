"""The training pipeline's feature steps replayed with the same numpy operations, for tree models.

Why not ONNX for these: a tree compares each feature with a threshold, so a feature one
ulp off can take the other branch. ONNX Runtime computes log1p as log(1 + x) and skl2onnx
converts some steps in float32; here every step does the arithmetic sklearn's own
`transform` does, in the same order and dtype (float cast, `X -= mean_; X /= scale_`,
`X *= scale_; X += min_`, `np.log1p`, one-hot by category, the imputer's fill), so the
matrix the model sees is bit for bit sklearn's — `compile_model` checks that on probing
rows before using it (docs/serving.md).

Only the steps `build_model_pipeline` writes are known; anything else raises
NotCompilable and sklearn keeps serving. Cells whose meaning is sklearn's to decide
(a category that is not a string, an infinite or unparsable number) make `transform`
answer None, and the caller scores that batch with sklearn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
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


class NotCompilable(Exception):
    """The pipeline is outside what a compiled path reproduces exactly; sklearn serves it."""


# A numeric step: float64 block (n, k) in, float64 block out (may work in place).
Step = Callable[[np.ndarray], np.ndarray]


def is_float_cast(step: Any) -> bool:
    return (
        isinstance(step, FunctionTransformer)
        and step.func is np.asarray
        and (step.kw_args or {}).get("dtype") in ("float64", np.float64)
    )


def _center_scale(center: np.ndarray | None, scale: np.ndarray | None) -> Step:
    """StandardScaler's and RobustScaler's transform: `X -= center; X /= scale`, each if fitted."""

    def step(x: np.ndarray) -> np.ndarray:
        if center is not None:
            x -= center
        if scale is not None:
            x /= scale
        return x

    return step


def _numeric_step(step: Any) -> Step:
    """The in-place arithmetic of one fitted numeric step, as its transform() does it."""
    if isinstance(step, StandardScaler):
        return _center_scale(step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None)
    if isinstance(step, MinMaxScaler):
        if step.clip:
            raise NotCompilable("MinMaxScaler(clip=True)")
        mm_scale, mm_min = step.scale_, step.min_

        def minmax(x: np.ndarray) -> np.ndarray:
            x *= mm_scale
            x += mm_min
            return x

        return minmax
    if isinstance(step, RobustScaler):
        return _center_scale(step.center_ if step.with_centering else None, step.scale_ if step.with_scaling else None)
    if isinstance(step, FunctionTransformer) and step.func is np.log1p and not step.kw_args:
        return np.log1p
    raise NotCompilable(f"feature step {type(step).__name__} is not replayed exactly")


class _Encoder:
    """OneHotEncoder / OrdinalEncoder over string cells: a dict lookup per cell."""

    def __init__(self, enc: Any):
        if getattr(enc, "_infrequent_enabled", False):
            raise NotCompilable(f"{type(enc).__name__} with infrequent categories")
        self.onehot = isinstance(enc, OneHotEncoder)
        if self.onehot:
            if enc.drop is not None or enc.sparse_output:
                raise NotCompilable("OneHotEncoder with drop= or sparse output")
            self.unknown_ok = enc.handle_unknown == "ignore"
        else:
            self.unknown_ok = enc.handle_unknown == "use_encoded_value"
            self.unknown_value = float(enc.unknown_value) if self.unknown_ok else 0.0
        if np.dtype(enc.dtype) != np.float64:
            raise NotCompilable(f"{type(enc).__name__}(dtype={enc.dtype})")
        # Only string categories are looked up here; a None/NaN cell goes to sklearn anyway.
        self.codes = [{c: i for i, c in enumerate(cats) if type(c) is str} for cats in enc.categories_]
        self.widths = [len(cats) for cats in enc.categories_]
        self.width = sum(self.widths) if self.onehot else len(self.widths)

    def fill(self, column: list[Any], j: int, out: np.ndarray, at: int) -> bool:
        """Write input column j's encoding into out[:, at:...]; False when sklearn must decide."""
        codes = self.codes[j]
        for i, v in enumerate(column):
            if type(v) is not str:
                return False
            code = codes.get(v)
            if code is None:
                if not self.unknown_ok:
                    return False  # sklearn raises its own error for it
                if not self.onehot:
                    out[i, at] = self.unknown_value
            elif self.onehot:
                out[i, at + code] = 1.0
            else:
                out[i, at] = code
        return True


class Branch:
    """One ColumnTransformer branch: input positions -> a block of output columns."""

    def __init__(self, step: Any, positions: list[int], at: int):
        steps = [s for _, s in step.steps] if isinstance(step, Pipeline) else [step]
        self.positions = positions
        self.at = at
        self.encoder: _Encoder | None = None
        self.numeric: list[Step] = []
        if is_float_cast(steps[0]):
            self.numeric = [_numeric_step(s) for s in steps[1:]]
            self.width = len(positions)
        elif isinstance(steps[0], (OneHotEncoder, OrdinalEncoder)) and len(steps) == 1:
            self.encoder = _Encoder(steps[0])
            self.width = self.encoder.width
        else:
            raise NotCompilable(f"a ColumnTransformer branch {[type(s).__name__ for s in steps]} is not replayed exactly")

    def fill(self, matrix: np.ndarray, out: np.ndarray) -> bool:
        if self.encoder is not None:
            at = self.at
            for j, pos in enumerate(self.positions):
                if not self.encoder.fill(matrix[:, pos].tolist(), j, out, at):
                    return False
                at += self.encoder.widths[j] if self.encoder.onehot else 1
            return True
        try:
            x = np.asarray(matrix[:, self.positions], dtype="float64")  # the pipeline's own float cast
        except (ValueError, TypeError):
            return False  # sklearn raises its own error for it
        if np.isinf(x).any():
            return False  # the scalers refuse infinity
        for step in self.numeric:  # log1p below -1: NaN / -inf (and its warning), as in sklearn
            x = step(x)
        out[:, self.at : self.at + self.width] = x
        return True


class Features:
    """The fitted ColumnTransformer (+ NaN imputer) of a training pipeline, as numpy steps."""

    def __init__(self, pipeline: Any, width: int, *, allow_inf: bool = False):
        if not isinstance(pipeline, Pipeline) or not isinstance(pipeline.steps[0][1], ColumnTransformer):
            raise NotCompilable("the model is not a Pipeline starting with a ColumnTransformer")
        ct = pipeline.steps[0][1]
        if ct.sparse_output_:
            raise NotCompilable("the ColumnTransformer answers a sparse matrix")
        self.width = width
        self.branches: list[Branch] = []
        at = 0
        for _, step, cols in ct.transformers_:
            if step == "drop":
                continue
            positions: list[Any] = [cols] if isinstance(cols, (int, np.integer)) else list(cols)
            if not positions:
                continue
            if not all(isinstance(p, (int, np.integer)) and 0 <= p < width for p in positions):
                raise NotCompilable("the ColumnTransformer selects columns other than by position")
            branch = Branch(step, [int(p) for p in positions], at)
            self.branches.append(branch)
            at += branch.width
        self.n_out = at
        self.fill_values: np.ndarray | None = None
        middle = [s for _, s in pipeline.steps[1:-1]]
        for step in middle:
            if not isinstance(step, SimpleImputer):
                raise NotCompilable(f"pipeline step {type(step).__name__} is not replayed exactly")
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if (
                not (isinstance(step.missing_values, float) and np.isnan(step.missing_values))
                or np.isnan(stats).any()
                or step.add_indicator
                or stats.shape != (self.n_out,)
            ):
                raise NotCompilable("SimpleImputer other than NaN -> finite statistic per column")
            self.fill_values = stats
        if len(middle) > 1:
            raise NotCompilable("more than one step between the ColumnTransformer and the model")
        # The imputer refuses infinity (log1p(-1) = -inf); so do sklearn's float32 trees.
        self.allow_inf = allow_inf and self.fill_values is None
        self.one_row: Callable[[Sequence[Any]], np.ndarray | None] | None = self._one_row()

    def _one_row(self) -> Callable[[Sequence[Any]], np.ndarray | None]:
        """`transform` of one row (a list, as served online), in the fewest numpy calls.

        The numeric cells are cast once (`float(v)`, numpy's cast of an object); a numeric
        branch with steps runs them on a fresh float64 array of its values (the same ufuncs
        on the same fresh contiguous values as the batch path's block, so the same bits),
        a bare float cast needs no array; the encoders, the imputer's fill and the
        infinity test work on Python floats, and the row becomes one (1, n_out) array.
        It answers None where the batch path must judge (a cell of any other type, an
        infinite number, a row of the wrong length): `transform` then runs that path.
        """
        numeric_positions: list[int] = []
        spans: list[tuple[int, int, tuple[Step, ...], int]] = []  # numeric slice [a, b), steps, output column
        cells: list[tuple[int, int, dict[str, int], bool, bool, float]] = []  # encoded input position, ...
        for branch in self.branches:
            if branch.encoder is None:
                a = len(numeric_positions)
                numeric_positions += branch.positions
                spans.append((a, len(numeric_positions), tuple(branch.numeric), branch.at))
                continue
            enc, at = branch.encoder, branch.at
            for j, pos in enumerate(branch.positions):
                cells.append((pos, at, enc.codes[j], enc.onehot, enc.unknown_ok, getattr(enc, "unknown_value", 0.0)))
                at += enc.widths[j] if enc.onehot else 1
        width, n_out, allow_inf = self.width, self.n_out, self.allow_inf
        fill = self.fill_values.tolist() if self.fill_values is not None else None
        inf = float("inf")
        plain = (float, int)

        def one(row: Sequence[Any]) -> np.ndarray | None:
            if len(row) != width:
                return None
            values = [row[p] for p in numeric_positions]
            for v in values:
                if type(v) not in plain or v == inf or v == -inf:
                    return None  # bools, strings, None, numpy scalars, infinity: the batch path decides
            try:
                floats = [float(v) for v in values]  # the float cast: float(v), as numpy casts an object
            except OverflowError:
                return None
            out = [0.0] * n_out
            for a, b, steps, at in spans:
                if not steps:
                    out[at : at + b - a] = floats[a:b]
                    continue
                block = np.array(floats[a:b])
                for step in steps:
                    block = step(block)
                out[at : at + b - a] = block.tolist()
            for pos, at, codes, onehot, unknown_ok, unknown_value in cells:
                v = row[pos]
                if type(v) is not str:
                    return None
                code = codes.get(v)
                if code is None:
                    if not unknown_ok:
                        return None
                    if not onehot:
                        out[at] = unknown_value
                elif onehot:
                    out[at + code] = 1.0
                else:
                    out[at] = float(code)
            if fill is not None:
                for i, v in enumerate(out):
                    if v != v:  # NaN: the imputer's statistic
                        out[i] = fill[i]
            if not allow_inf and (inf in out or -inf in out):
                return None
            return np.array([out])

        return one

    def transform(self, rows: Sequence[Sequence[Any]] | np.ndarray) -> np.ndarray | None:
        """The model's float64 input matrix, or None when sklearn must see these rows itself."""
        if self.one_row is not None and type(rows) is list and len(rows) == 1:
            one = self.one_row(rows[0])
            if one is not None:
                return one
        try:
            matrix = rows if isinstance(rows, np.ndarray) else np.array(rows, dtype=object)
        except ValueError:
            return None
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            return None  # ragged rows: sklearn's error message
        out = np.zeros((matrix.shape[0], self.n_out), dtype=np.float64)
        for branch in self.branches:
            if not branch.fill(matrix, out):
                return None
        if self.fill_values is not None:
            missing = np.isnan(out)
            if missing.any():
                out = np.where(missing, self.fill_values, out)
        if not self.allow_inf and np.isinf(out).any():
            return None
        return out
