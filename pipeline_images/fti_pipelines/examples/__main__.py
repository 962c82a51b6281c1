"""`python -m fti_pipelines.examples fraud-score-requests --out URI`: entities for batch scoring.

The fraud example's batch InferenceService scores a file of new card transactions
(cc_num, event_time and the request-time features amount and category). This writes
one: the day after the training window, from the same seeded generator, so the cards
exist in the feature store and the result is the same on every machine.
"""

from __future__ import annotations

import argparse
import sys

import fsspec
import pandas as pd

from .fraud import DEFAULT_START, transactions

REQUEST_COLUMNS = ["cc_num", "event_time", "amount", "category"]


def score_requests(n_cards: int, days: int, seed: int, start: str) -> pd.DataFrame:
    day_after = (pd.Timestamp(start) + pd.Timedelta(days=days)).isoformat()
    # A different seed: new transactions of the same cards (cards depend on n_cards only).
    return transactions(n_cards=n_cards, days=1, seed=seed + 1000, start=day_after)[REQUEST_COLUMNS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fti_pipelines.examples")
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("fraud-score-requests", help="write new transactions to score as Parquet")
    req.add_argument("--out", required=True, help="directory URI (file:///... or s3://...) or local path")
    req.add_argument("--n-cards", type=int, default=2000)
    req.add_argument("--days", type=int, default=30, help="length of the training window (requests follow it)")
    req.add_argument("--seed", type=int, default=7)
    req.add_argument("--start", default=DEFAULT_START)
    args = parser.parse_args(argv)
    frame = score_requests(args.n_cards, args.days, args.seed, args.start)
    fs, root = fsspec.core.url_to_fs(args.out)
    fs.makedirs(root, exist_ok=True)
    with fs.open(f"{root.rstrip('/')}/requests.parquet", "wb") as fh:
        frame.to_parquet(fh, index=False)
    print(f"wrote {len(frame)} score requests to {args.out.rstrip('/')}/requests.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
