"""The fraud example's manifests on a small generated data set, for tests that run its pipelines."""

from __future__ import annotations

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


def example(name: str, namespace: str | None = None, **annotations: str) -> dict:
    doc = shrink(yaml.safe_load((EXAMPLE / name).read_text()))
    if namespace:
        doc["metadata"]["namespace"] = namespace
    if annotations:
        doc["metadata"].setdefault("annotations", {}).update(annotations)
    return doc
