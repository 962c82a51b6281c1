"""The prediction log of a batch run: the same files as the online server's, with source "batch".

With FTI_PREDICTION_LOG set (docs/monitoring.md), every scored chunk (or a `sampleRate` share of
its rows) becomes one log file in the store's format (store/prediction_log.py). The files are
staged on local disk and published only after the run's output is committed, so a run that
fails, or a retried Job that finds its output committed already, logs nothing twice.
`request_id` is `<run id>:<row number in the run>`, `latency_ms` is null, and `defaulted` names the
looked-up features that had no value (an entity without a feature row, or a stored null).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..serving.config import ServingConfig
from ..serving.plan import LookupPlan
from ..serving.prediction_log import LogSettings, feature_kinds, looked_up_positions
from ..store.prediction_log import SOURCE_BATCH, PredictionLogFiles, feature_array, log_table


class BatchPredictionLog:
    def __init__(self, settings: LogSettings, plan: LookupPlan, config: ServingConfig, run_id: str, seed: int | None = None):
        self.settings = settings
        self.plan = plan
        self.run_id = run_id
        self.files = PredictionLogFiles(settings.uri, config.model_version, config.feature_view_version, run_id)
        self.features = feature_kinds(plan)
        self.looked_up = looked_up_positions(plan)
        self.rng = np.random.default_rng(seed)
        self.rows_seen = 0
        self.rows_logged = 0
        self._dir = tempfile.TemporaryDirectory(prefix="fti-prediction-log-")
        self._staged: list[tuple[tuple[str, ...], str]] = []

    def add(self, chunk: pa.Table, features: Mapping[str, Any], scores: Sequence[Any]) -> None:
        """Stage the log rows of one scored chunk: `features` maps every model input to its column."""
        n = chunk.num_rows
        first = self.rows_seen
        self.rows_seen += n
        keep = np.ones(n, dtype=bool)
        if self.settings.sample_rate < 1.0:
            keep = self.rng.random(n) < self.settings.sample_rate
        if not keep.any():
            return
        key_columns = {k: chunk.column(k).to_pylist() for k in self.plan.entity_keys}
        entities = [
            orjson.dumps(dict(zip(key_columns, values, strict=True)), option=orjson.OPT_SORT_KEYS).decode()
            for values in zip(*key_columns.values(), strict=True)
        ] or ["{}"] * n
        table = log_table(
            self.features,
            request_ids=[f"{self.run_id}:{first + i}" for i in range(n)],
            logged_at_us=np.full(n, int(datetime.now(UTC).timestamp() * 1e6), dtype=np.int64),
            model_version=self.files.model_version,
            feature_view_version=self.files.feature_view_version,
            source=SOURCE_BATCH,
            entities=entities,
            columns=[feature_array(features[name], numeric) for name, numeric in self.features],
            looked_up=self.looked_up,
            scores=list(scores),
        )
        if not keep.all():
            table = table.filter(pa.array(keep))
        for parts, rows, _ in self.files.split(table):
            path = os.path.join(self._dir.name, f"{len(self._staged):06d}.parquet")
            pq.write_table(rows, path, compression="zstd")
            self._staged.append((parts, path))
            self.rows_logged += rows.num_rows

    def publish(self) -> list[str]:
        """Write the staged files to the store (each atomically); call once the run's output is committed."""
        urls = []
        for parts, path in self._staged:
            with open(path, "rb") as fh:
                self.files.store.write_bytes_atomic(*parts, fh.read())
            urls.append(self.files.store.url(*parts))
        self._staged = []
        return urls

    def close(self) -> None:
        self._dir.cleanup()
