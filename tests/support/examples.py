"""The fraud example's manifests on a small generated data set, for tests that run its pipelines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud"
N_CARDS, DAYS = 600, 20


def shrink(doc: dict) -> dict:
    """The same manifest with a smaller generated data set (the generators' own parameters)."""
    gen = ((doc.get("spec") or {}).get("source") or {}).get("generator")
    if gen:
        gen["params"]["n_cards"] = N_CARDS
        if "days" in gen["params"]:
            gen["params"]["days"] = DAYS
    return doc


def score_requests(out: Path) -> None:
    """The batch service's input for the small data set: entities to score, written to `out`."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fti_pipelines.examples",
            "fraud-score-requests",
            "--n-cards",
            str(N_CARDS),
            "--days",
            str(DAYS),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def example(name: str, namespace: str | None = None, **annotations: str) -> dict:
    doc = shrink(yaml.safe_load((EXAMPLE / name).read_text()))
    if namespace:
        doc["metadata"]["namespace"] = namespace
    if annotations:
        doc["metadata"].setdefault("annotations", {}).update(annotations)
    return doc
