"""Tree ensembles scored with numpy over flattened node arrays, exactly as sklearn scores them.

Why: sklearn spends milliseconds per `predict_proba` call on a few rows of a tree model
(input validation, one Python call per tree), against tens of microseconds of actual
traversal. Here every tree of the ensemble sits in one set of node arrays, the decision
of every node for every row is one vectorised comparison, and the rows walk all trees at
once, one numpy step per tree level (docs/serving.md).

Exactness, per family, follows sklearn's own predictors:
- HistGradientBoosting (`_predictor.pyx`): float64 input against the raw float64
  `num_threshold`, NaN to `missing_go_to_left`, infinity compared like any number; the
  raw score is the baseline plus each iteration's leaf value added in iteration order
  (a cumulative sum, not numpy's pairwise sum), then the estimator's own loss maps it.
  Categorical splits (bitsets) are not reproduced: such models stay on sklearn.
- GradientBoosting (`_gradient_boosting.pyx`): float32 input (the tree's dtype) against
  the float64 threshold, `learning_rate * leaf value` added stage by stage to the init
  estimator's constant raw score. Missing values go to sklearn.
- RandomForest / ExtraTrees (`_forest.py`, `_tree.pyx`): float32 input, NaN to
  `missing_go_to_left` where the trees support missing values, each tree's leaf row
  added in estimator order from zero, divided by the number of trees.
Rows sklearn would refuse or route otherwise (infinity for float32 trees, NaN where the
trees take none) make `raw` answer None, and sklearn scores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tabular import NotCompilable

# Rows scored per chunk: the node decisions are a (rows x nodes) matrix.
MAX_DECISIONS = 1 << 22
ALL_LEAVES = np.uint64(0xFFFFFFFFFFFFFFFF)


def _lowest_bit(kept: np.ndarray) -> np.ndarray:
    """Position of each value's lowest set bit (every value has one: the reached leaf)."""
    if _bitwise_count is not None:  # numpy >= 2: the ones below it, in one call
        return _bitwise_count(~kept & (kept - np.uint64(1)))
    return np.frexp((kept & (~kept + np.uint64(1))).astype(np.float64))[1] - 1  # powers of two are exact


_bitwise_count = getattr(np, "bitwise_count", None)


@dataclass
class Masks:
    """QuickScorer's tables: per internal node, the tree's leaves still reachable when it goes right.

    Leaves are numbered left to right within a tree (at most 64, one bit each). A node
    whose test sends the row right rules out every leaf of its left subtree; AND-ing
    those masks over a tree leaves the reached leaf as the lowest set bit. So a row is
    scored in a fixed dozen numpy calls however deep the trees are, instead of one
    round of calls per level.
    """

    feature: np.ndarray  # intp, per internal node
    threshold: np.ndarray  # float64
    nan_right: np.ndarray  # bool: where NaN goes
    mask: np.ndarray  # uint64: leaves left reachable when the node goes right
    starts: np.ndarray  # intp, per tree: its first internal node (every tree has one)
    leaf_base: np.ndarray  # intp, per tree: its first entry in leaf_node
    leaf_node: np.ndarray  # intp: global node index of each leaf, trees in order, leaves left to right

    def leaves(self, X: np.ndarray, has_nan: bool) -> np.ndarray:
        if X.shape[0] == 1:
            return self.leaves_of_row(X[0], has_nan)[None, :]
        values = X[:, self.feature]  # (rows, internal nodes)
        right = values > self.threshold  # NaN compares False: left unless nan_right
        if has_nan:
            right |= np.isnan(values) & self.nan_right
        kept = np.bitwise_and.reduceat(np.where(right, self.mask, ALL_LEAVES), self.starts, axis=1)
        lowest = kept & (~kept + np.uint64(1))  # the reached leaf's bit alone
        index = np.frexp(lowest.astype(np.float64))[1] - 1  # its position (powers of two are exact)
        return self.leaf_node.take(self.leaf_base + index)

    def leaves_of_row(self, x: np.ndarray, has_nan: bool) -> np.ndarray:
        """`leaves` of one row (1-D): the same integer and comparison steps on 1-D arrays,
        which skip the 2-D fancy indexing and halve the cost of an online request's row."""
        values = x.take(self.feature)
        right = values > self.threshold
        if has_nan:
            right |= np.isnan(values) & self.nan_right
        kept = np.bitwise_and.reduceat(np.where(right, self.mask, ALL_LEAVES), self.starts)
        return self.leaf_node.take(self.leaf_base + _lowest_bit(kept))


@dataclass
class Nodes:
    """Every tree's nodes in one set of arrays; a leaf is its own child and never goes right."""

    feature: np.ndarray  # intp
    threshold: np.ndarray  # float64, +inf at leaves
    nan_right: np.ndarray  # bool: where NaN goes (False at leaves)
    children: np.ndarray  # intp, 2 per node: left, right
    roots: np.ndarray  # intp, one per tree
    depth: int
    masks: Masks | None  # when every tree has at most 64 leaves

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """(rows, trees) global index of the leaf each row reaches in each tree."""
        width = len(self.masks.feature) if self.masks is not None else len(self.feature)
        step = max(1, MAX_DECISIONS // max(1, width))
        has_nan = bool(np.isnan(X).any())
        if X.shape[0] <= step:
            return self._leaves(X, has_nan)
        return np.concatenate([self._leaves(X[lo : lo + step], has_nan) for lo in range(0, X.shape[0], step)])

    def _leaves(self, X: np.ndarray, has_nan: bool) -> np.ndarray:
        if self.masks is not None:
            return self.masks.leaves(X, has_nan)
        # Level by level: one round of numpy calls per level of the deepest tree.
        values = X[:, self.feature]  # (rows, nodes)
        right = values > self.threshold
        if has_nan:
            right |= np.isnan(values) & self.nan_right
        n = X.shape[0]
        children = self.children
        flat = right.view(np.uint8).ravel()
        offset = (np.arange(n, dtype=np.intp) * len(self.feature))[:, None]
        nodes = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        for _ in range(self.depth):
            nodes = children.take(2 * nodes + flat.take(nodes + offset))
        return nodes


def _leaf_order(left: np.ndarray, right: np.ndarray, leaf: np.ndarray) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """Leaves left to right, and per internal node the [first, end) leaf numbers of its left subtree."""
    order: list[int] = []
    start: dict[int, int] = {}  # leaves numbered before the node's subtree
    stack = [0]
    while stack:  # pre-order, left subtree first: a subtree's leaves are consecutive
        node = stack.pop()
        start[node] = len(order)
        if leaf[node]:
            order.append(node)
        else:
            stack += [int(right[node]), int(left[node])]
    return order, {node: (first, start[int(right[node])]) for node, first in start.items() if not leaf[node]}


class _Builder:
    """Appends trees to one node table, renumbering children into global indices."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.trees: list[tuple[np.ndarray, ...]] = []
        self.roots: list[int] = []
        self.size = 0
        self.depth = 0

    def add(self, feature, threshold, nan_left, left, right, is_leaf, depth: int) -> None:
        """Add one tree (local node arrays, root first)."""
        n = len(feature)
        ids = np.arange(self.size, self.size + n, dtype=np.intp)
        leaf = np.asarray(is_leaf, dtype=bool)
        left, right = np.asarray(left, dtype=np.intp), np.asarray(right, dtype=np.intp)
        feature = np.where(leaf, 0, np.asarray(feature, dtype=np.intp))
        threshold = np.where(leaf, np.inf, np.asarray(threshold, dtype=np.float64))
        nan_right = ~leaf & ~np.asarray(nan_left, dtype=bool)
        children = np.empty((n, 2), dtype=np.intp)
        children[:, 0] = np.where(leaf, ids, left + self.size)
        children[:, 1] = np.where(leaf, ids, right + self.size)
        self.parts.append((feature, threshold, nan_right, children.ravel()))
        self.trees.append((feature, threshold, nan_right, left, right, leaf))
        self.roots.append(self.size)
        self.size += n
        self.depth = max(self.depth, depth)

    def _masks(self) -> Masks | None:
        rows: list[tuple[int, float, bool, int]] = []  # per internal node: feature, threshold, nan_right, mask
        starts: list[int] = []
        leaf_base: list[int] = []
        leaf_node: list[int] = []
        for root, (feature, threshold, nan_right, left, right, leaf) in zip(self.roots, self.trees, strict=True):
            order, spans = _leaf_order(left, right, leaf)
            if len(order) > 64:
                return None
            starts.append(len(rows))
            leaf_base.append(len(leaf_node))
            leaf_node.extend(root + i for i in order)
            for node, (lo, hi) in sorted(spans.items()):
                keep = int(ALL_LEAVES) & ~(((1 << (hi - lo)) - 1) << lo)
                rows.append((int(feature[node]), float(threshold[node]), bool(nan_right[node]), keep))
            if not spans:  # a single-leaf tree: one node that never goes right
                rows.append((0, np.inf, False, int(ALL_LEAVES)))
        feature_, threshold_, nan_right_, mask = zip(*rows, strict=True)
        return Masks(
            np.asarray(feature_, dtype=np.intp),
            np.asarray(threshold_, dtype=np.float64),
            np.asarray(nan_right_, dtype=bool),
            np.asarray(mask, dtype=np.uint64),
            np.asarray(starts, dtype=np.intp),
            np.asarray(leaf_base, dtype=np.intp),
            np.asarray(leaf_node, dtype=np.intp),
        )

    def build(self) -> Nodes:
        feature, threshold, nan_right, children = (np.concatenate(c) for c in zip(*self.parts, strict=True))
        roots = np.asarray(self.roots, dtype=np.intp)
        return Nodes(feature, threshold, nan_right, children, roots, self.depth, self._masks())


def _hgb(est: Any) -> tuple[Nodes, np.ndarray]:
    """HistGradientBoosting: nodes + leaf values (one tree per iteration and output)."""
    if getattr(est, "_preprocessor", None) is not None or getattr(est, "is_categorical_", None) is not None:
        raise NotCompilable("HistGradientBoosting with categorical features")
    b = _Builder()
    values = []
    for iteration in est._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise NotCompilable("HistGradientBoosting with categorical splits")
            b.add(
                nodes["feature_idx"],
                nodes["num_threshold"],
                nodes["missing_go_to_left"],
                nodes["left"],
                nodes["right"],
                nodes["is_leaf"],
                int(nodes["depth"].max()),
            )
            values.append(np.asarray(nodes["value"], dtype=np.float64))
    return b.build(), np.concatenate(values)


def _sklearn_trees(trees: list[Any], value) -> tuple[Nodes, np.ndarray]:
    """sklearn.tree.Tree objects; value(tree) gives each node's output row(s)."""
    b = _Builder()
    values = []
    for t in trees:
        if t.n_outputs != 1:
            raise NotCompilable("a multi-output tree model")
        leaf = t.children_left == -1
        b.add(t.feature, t.threshold, t.missing_go_to_left, t.children_left, t.children_right, leaf, int(t.max_depth))
        values.append(value(t))
    return b.build(), np.concatenate(values)


def _nan_ok(est: Any) -> bool:
    """Whether sklearn's trees accept NaN at predict time (else NaN rows go to sklearn)."""
    try:
        return bool(est.estimators_[0]._support_missing_values(np.full((1, est.n_features_in_), np.nan, dtype=np.float32)))
    except Exception:  # noqa: BLE001 - an older tree API: treat NaN as sklearn's business
        return False


@dataclass
class TreeEnsemble:
    """A fitted tree ensemble's raw scores from a float64 feature matrix."""

    est: Any
    family: str  # "hgb" | "gb" | "forest"
    nodes: Nodes
    leaf_values: np.ndarray  # (nodes,) or (nodes, classes) for forest classifiers
    outputs: int  # raw columns: classes for multi-class boosting, else 1 (or classes for forests)
    base: np.ndarray  # (outputs,) starting raw score of boosting
    float32: bool  # sklearn.tree trees compare float32 inputs
    nan_ok: bool

    def leaves(self, X: np.ndarray) -> np.ndarray | None:
        if self.float32:
            narrow = X.astype(np.float32)  # beyond float32's range: inf, which sklearn refuses too
            if np.isinf(narrow).any() or (not self.nan_ok and np.isnan(narrow).any()):
                return None  # sklearn refuses these (float32 overflow, NaN its trees take not)
            X = narrow.astype(np.float64)
        return self.nodes.leaves(X)

    def raw(self, X: np.ndarray) -> np.ndarray | None:
        """Boosting: the raw score (rows, outputs); forests: the averaged leaf rows."""
        leaves = self.leaves(X)
        if leaves is None:
            return None
        n = X.shape[0]
        if self.family == "forest":
            rows = self.leaf_values[leaves]  # (n, trees) or (n, trees, classes)
            total = np.cumsum(rows, axis=1)[:, -1]  # tree by tree from zero, as sklearn adds them
            return total / len(self.nodes.roots)
        values = self.leaf_values.take(leaves)  # (n, iterations * outputs), iteration-major
        if n == 1 and self.outputs == 1:  # one row, one output (online binary/regression): the same sums, 1-D
            terms = np.empty(1 + values.shape[1])
            terms[0] = self.base[0]
            terms[1:] = values[0]
            return np.cumsum(terms)[-1:].reshape(1, 1)
        terms = np.empty((n, self.outputs, 1 + values.shape[1] // self.outputs))
        terms[:, :, 0] = self.base
        terms[:, :, 1:] = values.reshape(n, -1, self.outputs).transpose(0, 2, 1)  # (n, outputs, iterations)
        return np.cumsum(terms, axis=2)[:, :, -1]

    def proba(self, X: np.ndarray) -> np.ndarray | None:
        raw = self.raw(X)
        if raw is None or self.family == "forest":
            return raw
        return self.est._loss.predict_proba(raw.ravel() if self.family == "gb" and self.outputs == 1 else raw)

    def row_proba(self) -> Callable[[np.ndarray], list[float]] | None:
        """`proba` of one row (1-D, float64) as Python floats, for a binary
        HistGradientBoosting classifier; None for any other model (they keep `proba`).

        The same steps as `proba` for one row, without the 2-D shapes and the loss's
        Python wrapper: the leaves, the baseline and leaf values summed in iteration
        order (one cumulative sum), the loss's own link on that sum, and `1 - p` for the
        other class, as HalfBinomialLoss.predict_proba computes them.
        """
        from sklearn._loss.loss import HalfBinomialLoss

        loss: Any = getattr(self.est, "_loss", None)
        masks = self.nodes.masks
        if self.family != "hgb" or self.outputs != 1 or masks is None or type(loss) is not HalfBinomialLoss:
            return None
        inverse = loss.link.inverse
        leaf_values, base, size = self.leaf_values, float(self.base[0]), 1 + len(self.nodes.roots)
        isnan = np.isnan

        def proba(x: np.ndarray) -> list[float]:
            leaves = masks.leaves_of_row(x, bool(isnan(x).any()))
            terms = np.empty(size)
            terms[0] = base
            leaf_values.take(leaves, out=terms[1:])
            p = float(inverse(np.cumsum(terms)[-1:])[0])
            return [1 - p, p]

        return proba

    def predict(self, X: np.ndarray) -> np.ndarray | None:
        """Regressors' prediction (classifiers answer through proba)."""
        raw = self.raw(X)
        if raw is None:
            return None
        if self.family == "hgb":
            return self.est._loss.link.inverse(raw.ravel())
        return raw.ravel()


def tree_ensemble(est: Any) -> TreeEnsemble:
    """The flattened ensemble of a fitted sklearn tree model; NotCompilable for anything else."""
    from sklearn.base import is_classifier
    from sklearn.dummy import DummyClassifier, DummyRegressor
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

    classifier = is_classifier(est)
    if isinstance(est, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        nodes, values = _hgb(est)
        base = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
        return TreeEnsemble(est, "hgb", nodes, values, est.n_trees_per_iteration_, base, False, True)
    if isinstance(est, (GradientBoostingClassifier, GradientBoostingRegressor)):
        if not (isinstance(est.init_, (DummyClassifier, DummyRegressor)) or est.init_ == "zero"):
            raise NotCompilable("GradientBoosting with an init estimator that reads the rows")
        scale = float(est.learning_rate)
        nodes, values = _sklearn_trees([t.tree_ for t in est.estimators_.ravel()], lambda t: scale * t.value[:, 0, 0])
        # The init estimator's raw score does not depend on the row: take it from one.
        init = est._raw_predict_init(np.zeros((1, est.n_features_in_), dtype=np.float32))
        base = np.asarray(init, dtype=np.float64).reshape(-1)
        return TreeEnsemble(est, "gb", nodes, values, est.n_trees_per_iteration_, base, True, False)
    forests = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
    if isinstance(est, forests):
        if est.n_outputs_ != 1:
            raise NotCompilable("a multi-output forest")
        if classifier:
            k = int(est.n_classes_)
            nodes, values = _sklearn_trees([t.tree_ for t in est.estimators_], lambda t: t.value[:, 0, :k])
        else:
            k = 1
            nodes, values = _sklearn_trees([t.tree_ for t in est.estimators_], lambda t: t.value[:, 0, 0])
        return TreeEnsemble(est, "forest", nodes, values, k, np.zeros(k), True, _nan_ok(est))
    raise NotCompilable(f"{type(est).__name__} is not a tree ensemble scored here")
