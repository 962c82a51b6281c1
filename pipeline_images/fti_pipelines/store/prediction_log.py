"""The prediction log's format: what the model server and batch inference write, and monitoring reads.

One Parquet file per flush (online) or per scored chunk (batch), under the InferenceService's
predictions directory (`predictions_dir`, store/tenancy.py), partitioned so a reader can pick a
revision and a time window from the paths alone (docs/monitoring.md, docs/store-layout.md):

    <predictions dir>/model_version=<M>/feature_view_version=<F>/date=<YYYY-MM-DD>/<HHMMSS>-<writer>-<uuid8>.parquet

The columns are fixed except for one `f.<feature>` per model input: float64 for numeric (and
boolean) inputs, string for the rest. A file is written whole or not at all
(`ArtifactStore.write_bytes_atomic`), so a reader never sees a partial one, and a file is never
rewritten: the uuid in its name keeps two writers of the same second apart.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .artifacts import ArtifactStore

SOURCE_ONLINE = "online"
SOURCE_BATCH = "batch"
FEATURE_PREFIX = "f."
TIMESTAMP = pa.timestamp("us", tz="UTC")
# (name, numeric): the model inputs in the model's column order.
Features = Sequence[tuple[str, bool]]


def log_schema(features: Features) -> pa.Schema:
    """The log's Arrow schema for a model with these inputs."""
    return pa.schema(
        [
            pa.field("request_id", pa.string()),
            pa.field("logged_at", TIMESTAMP),
            pa.field("model_version", pa.int64()),
            pa.field("feature_view_version", pa.int64()),
            pa.field("source", pa.string()),
            pa.field("entity", pa.string()),
            *(pa.field(FEATURE_PREFIX + name, pa.float64() if numeric else pa.string()) for name, numeric in features),
            pa.field("defaulted", pa.list_(pa.string())),
            pa.field("score", pa.float64()),
            pa.field("latency_ms", pa.float64()),
        ]
    )


def feature_array(values: Sequence[Any] | pa.Array, numeric: bool) -> pa.Array:
    """One `f.<feature>` column: float64 (NaN is null: a missing value) or string."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if numeric:
            out = values.cast(pa.float64())
            return pa.array(out.to_numpy(zero_copy_only=False), pa.float64(), from_pandas=True)
        return (
            values.cast(pa.string()) if not pa.types.is_dictionary(values.type) else values.dictionary_decode().cast(pa.string())
        )
    if numeric:
        try:
            return pa.array(values, pa.float64(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array([_number(v) for v in values], pa.float64(), from_pandas=True)
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def scores_array(values: Sequence[Any]) -> pa.Array:
    """Scores as float64: a probability or a regression value; a non-numeric label is null."""
    return feature_array(values, numeric=True)


def defaulted_lists(mask: np.ndarray, names: Sequence[str]) -> pa.Array:
    """list<string> per row: the names whose column in the (rows x features) boolean mask is set."""
    n = mask.shape[0]
    if mask.size == 0 or not mask.any():
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()))
    rows, cols = np.nonzero(mask)  # row-major: each row's names in feature order
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.asarray(names, dtype=object)[cols], pa.string()))


def null_mask(columns: Sequence[pa.Array]) -> np.ndarray:
    """(rows x columns) True where a column's value is null."""
    if not columns:
        return np.zeros((0, 0), dtype=bool)
    return np.column_stack([c.is_null().to_numpy(zero_copy_only=False) for c in columns])


def log_table(
    features: Features,
    *,
    request_ids: Sequence[str],
    logged_at_us: np.ndarray,
    model_version: int,
    feature_view_version: int,
    source: str,
    entities: Sequence[str],
    columns: Sequence[pa.Array],
    looked_up: Sequence[int],
    scores: Sequence[Any],
    latency_ms: Sequence[float | None] | None = None,
    defaulted: Sequence[Sequence[str]] | None = None,
) -> pa.Table:
    """A log table. `columns` are the `f.` arrays in model order (feature_array); `defaulted` lists
    the features each row had filled with defaults, and a null in a looked-up column counts too."""
    n = len(request_ids)
    names = [name for name, _ in features]
    mask = np.zeros((n, len(names)), dtype=bool)
    if looked_up:
        mask[:, list(looked_up)] = null_mask([columns[p] for p in looked_up])
    if defaulted is not None:
        index = {name: j for j, name in enumerate(names)}
        for i, filled in enumerate(defaulted):
            for name in filled:
                mask[i, index[name]] = True
    return pa.Table.from_arrays(
        [
            pa.array(request_ids, pa.string()),
            pa.array(logged_at_us, pa.int64()).cast(TIMESTAMP),
            pa.array(np.full(n, model_version, dtype=np.int64)),
            pa.array(np.full(n, feature_view_version, dtype=np.int64)),
            pa.array([source] * n, pa.string()),
            pa.array(entities, pa.string()),
            *columns,
            defaulted_lists(mask, names),
            scores_array(scores),
            pa.array(latency_ms, pa.float64()) if latency_ms is not None else pa.nulls(n, pa.float64()),
        ],
        schema=log_schema(features),
    )


def partition(model_version: int, feature_view_version: int, day: date) -> tuple[str, str, str]:
    return (f"model_version={model_version}", f"feature_view_version={feature_view_version}", f"date={day.isoformat()}")


def writer_name(text: str) -> str:
    """A pod or run name safe inside a file name (the middle part of `<HHMMSS>-<writer>-<uuid8>`)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.")[:63] or "writer"


def file_name(at: datetime, writer: str) -> str:
    return f"{at.astimezone(UTC):%H%M%S}-{writer}-{uuid.uuid4().hex[:8]}.parquet"


def encode(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class PredictionLogFiles:
    """Writes log tables of one revision under a predictions directory, one file per date."""

    def __init__(self, uri: str, model_version: int, feature_view_version: int, writer: str):
        self.store = ArtifactStore(uri)
        self.model_version = model_version
        self.feature_view_version = feature_view_version
        self.writer = writer_name(writer)

    def split(self, table: pa.Table) -> list[tuple[tuple[str, ...], pa.Table, datetime]]:
        """(path parts, rows, first row's time) per UTC date of `logged_at` (a flush may span midnight)."""
        micros = table.column("logged_at").cast(pa.int64()).to_numpy()
        days = micros // 86_400_000_000
        out: list[tuple[tuple[str, ...], pa.Table, datetime]] = []
        for day in np.unique(days):
            rows = table.filter(pa.array(days == day)) if len(np.unique(days)) > 1 else table
            first = datetime.fromtimestamp(int(micros[days == day][0]) / 1e6, UTC)
            name = file_name(first, self.writer)
            out.append(((*partition(self.model_version, self.feature_view_version, first.date()), name), rows, first))
        return out

    def write(self, table: pa.Table) -> list[str]:
        """Write `table` now (one atomic file per date); returns the files' URIs."""
        urls = []
        for parts, rows, _ in self.split(table):
            self.store.write_bytes_atomic(*parts, encode(rows))
            urls.append(self.store.url(*parts))
        return urls


def read_log(uri: str) -> pa.Table:
    """Every row under a predictions directory (or any directory below it), for tests and tools.

    Partition directories are not parsed: the revision is in the columns already.
    """
    store = ArtifactStore(uri)
    files = sorted(str(f) for f in store.fs.find(store.root) if str(f).endswith(".parquet") and "/." not in str(f))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f, filesystem=store.fs) for f in files], promote_options="default")
