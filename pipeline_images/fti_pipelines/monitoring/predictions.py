"""Reading a window of the prediction log (the layout is docs/monitoring.md's).

    <ns store>/predictions/<inferenceservice>/model_version=<M>/feature_view_version=<F>/
        date=<YYYY-MM-DD>/<HHMMSS>-<run or pod>-<uuid8>.parquet

A revision's rows are one model_version/feature_view_version directory; the window is
pruned twice before anything is read: by the date= directories it overlaps, then by the
`logged_at` filter pyarrow pushes into the Parquet row-group statistics. Only the asked
columns are read, column by column into numpy (no pandas frame of the whole window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ..store.artifacts import ArtifactStore

PREDICTIONS = "predictions"
FEATURE_PREFIX = "f."


def predictions_dir(store: ArtifactStore, inferenceservice: str) -> tuple[str, ...]:
    """Parts (under the namespace store) of one InferenceService's prediction log."""
    return (PREDICTIONS, inferenceservice)


def revision_parts(store: ArtifactStore, inferenceservice: str, model_version: int, feature_view_version: int) -> tuple[str, ...]:
    return (
        *predictions_dir(store, inferenceservice),
        f"model_version={int(model_version)}",
        f"feature_view_version={int(feature_view_version)}",
    )


@dataclass(frozen=True)
class Window:
    """The logged rows of one revision in [start, end), by column."""

    rows: int
    columns: dict[str, np.ndarray]
    defaulted: dict[str, int]  # feature -> rows where the lookup filled it with a default
    files: int


def window_files(store: ArtifactStore, parts: tuple[str, ...], start: datetime, end: datetime) -> list[str]:
    """Parquet files of the date= directories that overlap [start, end)."""
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    files = []
    for name in store.list(*parts):
        if not name.startswith("date="):
            continue
        try:
            day = date.fromisoformat(name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            files += [store.path(*parts, name, f) for f in store.list(*parts, name) if f.endswith(".parquet")]
    return files


def read_window(store: ArtifactStore, parts: tuple[str, ...], start: datetime, end: datetime, features: list[str]) -> Window:
    """The window's feature columns (`f.<name>`, numeric as float64 with NaN, categorical as object) and `score`."""
    files = window_files(store, parts, start, end)
    if not files:
        return Window(0, {}, {}, 0)
    dataset = ds.dataset(files, filesystem=store.fs, format="parquet")
    present = set(dataset.schema.names)
    wanted = [FEATURE_PREFIX + f for f in features if FEATURE_PREFIX + f in present]
    wanted += [c for c in ("score", "defaulted") if c in present]
    when = pc.field("logged_at")
    table = dataset.to_table(
        columns=wanted,
        filter=(when >= pa.scalar(start, pa.timestamp("us", "UTC"))) & (when < pa.scalar(end, pa.timestamp("us", "UTC"))),
    )
    columns: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "defaulted":
            continue
        columns[name.removeprefix(FEATURE_PREFIX) if name != "score" else "score"] = _numpy(table.column(name))
    return Window(table.num_rows, columns, _defaulted(table), len(files))


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        return column.cast(pa.float64()).to_numpy()  # nulls become NaN
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _defaulted(table: pa.Table) -> dict[str, int]:
    if "defaulted" not in table.column_names or table.num_rows == 0:
        return {}
    flat = pc.list_flatten(table.column("defaulted"))
    counts: Any = pc.value_counts(flat)
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist() if v["values"] is not None}


__all__ = ["FEATURE_PREFIX", "Window", "predictions_dir", "read_window", "revision_parts", "window_files"]
