"""Prediction logging: every scored row (or a sample) to Parquet in the artifact store.

Configured by `FTI_PREDICTION_LOG` = `{"uri": ..., "sampleRate": 0..1, "flushSeconds": s}`, which
the operator renders from `spec.monitoring.logging` (docs/monitoring.md); absent, nothing here
runs. The format is store/prediction_log.py's.

The request path only decides the sample (once per request: all its rows or none) and appends
one tuple per row to a bounded deque — no lock, no I/O, no encoding. When the deque holds
`queueRows` rows a request's rows are dropped, never waited for, and counted in
`fti_prediction_log_dropped_total{reason="queue_full"}`. A background thread drains the deque
every `flushSeconds`, builds the Arrow table and writes one file; a failed write keeps its
rows for the next flush (up to `queueRows`, the rest counted with reason="write_failed").
`close()` (the server's graceful shutdown, SIGTERM) writes everything still queued.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from fti_operator.api.identity import ENV_PREDICTION_LOG

from ..contract import ENV_ARTIFACT_STORE, PipelineError
from ..store.prediction_log import SOURCE_ONLINE, PredictionLogFiles, feature_array, log_schema, log_table
from ..store.tenancy import predictions_dir
from .metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_ROWS
from .plan import BOOL, NUMBER, LookupPlan
from .request_id import current

log = logging.getLogger("fti_pipelines.serving")

DEFAULT_QUEUE_ROWS = 50_000


@dataclass(frozen=True)
class LogSettings:
    uri: str
    sample_rate: float = 1.0
    flush_seconds: float = 5.0
    queue_rows: int = DEFAULT_QUEUE_ROWS

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str, namespace: str) -> LogSettings | None:
        """None when FTI_PREDICTION_LOG is unset; PipelineError naming the key when it is malformed.

        Without a `uri` the log goes to the InferenceService's predictions directory in the
        artifact store (store/tenancy.py predictions_dir).
        """
        raw = env.get(ENV_PREDICTION_LOG, "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PipelineError("InvalidPredictionLog", f"{ENV_PREDICTION_LOG} is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise PipelineError("InvalidPredictionLog", f"{ENV_PREDICTION_LOG} must be a JSON object")
        uri = value.get("uri") or (
            predictions_dir(env[ENV_ARTIFACT_STORE], namespace, name) if env.get(ENV_ARTIFACT_STORE) else None
        )
        if not isinstance(uri, str) or "://" not in uri:
            raise PipelineError("InvalidPredictionLog", f"{ENV_PREDICTION_LOG}.uri must be a store URI, got {uri!r}")
        rate = _number(value, "sampleRate", 1.0)
        flush = _number(value, "flushSeconds", 5.0)
        rows = _number(value, "queueRows", DEFAULT_QUEUE_ROWS)
        if not 0 <= rate <= 1:
            raise PipelineError("InvalidPredictionLog", f"{ENV_PREDICTION_LOG}.sampleRate must be in [0, 1], got {rate}")
        if flush <= 0 or rows < 1:
            raise PipelineError("InvalidPredictionLog", f"{ENV_PREDICTION_LOG}: flushSeconds and queueRows must be positive")
        return cls(uri, float(rate), float(flush), int(rows))


def _number(value: Mapping[str, Any], key: str, default: float) -> float:
    got = value.get(key, default)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise PipelineError("InvalidPredictionLog", f"{ENV_PREDICTION_LOG}.{key} must be a number, got {got!r}")
    return float(got)


def feature_kinds(plan: LookupPlan) -> list[tuple[str, bool]]:
    """(input, numeric) in model order: numbers and booleans are float64 in the log."""
    return [(c, plan.kinds.get(c) in (NUMBER, BOOL)) for c in plan.columns]


def looked_up_positions(plan: LookupPlan) -> list[int]:
    return sorted(p for g in plan.groups for p in g.positions)


def pod_name(env: Mapping[str, str]) -> str:
    return env.get("HOSTNAME") or socket.gethostname()


# One queued row: request id, time.time(), latency ms, entity keys, feature row, defaulted columns, score.
Row = tuple[str, float, float | None, Mapping[str, Any], Sequence[Any], Sequence[str], Any]


class PredictionLogger:
    """The online prediction log of one served revision (see the module docstring)."""

    def __init__(
        self,
        settings: LogSettings,
        files: PredictionLogFiles,
        features: list[tuple[str, bool]],
        looked_up: list[int],
        labels: Mapping[str, str],
        *,
        rng: Callable[[], float] = random.random,
    ):
        self.settings = settings
        self.files = files
        self.features = features
        self.schema = log_schema(features)
        self.looked_up = looked_up
        self.sample_rate = settings.sample_rate
        self.capacity = settings.queue_rows
        self._rng = rng
        self._queue: deque[Row] = deque()
        self._retry: list[pa.Table] = []
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = PREDICTION_LOG_DROPPED.labels(**labels, reason="queue_full")
        self.write_failed = PREDICTION_LOG_DROPPED.labels(**labels, reason="write_failed")
        self.written = PREDICTION_LOG_ROWS.labels(**labels)

    @classmethod
    def for_revision(
        cls, settings: LogSettings, plan: LookupPlan, config: Any, env: Mapping[str, str] | None = None
    ) -> PredictionLogger:
        files = PredictionLogFiles(settings.uri, config.model_version, config.feature_view_version, pod_name(env or os.environ))
        return cls(settings, files, feature_kinds(plan), looked_up_positions(plan), config.revision_labels)

    # -- request path ----------------------------------------------------------------------
    def record(
        self,
        keys: Sequence[Mapping[str, Any]],
        rows: Sequence[Sequence[Any]],
        defaulted: Sequence[Sequence[str]],
        scores: Sequence[Any],
        headers: dict | None = None,
        started: float | None = None,
    ) -> None:
        """Queue one request's rows (or none: sampled out, or dropped when the queue is full)."""
        if self.sample_rate < 1.0 and self._rng() >= self.sample_rate:
            return
        queue = self._queue
        n = len(rows)
        if len(queue) + n > self.capacity:
            self.dropped.inc(n)
            return
        request_id, arrived = current(headers)
        arrived = arrived if arrived is not None else started
        now = time.time()
        latency = (time.perf_counter() - arrived) * 1000.0 if arrived is not None else None
        for i in range(n):
            queue.append((request_id, now, latency, keys[i], rows[i], defaulted[i], scores[i]))

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- background ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fti-prediction-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.flush_seconds):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write everything queued (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def flush(self) -> int:
        """Write what is queued now; returns the rows written."""
        with self._flush_lock:
            queue = self._queue
            n = len(queue)
            pending = self._retry
            self._retry = []
            if n:  # exactly the rows present now: rows appended meanwhile wait for the next flush
                pending.append(self.table([queue.popleft() for _ in range(n)]))
            written = 0
            for i, table in enumerate(pending):
                try:
                    self.files.write(table)
                except Exception:
                    log.exception(
                        "writing %d prediction-log rows to %s failed; retried at the next flush",
                        table.num_rows,
                        self.files.store.uri,
                    )
                    self._keep_for_retry(pending[i:])
                    break
                written += table.num_rows
                self.written.inc(table.num_rows)
            return written

    def _keep_for_retry(self, tables: list[pa.Table]) -> None:
        kept = 0
        for table in reversed(tables):  # the newest rows first, as a full queue would keep them
            if kept + table.num_rows <= self.capacity:
                self._retry.insert(0, table)
                kept += table.num_rows
            else:
                self.write_failed.inc(table.num_rows)

    def table(self, entries: list[Row]) -> pa.Table:
        """The log rows of queued entries (in the writer thread, never on the request path)."""
        ids, at, latency, keys, rows, defaulted, scores = zip(*entries, strict=True)
        columns = list(zip(*rows, strict=True)) if self.features else []
        return log_table(
            self.features,
            request_ids=ids,
            logged_at_us=(np.asarray(at) * 1e6).astype(np.int64),
            model_version=self.files.model_version,
            feature_view_version=self.files.feature_view_version,
            source=SOURCE_ONLINE,
            entities=[orjson.dumps(k, option=orjson.OPT_SORT_KEYS).decode() for k in keys],
            columns=[feature_array(columns[i], numeric) for i, (_, numeric) in enumerate(self.features)],
            looked_up=self.looked_up,
            scores=scores,
            latency_ms=latency,
            defaulted=defaulted,
        )
