"""The card-fraud example: a seeded generator of card transactions and card profiles.

Everything is derived from `seed`, so the same parameters always give the same rows
(the demo, the tests and the benchmarks rely on it); `n_cards` and `days` scale it up.

The labels carry a real, learnable signal, the way card fraud looks in practice:
a compromised card shows a *burst* of several transactions within a few hours, with
high amounts, mostly in the `online`, `travel` and `electronics` categories. Young
card holders (`age_group` 18-25) are compromised more often, which makes `age_group`
a meaningful sensitive column for the bias gate. A few fraudulent transactions look
ordinary (label noise), so no model scores a perfect 1.0.

`aggregate_transactions` is the feature pipeline's transform: per-card aggregates
over 1 hour, 1 day and 7 days, each computed AS OF the transaction's own event time
(a window ending at that row), so every labelled transaction keeps its label and its
features never look into the future. On an incremental source it reads the 7 days
before the batch from the feature store (its `history` parameter), so the windows do
not depend on how the rows were split into runs: the pattern to copy for any window
feature (docs/pipeline-contract.md, "Transforms that need history").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

AGE_GROUPS = ["18-25", "26-40", "41-60", "60+"]
AGE_SHARE = [0.2, 0.35, 0.3, 0.15]
# Share of cards compromised during the window, per age group (the bias the gate watches).
COMPROMISE_RATE = {"18-25": 0.22, "26-40": 0.12, "41-60": 0.09, "60+": 0.12}
CATEGORIES = ["grocery", "retail", "restaurant", "gas", "online", "travel", "electronics", "health"]
LEGIT_CATEGORY_P = [0.28, 0.18, 0.16, 0.12, 0.12, 0.04, 0.04, 0.06]
FRAUD_CATEGORY_P = [0.03, 0.07, 0.02, 0.03, 0.40, 0.22, 0.20, 0.03]
# Median amount per category (lognormal scale) for ordinary spending.
CATEGORY_MEDIAN = {
    "grocery": 45,
    "retail": 60,
    "restaurant": 35,
    "gas": 50,
    "online": 55,
    "travel": 220,
    "electronics": 180,
    "health": 70,
}
DEFAULT_START = "2026-09-01T00:00:00Z"
FIRST_CC_NUM = 4_000_000_000_000_000
N_MERCHANTS = 800


def _start(start: str | datetime) -> pd.Timestamp:
    ts = pd.Timestamp(start)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def _card_arrays(n_cards: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cc_num, age_group, credit_limit per card: shared by both generators so they agree."""
    rng = np.random.default_rng([seed, 1])
    cc_num = FIRST_CC_NUM + np.arange(n_cards, dtype=np.int64)
    age = rng.choice(np.array(AGE_GROUPS), size=n_cards, p=AGE_SHARE)
    base = np.select([age == "18-25", age == "26-40", age == "41-60"], [1500.0, 4000.0, 6000.0], 5000.0)
    credit_limit = np.round(base * rng.lognormal(0.0, 0.35, size=n_cards), -1)
    return cc_num, age, credit_limit


def card_profiles(n_cards: int = 2000, seed: int = 7, start: str = DEFAULT_START) -> pd.DataFrame:
    """One profile row per card, valid from a time before the transaction window.

    Columns: cc_num (int64), event_time (UTC), age_group, credit_limit (float64).
    """
    _check_positive(n_cards=n_cards)
    cc_num, age, credit_limit = _card_arrays(n_cards, seed)
    rng = np.random.default_rng([seed, 2])
    # Profiles were created 1 to 1000 days before the window starts.
    created = _start(start) - pd.to_timedelta(rng.uniform(1, 1000, size=n_cards), unit="D")
    return pd.DataFrame(
        {
            "cc_num": cc_num,
            "event_time": pd.DatetimeIndex(created).floor("s"),
            "age_group": pd.array(age, dtype="string"),
            "credit_limit": credit_limit,
        }
    )


def transactions(
    n_cards: int = 2000, days: int = 30, seed: int = 7, start: str = DEFAULT_START, tx_per_day: float = 2.0, noise: float = 0.08
) -> pd.DataFrame:
    """Card transactions over `days` from `start`, sorted by event time, with is_fraud labels.

    Columns: tx_id, cc_num, event_time (UTC, unique per card), amount, category, merchant, is_fraud (0/1).
    `noise` is the share of fraudulent transactions that look ordinary.
    """
    _check_positive(n_cards=n_cards, days=days, tx_per_day=tx_per_day)
    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise!r}")
    rng = np.random.default_rng([seed, 3])
    cc_num, age, _ = _card_arrays(n_cards, seed)
    window = days * 86400.0

    # Ordinary spending: a per-card activity level, uniform times, category-dependent amounts.
    activity = rng.gamma(2.0, 0.5, size=n_cards)
    counts = rng.poisson(tx_per_day * days * activity)
    card = np.repeat(np.arange(n_cards), counts)
    n_legit = card.size
    legit_cat = rng.choice(len(CATEGORIES), size=n_legit, p=LEGIT_CATEGORY_P)
    medians = np.array([CATEGORY_MEDIAN[c] for c in CATEGORIES])
    legit = {
        "card": card,
        "t": rng.uniform(0, window, size=n_legit),
        "amount": medians[legit_cat] * rng.lognormal(0.0, 0.6, size=n_legit),
        "cat": legit_cat,
        "fraud": np.zeros(n_legit, dtype=np.int64),
    }

    # Fraud: compromised cards get a burst of 2-9 transactions within a few hours.
    rates = np.array([COMPROMISE_RATE[a] for a in age])
    compromised = np.flatnonzero(rng.random(n_cards) < rates)
    burst = 2 + rng.poisson(3, size=compromised.size).clip(max=7)
    f_card = np.repeat(compromised, burst)
    n_fraud = f_card.size
    burst_start = np.repeat(rng.uniform(0, window - 6 * 3600, size=compromised.size), burst)
    ordinary = rng.random(n_fraud) < noise  # fraud that looks like normal spending
    f_cat = np.where(
        ordinary,
        rng.choice(len(CATEGORIES), size=n_fraud, p=LEGIT_CATEGORY_P),
        rng.choice(len(CATEGORIES), size=n_fraud, p=FRAUD_CATEGORY_P),
    )
    f_amount = np.where(
        ordinary,
        medians[f_cat] * rng.lognormal(0.0, 0.6, size=n_fraud),
        rng.uniform(150, 1500, size=n_fraud) * rng.lognormal(0.0, 0.3, size=n_fraud),
    )
    fraud = {
        "card": f_card,
        "t": burst_start + rng.uniform(0, 4 * 3600, size=n_fraud),
        "amount": f_amount,
        "cat": f_cat,
        "fraud": np.ones(n_fraud, dtype=np.int64),
    }

    parts = {k: np.concatenate([legit[k], fraud[k]]) for k in legit}
    # Whole seconds, unique per card: a (cc_num, event_time) pair identifies a transaction.
    seconds = np.floor(parts["t"]).astype(np.int64)
    order = np.lexsort((seconds, parts["card"]))
    card_sorted, sec_sorted = parts["card"][order], seconds[order]
    dup_rank = pd.Series(sec_sorted).groupby([card_sorted, sec_sorted]).cumcount().to_numpy()
    seconds[order] = sec_sorted + dup_rank  # collisions move on by one second each
    merchant = rng.integers(0, N_MERCHANTS, size=seconds.size)

    df = pd.DataFrame(
        {
            "cc_num": cc_num[parts["card"]],
            "event_time": _start(start) + pd.to_timedelta(seconds, unit="s"),
            "amount": np.round(parts["amount"], 2),
            "category": pd.array(np.array(CATEGORIES)[parts["cat"]], dtype="string"),
            "merchant": pd.array(np.char.add("m_", merchant.astype(str)), dtype="string"),
            "is_fraud": parts["fraud"],
        }
    )
    df = df.sort_values(["event_time", "cc_num"], kind="stable", ignore_index=True)
    df.insert(0, "tx_id", np.arange(len(df), dtype=np.int64))
    return df


# The windows, longest last: an incremental run reads this much history before its first row.
WINDOWS = {"1h": "1 HOUR", "1d": "1 DAY", "7d": "7 DAYS"}
LONGEST_WINDOW = pd.Timedelta(days=7)
_HISTORY_COLUMNS = ["cc_num", "event_time", "amount"]


def aggregate_transactions(df: pd.DataFrame, history: Any = None) -> pd.DataFrame:
    """Per-card window aggregates as of each transaction (the window ends at that row).

    Adds amount_sum_1h, tx_count_1h, amount_sum_1d, tx_count_1d, amount_avg_7d,
    amount_max_7d and tx_count_7d; keeps every input row and column (the label too).

    The pattern for window features over an incremental source (docs/pipeline-contract.md,
    "Transforms that need history"): the feature pipeline passes `history`
    (fti_pipelines.feature.history.FeatureHistory), the rows this feature-group version
    already holds. The windows are computed over those of the batch's cards from the
    longest window before the batch's first row on, plus the batch, and only the batch's
    rows are returned, so a month ingested in one run or in 30 daily runs gets the same
    features. A stored row the batch sends again is taken from the batch (ingestion keeps
    one row per card and event time). Without `history` (a direct call, a `full` run's
    first batch) the batch is its own history.

    Sums are added up in whole cents (amounts have two decimals), so a window's sum, and
    so its average, is exact whichever rows shared a run. Stored rows are not revised: a
    late transaction counts in the windows of the rows ingested with or after it.
    """
    missing = [c for c in _HISTORY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"aggregate_transactions needs columns {', '.join(missing)}")
    past = pd.DataFrame(columns=_HISTORY_COLUMNS)
    if history is not None and len(df):
        past = history.read(since=df["event_time"].min() - LONGEST_WINDOW, columns=_HISTORY_COLUMNS)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("tx", df.assign(__fti_row=np.arange(len(df), dtype=np.int64)))
        con.register("past", past.astype({"cc_num": "int64", "amount": "float64"}).astype({"event_time": df["event_time"].dtype}))
        aggregates = ",\n".join(
            f"sum(cents) OVER w{w} AS amount_sum_{w}, count(*) OVER w{w} AS tx_count_{w}" for w in ("1h", "1d")
        )
        windows = ",\n".join(
            f"w{w} AS (PARTITION BY cc_num ORDER BY event_time RANGE BETWEEN INTERVAL {span} PRECEDING AND CURRENT ROW)"
            for w, span in WINDOWS.items()
        )
        out = con.execute(f"""
            WITH rows AS (
                SELECT cc_num, event_time, CAST(round(amount * 100) AS BIGINT) AS cents, __fti_row FROM tx
                UNION ALL
                -- the stored rows of the batch's cards that the batch does not send again
                SELECT p.cc_num, p.event_time, CAST(round(p.amount * 100) AS BIGINT), NULL FROM past p
                WHERE p.cc_num IN (SELECT cc_num FROM tx)
                  AND NOT EXISTS (SELECT 1 FROM tx WHERE tx.cc_num = p.cc_num AND tx.event_time = p.event_time)
            ),
            windowed AS (
                SELECT __fti_row, {aggregates},
                       sum(cents) OVER w7d AS cents_sum_7d,
                       max(cents) OVER w7d AS cents_max_7d,
                       count(*)   OVER w7d AS tx_count_7d
                FROM rows
                WINDOW {windows}
            )
            SELECT tx.* EXCLUDE (__fti_row),
                   w.amount_sum_1h / 100 AS amount_sum_1h, w.tx_count_1h,
                   w.amount_sum_1d / 100 AS amount_sum_1d, w.tx_count_1d,
                   w.cents_sum_7d / w.tx_count_7d / 100 AS amount_avg_7d,
                   w.cents_max_7d / 100 AS amount_max_7d, w.tx_count_7d
            FROM tx JOIN windowed w ON w.__fti_row = tx.__fti_row
            ORDER BY tx.event_time, tx.cc_num
        """).df()
    finally:
        con.close()
    for col in ("amount_sum_1h", "amount_sum_1d", "amount_avg_7d", "amount_max_7d"):
        out[col] = out[col].astype("float64").round(2)
    for col in ("tx_count_1h", "tx_count_1d", "tx_count_7d"):
        out[col] = out[col].astype("int64")
    for col in ("category", "merchant"):
        if col in out.columns:
            out[col] = out[col].astype("string")
    return out


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value or value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


__all__ = ["AGE_GROUPS", "CATEGORIES", "LONGEST_WINDOW", "WINDOWS", "aggregate_transactions", "card_profiles", "transactions"]
