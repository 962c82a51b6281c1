"""The evaluation report next to the model: PNG plots and a short HTML and Markdown page.

Plots come from scikit-learn's display classes on matplotlib's Agg backend (no
display in a pod): ROC curve, precision-recall curve, confusion matrix at the
decision threshold, and the bias metric per group when a bias gate is set.
"""

from __future__ import annotations

import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: pods have no display

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from .evaluation import Evaluation


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plots(y: np.ndarray, score: np.ndarray, threshold: float, ev: Evaluation) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    both = len(np.unique(y)) == 2
    if both:
        fig, ax = plt.subplots(figsize=(5, 4))
        RocCurveDisplay.from_predictions(y, score, ax=ax, name="model")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.set_title("ROC curve (test split)")
        files["roc_curve.png"] = _png(fig)
        fig, ax = plt.subplots(figsize=(5, 4))
        PrecisionRecallDisplay.from_predictions(y, score, ax=ax, name="model")
        ax.set_title("Precision-recall curve (test split)")
        files["precision_recall_curve.png"] = _png(fig)
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(y, (score >= threshold).astype(int), labels=[0, 1], ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix (threshold {threshold})")
    files["confusion_matrix.png"] = _png(fig)
    if ev.bias:
        groups = ev.bias["groups"]
        names = list(groups)
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(
            names,
            [groups[n] if groups[n] is not None else 0 for n in names],
            color=["tab:blue" if n in ev.bias["compared"] else "lightgrey" for n in names],
        )
        ax.set_ylabel(ev.bias["metric"])
        ax.set_title(f"{ev.bias['metric']} by {ev.bias['sensitiveColumn']} (gap {ev.bias['gap']:.3f}, max {ev.bias['maxGap']})")
        files["bias.png"] = _png(fig)
    return files


def _rows(card: dict[str, Any], ev: Evaluation) -> tuple[list[tuple[str, str]], list[list[str]], list[list[str]]]:
    metrics = [(k, "undefined" if v is None else f"{v:.4f}") for k, v in ev.metrics.items()]
    gates = [
        [
            g["metric"],
            "" if g["min"] is None else str(g["min"]),
            "" if g["max"] is None else str(g["max"]),
            "undefined" if g["value"] is None else f"{g['value']:.4f}",
            "pass" if g["passed"] else "FAIL",
        ]
        for g in ev.gates
    ]
    bias = []
    if ev.bias:
        for g, v in ev.bias["groups"].items():
            bias.append(
                [
                    g,
                    str(ev.bias["sizes"][g]),
                    str(ev.bias["support"][g]),
                    "undefined" if v is None else f"{v:.4f}",
                    "yes" if g in ev.bias["compared"] else "no",
                ]
            )
    return metrics, gates, bias


def markdown(card: dict[str, Any], ev: Evaluation, images: list[str]) -> str:
    metrics, gates, bias = _rows(card, ev)
    fv, ds = card["featureView"], card["trainingDataset"]
    lines = [f"# Model {card['name']} version {card['version']}: {ev.verdict}", ""]
    lines += [
        f"- estimator: `{card.get('estimator')}`",
        f"- feature view: {fv['name']} v{fv['version']} (columns: {', '.join(fv['columns'])})",
        (
            f"- training dataset: #{ds['version']} `{ds['hash']}` ({ds['rows']} rows; train {card['split']['train']}, "
            f"test {card['split']['test']}, split {card['split']['type']})"
        ),
        "",
    ]
    if ev.reasons:
        lines += ["## Why rejected", *[f"- {r}" for r in ev.reasons], ""]
    lines += ["## Metrics (test split)", "| metric | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in metrics], ""]
    if gates:
        lines += [
            "## Gates",
            "| metric | min | max | value | result |",
            "|---|---|---|---|---|",
            *["| " + " | ".join(r) + " |" for r in gates],
            "",
        ]
    if ev.bias:
        lines += [
            (
                f"## Bias: {ev.bias['metric']} by {ev.bias['sensitiveColumn']} — gap {ev.bias['gap']:.4f} "
                f"(max {ev.bias['maxGap']}): {'pass' if ev.bias['passed'] else 'FAIL'}"
            ),
            "| group | rows | support | value | compared |",
            "|---|---|---|---|---|",
            *["| " + " | ".join(r) + " |" for r in bias],
            "",
        ]
    lines += [f"![{n}]({n})" for n in images]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(card: dict[str, Any], ev: Evaluation, images: list[str]) -> str:
    metrics, gates, bias = _rows(card, ev)
    fv, ds = card["featureView"], card["trainingDataset"]
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(card['name'])} v{card['version']}</title>",
        (
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:.3em .6em}.Validated{color:green}.Rejected{color:#b00}</style></head><body>"
        ),
        f"<h1>Model {e(card['name'])} version {card['version']}: <span class='{ev.verdict}'>{ev.verdict}</span></h1>",
        (
            f"<p>Estimator <code>{e(str(card.get('estimator')))}</code>; feature view {e(fv['name'])} v{fv['version']} "
            f"({e(', '.join(fv['columns']))}); training dataset #{ds['version']} <code>{e(ds['hash'])}</code>, "
            f"{ds['rows']} rows (train {card['split']['train']}, test {card['split']['test']}, "
            f"{e(card['split']['type'])} split).</p>"
        ),
    ]
    if ev.reasons:
        parts.append("<h2>Why rejected</h2><ul>" + "".join(f"<li>{e(r)}</li>" for r in ev.reasons) + "</ul>")
    parts.append("<h2>Metrics (test split)</h2>" + _table(["metric", "value"], [list(m) for m in metrics]))
    if gates:
        parts.append("<h2>Gates</h2>" + _table(["metric", "min", "max", "value", "result"], gates))
    if ev.bias:
        parts.append(
            f"<h2>Bias: {e(ev.bias['metric'])} by {e(ev.bias['sensitiveColumn'])}</h2>"
            f"<p>gap {ev.bias['gap']:.4f}, max {ev.bias['maxGap']}: {'pass' if ev.bias['passed'] else 'FAIL'}</p>"
            + _table(["group", "rows", "support", "value", "compared"], bias)
        )
    parts += [f"<figure><img src='{e(n)}' alt='{e(n)}'></figure>" for n in images]
    parts.append("</body></html>")
    return "".join(parts)


def build_report(card: dict[str, Any], ev: Evaluation, y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, bytes]:
    """Every report file by name: PNGs, report.html, report.md."""
    files = plots(np.asarray(y).astype(int), np.asarray(score, dtype=float), threshold, ev)
    images = list(files)
    files["report.html"] = html_page(card, ev, images).encode()
    files["report.md"] = markdown(card, ev, images).encode()
    return files


__all__ = ["build_report"]
