"""What a transform may read of the feature group it feeds: the rows already stored.

A window aggregate (the sum of a card's amounts over the last 7 days) computed on one
incremental batch alone sees only that batch: its first rows' windows are cut short,
so the features depend on how the source was split into runs. A transform that needs
history declares a `history` parameter,

    def aggregate(df: pd.DataFrame, history: FeatureHistory | None = None) -> pd.DataFrame

and the feature pipeline passes this reader: the committed rows of the same
feature-group version, in the run's namespace (read through `FeatureStore.table`, the
store's public read API), from a given event time on. The transform computes over
those rows plus the batch and returns only the batch's rows: ingestion writes what the
transform returns. `fti_pipelines.examples.fraud.aggregate_transactions` is the worked
example; docs/pipeline-contract.md ("Transforms that need history") the rules.

A `full` ingestion replaces the version's data with the batch, so the stored rows are
not its past: `read` returns nothing then, and the batch must carry its own history.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from ..sources import to_pandas
from ..store.offline import FeatureStore


class FeatureHistory:
    """Read-only view of one feature-group version's committed rows, for a transform."""

    def __init__(self, features: FeatureStore, name: str, version: int, event_time: str, *, full: bool = False):
        self._features = features
        self.name = name
        self.version = version
        self.event_time = event_time
        self._full = full

    def read(self, since: datetime | pd.Timestamp | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Stored rows with event time >= `since` (all when None), `columns` only.

        Empty (with the requested columns) before the version's first write and on a
        `full` run. The current snapshot is read: rows committed by earlier runs.
        """
        snap = None if self._full else self._features.snapshot(self.name, self.version)
        if snap is None:
            return pd.DataFrame(columns=columns or [])
        where = None
        if since is not None:
            recorded = {c["name"]: c["dtype"] for c in snap["schema"]["columns"]}
            dtype = pa.timestamp("ns" if "ns" in recorded[self.event_time] else "us", tz="UTC")
            stamp = pd.Timestamp(since)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            # rounded down to the stored unit: never fewer rows than asked for
            value = stamp.as_unit("ns").value // (1 if dtype.unit == "ns" else 1000)
            where = ds.field(self.event_time) >= pa.scalar(value, pa.int64()).cast(dtype)
        table = self._features.table(self.name, self.version, columns=columns, snap=snap, where=where)
        return to_pandas(table)


def wants_history(func: Callable[..., Any]) -> bool:
    """Whether a transform declares a `history` parameter (then it gets a FeatureHistory)."""
    try:
        return "history" in inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


__all__ = ["FeatureHistory", "wants_history"]
