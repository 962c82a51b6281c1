"""Drift maths against scipy's reference implementations, on samples whose reference side is only a profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance

from fti_pipelines.monitoring import drift
from fti_pipelines.monitoring.profile import build_profile, categorical_profile, numeric_profile

RNG = np.random.default_rng(7)
SAMPLES = {
    "normal shifted": (RNG.normal(0, 1, 50_000), RNG.normal(0.3, 1.2, 20_000)),
    "normal same": (RNG.normal(0, 1, 50_000), RNG.normal(0, 1, 20_000)),
    "poisson (ties)": (RNG.poisson(3, 50_000).astype(float), RNG.poisson(3.5, 20_000).astype(float)),
    "lognormal": (RNG.lognormal(0, 1, 100_000), RNG.lognormal(0.1, 1, 30_000)),
    "window outside training range": (RNG.uniform(0, 1, 20_000), RNG.uniform(0.5, 2, 5_000)),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_ks_from_quantiles_matches_ks_2samp(name):
    train, window = SAMPLES[name]
    ours = drift.ks_numeric(numeric_profile(train), window)
    assert ours == pytest.approx(ks_2samp(train, window).statistic, abs=1.5e-4)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_wasserstein_from_quantiles_matches_scipy(name):
    train, window = SAMPLES[name]
    profile = numeric_profile(train)
    normed, w1 = drift.wasserstein_numeric(profile, window)
    exact = wasserstein_distance(train, window)
    # Both quantile functions are linear between the 1001 grid points: the far tails (the
    # largest values of a lognormal) cost up to ~0.015 of the normalised score.
    assert w1 == pytest.approx(exact, abs=0.02 * train.std())
    assert normed == pytest.approx(w1 / train.std())


def test_jensen_shannon_matches_scipy():
    p, q = np.array([10, 20, 30, 0, 40.0]), np.array([5, 25, 25, 10, 35.0])
    assert drift.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert drift.jensen_shannon(p, p) == 0.0


def test_psi_known_value_and_floor():
    p, q = np.array([0.5, 0.5]), np.array([0.4, 0.6])
    assert drift.psi(p, q) == pytest.approx(0.1 * np.log(0.6 / 0.5) - 0.1 * np.log(0.4 / 0.5))
    assert np.isfinite(drift.psi(np.array([1.0, 0.0]), np.array([0.5, 0.5])))  # an empty bin stays finite


def test_psi_over_profile_bins_separates_a_shift_from_noise():
    train = RNG.normal(0, 1, 50_000)
    profile = numeric_profile(train)
    same, _, _ = drift.feature_score("psi", profile, RNG.normal(0, 1, 20_000))
    shifted, hist, _ = drift.feature_score("psi", profile, RNG.normal(1, 1, 20_000))
    assert same < 0.01 < 0.2 < shifted
    assert hist.reference[:-1].sum() == 50_000 and hist.labels[-1] == drift.MISSING
    # The training deciles hold a tenth each.
    assert np.allclose(hist.reference[:-1] / 50_000, 0.1, atol=1e-3)


def test_missing_values_count_as_their_own_bucket():
    train = RNG.normal(0, 1, 10_000)
    window = RNG.normal(0, 1, 10_000)
    window[:3000] = np.nan
    score, hist, _ = drift.feature_score("psi", numeric_profile(train), window)
    assert hist.current[-1] == 3000 and hist.reference[-1] == 0
    assert score > 0.2
    assert drift.ks_numeric(numeric_profile(train), window) < 0.05  # KS looks at the values present only


def test_categorical_methods():
    train = pd.Series(RNG.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=20_000))
    profile = categorical_profile(train)
    window = np.array(RNG.choice(["a", "b", "c", "new"], p=[0.2, 0.3, 0.2, 0.3], size=10_000), dtype=object)
    hist = drift.categorical_histogram(profile, *drift.value_counts(window))
    assert hist.labels == ["a", "b", "c", drift.UNSEEN, drift.MISSING]
    assert hist.current[3] == pytest.approx((window == "new").sum())
    p, q = hist.proportions()
    assert drift.feature_score("js", profile, window)[0] == pytest.approx(jensenshannon(p, q, base=2))
    tvd = drift.feature_score("ks", profile, window)[0]
    assert tvd == drift.feature_score("wasserstein", profile, window)[0] == pytest.approx(np.abs(p - q).sum() / 2)
    assert tvd == pytest.approx(0.3, abs=0.02)
    same = np.array(RNG.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=10_000), dtype=object)
    assert drift.feature_score("psi", profile, same)[0] < 0.01


def test_profile_contents():
    frame = pd.DataFrame({"x": [1.0, 2.0, None, 4.0] * 50, "c": ["u", "v", None, "u"] * 50})
    profile = build_profile(
        frame,
        ["x", "c"],
        {"x": "numeric", "c": "categorical"},
        scores=np.linspace(0, 1, 40),
        labels=np.array([0, 1, 0, 0]),
        dataset={"version": 3, "hash": "sha256:abc"},
        split={"train": 200, "test": 40},
    )
    x, c = profile["features"]["x"], profile["features"]["c"]
    assert x["nulls"] == 50 and len(x["quantiles"]) == 1001 and sum(x["histogram"]["counts"]) == 150
    assert c["frequencies"] == {"u": 100, "v": 50} and c["nulls"] == 50
    assert profile["labelRate"] == 0.25 and profile["trainingDataset"] == {"version": 3, "hash": "sha256:abc"}
    assert profile["score"]["count"] == 40
