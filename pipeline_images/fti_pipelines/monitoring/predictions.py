"""Reading a window of the prediction log (written by store/prediction_log.py; docs/monitoring.md).

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
import pyarrow.parquet as pq

from ..store.artifacts import ArtifactStore
from ..store.tenancy import PREDICTIONS

FEATURE_PREFIX = "f."


def revision_parts(inferenceservice: str, model_version: int, feature_view_version: int) -> tuple[str, ...]:
    """Parts of one revision's partition: model_version=<M>/feature_view_version=<F>."""
    return (
        PREDICTIONS,  # the namespace's predictions directory: store/tenancy.py predictions_dir
        inferenceservice,
        f"model_version={int(model_version)}",
        f"feature_view_version={int(feature_view_version)}",
    )


@dataclass(frozen=True)
class Window:
    """The logged rows of one revision in [start, end): the Arrow table of the asked columns."""

    table: pa.Table
    files: int

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def has(self, name: str) -> bool:
        return _column_name(name) in self.table.column_names

    def numeric(self, name: str) -> np.ndarray:
        """A numeric column as float64, missing values as NaN."""
        return self.table.column(_column_name(name)).cast(pa.float64()).to_numpy()

    def counts(self, name: str) -> tuple[dict[str, int], int]:
        """A categorical column's counts per value (as text) and its number of missing values.

        Counted by Arrow, on the dictionary codes when the column was read dictionary-encoded:
        a million strings never become Python objects."""
        column = self.table.column(_column_name(name))
        out: dict[str, int] = {}
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                codes: Any = pc.value_counts(chunk.indices)
                words = chunk.dictionary.to_pylist()
                pairs = [(words[v["values"]], v["counts"]) for v in codes.to_pylist() if v["values"] is not None]
            else:
                counted: Any = pc.value_counts(chunk)
                pairs = [(v["values"], v["counts"]) for v in counted.to_pylist() if v["values"] is not None]
            for value, n in pairs:
                out[str(value)] = out.get(str(value), 0) + int(n)
        return out, column.null_count

    def defaulted(self) -> dict[str, int]:
        """Rows per feature the lookup filled with a default (the `defaulted` list column)."""
        if "defaulted" not in self.table.column_names or self.table.num_rows == 0:
            return {}
        counts: Any = pc.value_counts(pc.list_flatten(self.table.column("defaulted")))
        return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist() if v["values"] is not None}


def _column_name(name: str) -> str:
    return "score" if name == "score" else FEATURE_PREFIX + name


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


def read_window(
    store: ArtifactStore, parts: tuple[str, ...], start: datetime, end: datetime, features: list[str], categorical: list[str]
) -> Window:
    """The window's feature columns (`f.<name>`), `score` and `defaulted`, rows with start <= logged_at < end.

    Categorical columns are read dictionary-encoded (counted without building strings).
    Files whose logged_at range (Parquet statistics) lies inside the window are read
    whole; only the files at its edges are filtered row by row.
    """
    files = window_files(store, parts, start, end)
    if not files:
        return Window(pa.table({}), 0)
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=[FEATURE_PREFIX + c for c in categorical]))
    inside, edge = [], []
    for path in files:
        span = _logged_span(store, path)
        if span is None:
            edge.append(path)
        elif span[0] >= start and span[1] < end:
            inside.append(path)
        elif span[1] >= start and span[0] < end:
            edge.append(path)
    schema = ds.dataset(files[:1], filesystem=store.fs, format=fmt).schema
    present = set(schema.names)
    wanted = [FEATURE_PREFIX + f for f in features if FEATURE_PREFIX + f in present]
    wanted += [c for c in ("score", "defaulted") if c in present]
    when = pc.field("logged_at")
    utc = pa.timestamp("us", "UTC")
    tables = []
    if inside:
        tables.append(ds.dataset(inside, filesystem=store.fs, format=fmt).to_table(columns=wanted))
    if edge:
        window = (when >= pa.scalar(start, utc)) & (when < pa.scalar(end, utc))
        tables.append(ds.dataset(edge, filesystem=store.fs, format=fmt).to_table(columns=wanted, filter=window))
    if not tables:
        return Window(pa.table({}), len(files))
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    return Window(table, len(files))


def _logged_span(store: ArtifactStore, path: str) -> tuple[datetime, datetime] | None:
    """(min, max) of a file's logged_at from its footer; None when the statistics do not say."""
    with store.fs.open(path, "rb") as fh:
        meta = pq.ParquetFile(fh).metadata
        try:
            column = meta.schema.names.index("logged_at")
        except ValueError:
            return None
        lows, highs = [], []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max:
                return None
            lows.append(stats.min)
            highs.append(stats.max)
    if not lows:
        return None
    low, high = min(lows), max(highs)
    if not isinstance(low, datetime) or not isinstance(high, datetime):
        return None
    return (low if low.tzinfo else low.replace(tzinfo=UTC)), (high if high.tzinfo else high.replace(tzinfo=UTC))


__all__ = ["FEATURE_PREFIX", "Window", "read_window", "revision_parts", "window_files"]
