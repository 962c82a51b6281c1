"""Evaluation on the held-out split: metrics, gates, and the bias gate.

A metric that cannot be computed (roc_auc on a test split with one class) is
recorded as None and fails any gate on it, with the reason said. The bias gate
computes its metric per group of the sensitive column. A group's size for the
gate is the metric's support — the rows its denominator counts (positives for
recall, predicted positives for precision, negatives for the false positive rate,
all rows for accuracy and selection rate): a recall over three positives says
nothing. Groups whose support is below `minGroupSize` are reported but not compared. The version is Rejected when the largest
gap between compared groups exceeds `maxGap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from fti_operator.api.training_pipeline import BiasGate, EvaluationSpec


@dataclass
class Evaluation:
    metrics: dict[str, float | None]
    gates: list[dict[str, Any]]
    bias: dict[str, Any] | None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "Rejected" if self.reasons else "Validated"


def _finite(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def compute_metric(name: str, y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> float | None:
    both = len(np.unique(y)) == 2
    if name == "roc_auc":
        return _finite(skm.roc_auc_score(y, score)) if both else None
    if name == "average_precision":
        return _finite(skm.average_precision_score(y, score)) if y.sum() > 0 else None
    if name == "log_loss":
        return _finite(skm.log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1]))
    if name == "brier_score":
        return _finite(skm.brier_score_loss(y, score, pos_label=1))
    return group_metric(name, y, pred)


def support(name: str, y: np.ndarray, pred: np.ndarray) -> int:
    """How many rows the metric's denominator counts (what makes a group's value meaningful)."""
    if name == "recall":
        return int((y == 1).sum())
    if name == "precision":
        return int((pred == 1).sum())
    if name == "false_positive_rate":
        return int((y == 0).sum())
    if name == "f1":
        return int(((y == 1) | (pred == 1)).sum())
    return len(y)


def group_metric(name: str, y: np.ndarray, pred: np.ndarray) -> float | None:
    """Label metrics (also usable per group); None where undefined (no positives, say)."""
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 6) if b else None

    if name == "recall":
        return ratio(tp, tp + fn)
    if name == "precision":
        return ratio(tp, tp + fp)
    if name == "f1":
        return ratio(2 * tp, 2 * tp + fp + fn)
    if name == "accuracy":
        return ratio(tp + tn, len(y))
    if name == "false_positive_rate":
        return ratio(fp, fp + tn)
    if name == "selection_rate":
        return ratio(tp + fp, len(y))
    raise ValueError(f"unknown metric {name!r}")


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def evaluate(spec: EvaluationSpec, y: np.ndarray, score: np.ndarray, sensitive: pd.Series | None = None) -> Evaluation:
    """Metrics, gates and the bias gate of one model on the test split."""
    y = np.asarray(y).astype(int)
    pred = (np.asarray(score) >= spec.threshold).astype(int)
    names = list(dict.fromkeys([*spec.metrics, *(g.metric for g in spec.gates)]))
    values = {n: compute_metric(n, y, score, pred) for n in names}
    ev = Evaluation(metrics={n: values[n] for n in spec.metrics}, gates=[], bias=None)
    if len(np.unique(y)) < 2:
        ev.notes.append(f"the test split has only class {int(y[0]) if len(y) else '-'}; ranking metrics are undefined")
    for gate in spec.gates:
        value = values[gate.metric]
        passed = value is not None and (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
        ev.gates.append({"metric": gate.metric, "min": gate.min, "max": gate.max, "value": value, "passed": passed})
        if not passed:
            bound = f"min {gate.min}" if gate.min is not None and (value is None or value < gate.min) else f"max {gate.max}"
            ev.reasons.append(f"gate {gate.metric}: {_fmt(value)} violates {bound}")
    if spec.bias is not None:
        if sensitive is None:
            raise ValueError("bias gate needs the sensitive column")
        ev.bias = bias_gate(spec.bias, y, pred, sensitive)
        if not ev.bias["passed"]:
            ev.reasons.append(
                f"bias gate {spec.bias.metric} across {spec.bias.sensitive_column}: gap {ev.bias['gap']:.4f} "
                f"exceeds maxGap {spec.bias.max_gap} ({ev.bias['worst']} vs {ev.bias['best']})"
            )
    return ev


def bias_gate(gate: BiasGate, y: np.ndarray, pred: np.ndarray, sensitive: pd.Series) -> dict[str, Any]:
    groups_col = sensitive.astype(object).where(sensitive.notna(), "null").astype(str).to_numpy()
    groups: dict[str, float | None] = {}
    sizes: dict[str, int] = {}
    supports: dict[str, int] = {}
    compared: dict[str, float] = {}
    for g in sorted(set(groups_col)):
        mask = groups_col == g
        value = group_metric(gate.metric, y[mask], pred[mask])
        groups[g], sizes[g] = value, int(mask.sum())
        supports[g] = support(gate.metric, y[mask], pred[mask])
        if value is not None and supports[g] >= gate.min_group_size:
            compared[g] = value
    gap = (max(compared.values()) - min(compared.values())) if len(compared) >= 2 else 0.0
    result = {
        "sensitiveColumn": gate.sensitive_column,
        "metric": gate.metric,
        "groups": groups,
        "sizes": sizes,
        "support": supports,
        "compared": sorted(compared),
        "gap": round(gap, 6),
        "maxGap": gate.max_gap,
        "passed": gap <= gate.max_gap,
    }
    if compared:
        result["best"] = max(compared, key=lambda g: compared[g])
        result["worst"] = min(compared, key=lambda g: compared[g])
    if len(compared) < 2:
        result["note"] = (
            f"fewer than two groups with a {gate.metric} over at least {gate.min_group_size} rows; nothing to compare"
        )
    return result


__all__ = ["Evaluation", "bias_gate", "compute_metric", "evaluate", "group_metric", "support"]
