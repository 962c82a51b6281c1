"""Metrics, gates, bias gate and report on hand-made predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fti_operator.api.training_pipeline import EvaluationSpec
from fti_pipelines.training.evaluation import evaluate, group_metric, support
from fti_pipelines.training.report import build_report


def spec(**kw) -> EvaluationSpec:
    return EvaluationSpec.model_validate({"metrics": ["roc_auc", "f1", "log_loss"], **kw})


Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
GOOD = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])


def test_perfect_ranking_passes_min_and_max_gates():
    ev = evaluate(spec(gates=[{"metric": "roc_auc", "min": 0.9}, {"metric": "log_loss", "max": 1.0}]), Y, GOOD)
    assert ev.metrics["roc_auc"] == 1.0 and ev.metrics["f1"] == 1.0
    assert ev.verdict == "Validated" and all(g["passed"] for g in ev.gates)


def test_failing_gates_give_reasons_naming_metric_value_and_bound():
    bad = GOOD[::-1]
    ev = evaluate(spec(gates=[{"metric": "roc_auc", "min": 0.8}, {"metric": "log_loss", "max": 0.1}]), Y, bad)
    assert ev.verdict == "Rejected"
    assert ev.reasons[0] == "gate roc_auc: 0.0000 violates min 0.8"
    assert ev.reasons[1].startswith("gate log_loss:") and ev.reasons[1].endswith("violates max 0.1")


def test_gate_metric_not_in_metrics_is_still_computed_for_the_gate():
    ev = evaluate(spec(gates=[{"metric": "accuracy", "min": 0.5}]), Y, GOOD)
    assert ev.gates[0]["value"] == 1.0 and "accuracy" not in ev.metrics


def test_single_class_test_split_makes_roc_auc_undefined_and_fails_its_gate():
    y = np.zeros(8, dtype=int)
    ev = evaluate(spec(gates=[{"metric": "roc_auc", "min": 0.5}]), y, GOOD)
    assert ev.metrics["roc_auc"] is None
    assert ev.verdict == "Rejected" and "undefined" in ev.reasons[0]
    assert any("only class 0" in n for n in ev.notes)


def test_group_metrics_and_their_support():
    y = np.array([1, 1, 0, 0])
    p = np.array([1, 0, 1, 0])
    assert group_metric("recall", y, p) == 0.5 and support("recall", y, p) == 2
    assert group_metric("precision", y, p) == 0.5 and support("precision", y, p) == 2
    assert group_metric("false_positive_rate", y, p) == 0.5 and support("false_positive_rate", y, p) == 2
    assert group_metric("selection_rate", y, p) == 0.5 and support("selection_rate", y, p) == 4
    assert group_metric("recall", np.array([0, 0]), np.array([0, 1])) is None


def test_bias_gate_rejects_a_gap_over_max_gap_and_ignores_small_groups():
    # group a: recall 1.0 over 4 positives; group b: recall 0.25 over 4 positives; group c: 1 positive.
    y = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    score = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9])
    groups = pd.Series(["a"] * 4 + ["b"] * 4 + ["c", None])
    gate = {"sensitiveColumn": "age", "metric": "recall", "maxGap": 0.5, "minGroupSize": 2}
    ev = evaluate(spec(bias=gate), y, score, groups)
    assert ev.bias["groups"]["a"] == 1.0 and ev.bias["groups"]["b"] == 0.25
    assert ev.bias["compared"] == ["a", "b"]  # c has one positive, null none: reported, not compared
    assert "c" in ev.bias["groups"] and "null" in ev.bias["groups"]
    assert ev.bias["gap"] == 0.75 and not ev.bias["passed"] and ev.verdict == "Rejected"
    assert "gap 0.7500 exceeds maxGap 0.5 (b vs a)" in ev.reasons[0]
    ev = evaluate(spec(bias={**gate, "maxGap": 0.8}), y, score, groups)
    assert ev.bias["passed"] and ev.verdict == "Validated"


def test_report_has_the_plots_and_pages():
    ev = evaluate(
        spec(
            gates=[{"metric": "roc_auc", "min": 0.9}],
            bias={"sensitiveColumn": "g", "metric": "accuracy", "maxGap": 0.5, "minGroupSize": 1},
        ),
        Y,
        GOOD,
        pd.Series(["x", "y"] * 4),
    )
    card = {
        "name": "m",
        "version": 3,
        "estimator": "e",
        "featureView": {"name": "v", "version": 1, "columns": ["a", "b"]},
        "trainingDataset": {"version": 2, "hash": "sha256:abc", "rows": 8},
        "split": {"type": "time", "train": 0, "test": 8},
    }
    files = build_report(card, ev, Y, GOOD, 0.5)
    assert {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png", "bias.png", "report.html", "report.md"} == set(
        files
    )
    assert all(files[n][:4] == b"\x89PNG" for n in files if n.endswith(".png"))
    page = files["report.html"].decode()
    assert "Validated" in page and "sha256:abc" in page and "<img src='roc_curve.png'" in page
    assert "| roc_auc | 1.0000 |" in files["report.md"].decode()
