"""Drift scores of one feature: the training profile against a window of logged values.

The reference side is never the training rows themselves but their profile
(profile.py): quantiles, equal-mass histogram bins and category frequencies. Each
method turns the profile and the current values into one number; docs/monitoring.md
explains what each means and which thresholds are usual.

Numeric features:
  psi          population stability index over the profile's bins (plus a missing bucket);
               an effect size: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large shift
  js           Jensen-Shannon distance (base 2, 0..1) over the same bins
  wasserstein  1-D earth mover's distance between the quantile functions, divided by the
               training standard deviation (so one threshold fits every unit)
  ks           Kolmogorov-Smirnov statistic between the training CDF (interpolated from
               its quantiles) and the window's empirical CDF
Categorical features: psi and js over the categories (unseen ones in one bucket); for ks
and wasserstein the total variation distance, which is what both become on unordered
categories (the largest difference in probability over any set of categories; the earth
mover's distance under the 0/1 metric).

Bins with no rows on one side get a small floor (EPSILON) so PSI stays finite.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("psi", "js", "wasserstein", "ks")
EPSILON = 1e-4
MISSING = "(missing)"
UNSEEN = "(unseen)"


@dataclass(frozen=True)
class Histogram:
    """Reference and current counts over the same buckets, with the buckets' labels."""

    labels: list[str]
    reference: np.ndarray
    current: np.ndarray

    def proportions(self) -> tuple[np.ndarray, np.ndarray]:
        return _share(self.reference), _share(self.current)


def _share(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


# -- the distances over two discrete distributions ---------------------------------------
def psi(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index sum((q - p) * ln(q / p)), both floored at EPSILON."""
    p = np.maximum(np.asarray(p, dtype=float), EPSILON)
    q = np.maximum(np.asarray(q, dtype=float), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (scipy.spatial.distance.jensenshannon(p, q, base=2))."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.abs(_share(np.asarray(p, float)) - _share(np.asarray(q, float))).sum() / 2)


# -- numeric features ---------------------------------------------------------------------
def numeric_histogram(profile: dict[str, Any], values: np.ndarray) -> Histogram:
    """The window's counts in the profile's bins, plus the missing bucket.

    A value lands in bin i when edges[i-1] <= value < edges[i] (edges are the interior cut
    points; the outer bins are open), the same rule the profile was counted with.
    """
    edges = np.asarray(profile["histogram"]["edges"], dtype=float)
    missing = int(np.count_nonzero(np.isnan(values)))
    # One vectorised comparison per edge (NaN compares false) beats a binary search per value
    # when there are only a few edges: a million values take milliseconds.
    below = np.array([np.count_nonzero(values < e) for e in edges] + [len(values) - missing], dtype=float)
    counts = np.diff(below, prepend=0.0)
    reference = np.append(np.asarray(profile["histogram"]["counts"], dtype=float), profile["nulls"])
    current = np.append(counts, missing)
    labels = [*_bin_labels(edges), MISSING]
    return Histogram(labels, reference, current)


def _bin_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["all"]
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(bounds)]


def _knots(profile: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct quantile values with the lowest and highest probability each holds.

    A value many training rows share fills a run of equal quantiles: the CDF jumps there
    from the run's lowest probability to its highest.
    """
    qs = np.asarray(profile["quantiles"], dtype=float)
    probs = np.linspace(0.0, 1.0, len(qs))
    uniq, first = np.unique(qs, return_index=True)
    last = np.append(first[1:] - 1, len(qs) - 1)
    low, high = probs[first], probs[last]
    atoms = profile.get("atoms") or {}
    if atoms.get("values"):  # the exact jump where the profile recorded one
        at = np.searchsorted(uniq, np.asarray(atoms["values"], dtype=float))
        low[at], high[at] = atoms["below"], atoms["upTo"]
    return uniq, low, high


def reference_cdf(profile: dict[str, Any], x: np.ndarray, left: bool = False) -> np.ndarray:
    """The training CDF at `x` (or just below `x` with `left`), linear between the stored quantiles."""
    uniq, low, high = _knots(profile)
    x = np.asarray(x, dtype=float)
    idx = np.searchsorted(uniq, x, side="left" if left else "right") - 1  # the last knot at or below x
    inner = np.clip(idx, 0, max(len(uniq) - 2, 0))
    if len(uniq) > 1:
        span = uniq[inner + 1] - uniq[inner]
        frac = np.clip((x - uniq[inner]) / span, 0.0, 1.0)
        between = high[inner] + (low[inner + 1] - high[inner]) * frac
    else:
        between = np.ones_like(x)
    return np.where(idx < 0, 0.0, np.where(idx >= len(uniq) - 1, 1.0, between))


def ks_numeric(profile: dict[str, Any], values: np.ndarray) -> float:
    """sup |F_train - F_window|.

    Between two breakpoints the training CDF is linear and the window's is constant, so
    the supremum is at a breakpoint: a window value or a stored quantile, each checked on
    both sides of its step.
    """
    x = np.sort(values[~np.isnan(values)])
    n = len(x)
    if n == 0:
        return 0.0
    points = np.unique(np.concatenate([x, _knots(profile)[0]]))
    after = np.searchsorted(x, points, side="right") / n
    before = np.searchsorted(x, points, side="left") / n
    return float(
        max(
            np.max(np.abs(after - reference_cdf(profile, points))),
            np.max(np.abs(before - reference_cdf(profile, points, left=True))),
        )
    )


def wasserstein_numeric(profile: dict[str, Any], values: np.ndarray) -> tuple[float, float]:
    """(W1 / training std, W1): the area between the two quantile functions on the profile's probability grid.

    Both quantile functions are linear between the grid's points, so the far tails are
    approximated: the normalised score stays within ~0.02 of the exact one (heavy tails).
    """
    x = values[~np.isnan(values)]
    if len(x) == 0:
        return 0.0, 0.0
    ref_q = np.asarray(profile["quantiles"], dtype=float)
    probs = np.linspace(0.0, 1.0, len(ref_q))
    gap = np.abs(ref_q - np.quantile(x, probs))
    w1 = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(probs)))
    std = float(profile.get("std") or 0.0)
    return (w1 / std if std > 0 else w1), w1


def numeric_score(method: str, profile: dict[str, Any], values: np.ndarray) -> tuple[float, Histogram, dict[str, Any]]:
    """(score, histogram for the report, extra numbers) of one numeric feature."""
    hist = numeric_histogram(profile, values)
    extra: dict[str, Any] = {}
    if method == "psi":
        score = psi(*hist.proportions())
    elif method == "js":
        score = jensen_shannon(hist.reference, hist.current)
    elif method == "ks":
        score = ks_numeric(profile, values)
    elif method == "wasserstein":
        score, extra["wasserstein"] = wasserstein_numeric(profile, values)
    else:
        raise ValueError(f"unknown drift method {method!r}; one of {', '.join(METHODS)}")
    return score, hist, extra


# -- categorical features -----------------------------------------------------------------
def categorical_histogram(profile: dict[str, Any], counts: dict[str, int], missing: int) -> Histogram:
    """Counts per training category, one bucket for categories training never saw, one for missing.

    `counts` are the window's rows per value, `missing` its rows without one.
    """
    known = list(profile["frequencies"])
    seen = dict(counts)
    current = [float(seen.pop(c, 0)) for c in known]
    current += [float(sum(seen.values())), float(missing)]
    reference = [float(profile["frequencies"][c]) for c in known] + [float(profile.get("otherCount", 0)), float(profile["nulls"])]
    return Histogram([*known, UNSEEN, MISSING], np.asarray(reference), np.asarray(current))


def value_counts(values: np.ndarray) -> tuple[dict[str, int], int]:
    """(counts per value as text, missing) of an object array: what Window.counts gives from Arrow."""
    present = np.asarray([v for v in values if v is not None], dtype=object).astype(str)
    uniq, n = np.unique(present, return_counts=True)
    return dict(zip(uniq.tolist(), n.tolist(), strict=True)), len(values) - len(present)


def categorical_score(
    method: str, profile: dict[str, Any], counts: dict[str, int], missing: int
) -> tuple[float, Histogram, dict[str, Any]]:
    hist = categorical_histogram(profile, counts, missing)
    if method == "psi":
        return psi(*hist.proportions()), hist, {}
    if method == "js":
        return jensen_shannon(hist.reference, hist.current), hist, {}
    if method in ("ks", "wasserstein"):
        return total_variation(hist.reference, hist.current), hist, {"categorical": "total variation distance"}
    raise ValueError(f"unknown drift method {method!r}; one of {', '.join(METHODS)}")


def feature_score(method: str, profile: dict[str, Any], values: np.ndarray) -> tuple[float, Histogram, dict[str, Any]]:
    """Score one feature by its profile's kind: numeric values as float64 with NaN for missing,
    categorical ones as an object array with None for missing."""
    if profile["kind"] == "numeric":
        return numeric_score(method, profile, values)
    return categorical_score(method, profile, *value_counts(values))


__all__ = [
    "METHODS",
    "Histogram",
    "categorical_score",
    "feature_score",
    "jensen_shannon",
    "ks_numeric",
    "psi",
    "reference_cdf",
    "total_variation",
    "value_counts",
    "wasserstein_numeric",
]
