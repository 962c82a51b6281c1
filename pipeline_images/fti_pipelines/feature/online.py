"""The feature pipeline's online step: which rows to materialise, prepared while the batch validates.

What the online store must receive after a run that published snapshot S of a version:

- the batch itself, when the online copy is at the batch's parent snapshot (or both are
  empty): the usual incremental step. A `full` batch is the version's whole data, so it
  replaces the online copy (keys absent from it are removed) whatever state that was in;
- the whole version, when the online copy lags (a run died between the offline and the
  online write, or the group was offline-only before): it is rebuilt from snapshot S;
- nothing, when the online copy is already at S (a rerun with nothing new).

Why a plan decided up front: the batch case - the common one - needs nothing from the
offline commit, so `OnlineWrite.start` prepares it in a thread while validation and the
Parquet writes run: latest row per key (DuckDB), values encoded, and for SQLite the
INSERTs themselves inside an open transaction, for Redis (a first write or a full reload)
the HSETs into a generation nobody reads yet (`StagedWrite.load`). Measured side by side
(4 runs at load 3.5-11), that beat doing the INSERTs after validation in 3 of 4; the
INSERTs go 200 rows per statement so sqlite3 re-takes the GIL next to pandera once per
200 rows, not per row (store/online/sqlite/write.py insert_rows). `finish` publishes
it only once the offline snapshot is committed, and `discard` drops it when validation
failed or the commit lost a race: a refused batch never reaches the online store, and the
online copy never gets ahead of the offline one.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..store.compaction import data_snapshot
from ..store.offline import Batch, FeatureStore
from ..store.online import OnlineStore, StagedWrite

log = logging.getLogger("fti_pipelines.feature")


class OnlineWrite:
    """One run's online materialisation: `start()` before the offline commit, then `finish()` or `discard()`."""

    def __init__(self, features: FeatureStore, online: OnlineStore, batch: Batch, publishes: bool, timings: dict[str, float]):
        """`publishes`: the run commits a new offline snapshot (else it re-uses the parent's)."""
        self.features, self.online, self.batch, self.timings = features, online, batch, timings
        schema = batch.schema
        self.key, self.event_time = list(schema["primaryKey"]), schema["eventTime"]
        info = online.version_info(batch.group, batch.version)
        self.online_snapshot = info.get("snapshot") if info is not None else None
        # A compaction snapshot holds its parent's data (store/compaction.py): an online copy of
        # that data is as current as before the compaction.
        parent = {batch.parent["snapshot"], data_snapshot(batch.parent)} if batch.parent else set()
        self.in_step = publishes and (
            batch.mode == "full" or (info is not None and self.online_snapshot in parent) or (info is None and not parent)
        )
        self._pool: ThreadPoolExecutor | None = None
        self._staging: Future[StagedWrite] | None = None
        self._staged: StagedWrite | None = None

    def start(self) -> None:
        """Prepare the batch's online rows in a thread, if the batch is what the online store needs."""
        if not self.in_step:
            return
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fti-online")
        self._staging = self._pool.submit(self._stage)

    def _stage(self) -> StagedWrite:
        start = time.perf_counter()
        b = self.batch
        try:
            # a prepared batch is unique on key + event time
            staged = self.online.stage(
                b.group,
                b.version,
                self.key,
                self.event_time,
                b.table,
                snapshot=int(b.snapshot_id),
                unique_events=True,
                replace=b.mode == "full",
            )
            try:
                staged.load()  # invisible until finish(); rolled back by discard()
            except BaseException:
                staged.abort()
                raise
            return staged
        finally:
            self.timings["stageOnline"] = round(time.perf_counter() - start, 4)

    def finish(self, manifest: dict[str, Any]) -> int:
        """Publish after the offline snapshot `manifest` was committed; returns the rows written online."""
        b = self.batch
        snapshot = manifest["snapshot"]
        if self._staging is not None or self._staged is not None:
            staged = self._staged or self._take()
            self._staged = None
            with staged:
                return staged.commit()
        if self.online_snapshot in (snapshot, data_snapshot(manifest)):
            return 0  # already materialised (a rerun with nothing new, a compaction since)
        log.info(
            "online store of %s v%d is at snapshot %s, offline at %s: re-materialising the version",
            b.group,
            b.version,
            self.online_snapshot,
            snapshot,
        )
        rows = self.features.table(b.group, b.version, snap=manifest)
        # the committed data is unique on key + event time, and it is the version's whole data
        return self.online.write(
            b.group, b.version, self.key, self.event_time, rows, snapshot=snapshot, unique_events=True, replace=True
        )

    def discard(self) -> None:
        """Drop whatever was prepared (validation failed, or the offline commit did not happen)."""
        if self._staged is not None:
            self._staged.abort()
            self._staged = None
        if self._staging is None:
            return
        try:
            staged = self._take()
        except Exception:  # preparing failed, and the batch is not going anywhere anyway
            log.debug("discarding a failed online staging", exc_info=True)
            return
        staged.abort()

    def _take(self) -> StagedWrite:
        assert self._staging is not None and self._pool is not None
        staging, self._staging = self._staging, None
        try:
            return staging.result()
        finally:
            self._pool.shutdown()
