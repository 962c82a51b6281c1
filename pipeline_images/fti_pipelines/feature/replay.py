"""Inspect and replay quarantined batches (`fti quarantine show|replay`, docs/data-quality.md).

A replay re-ingests one quarantined batch through the same path a run takes
(feature/pipeline.py `ingest`): schema check, dedup on key + event time, allowedLateness,
validation with the pipeline's current expectations, the atomic offline commit and the
online write. Nothing bypasses it, so:

- rows that fail again are quarantined again, as a new batch named `<batch>-replay`
  (and `<batch>-replay-late` for rows still beyond the allowed lateness);
- the rows are the quarantined ones as they are (e.g. after the expectations or the
  allowed lateness were changed), or a corrected file the user provides (parquet, csv or
  jsonl, with the batch's columns). They were transformed when first read, so the
  transform is not applied again;
- a replay always ingests incrementally: it adds rows, it never replaces the version.

The batch itself stays where it is (nothing is lost); once replayed it is marked
(store/quarantine.py `mark_replayed`) and a second replay is refused. The mark is written
after the ingestion: a replay that dies in between can be run again, and the dedup on key +
event time keeps the rows it already committed from being written twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from fti_operator.api import FeaturePipelineSpec

from ..contract import PipelineContext, PipelineError
from ..store.artifacts import ArtifactExists, ArtifactStore
from ..store.quarantine import ROOT, batch_info, mark_replayed, parse_ref, read_quarantined, read_row_checks
from .pipeline import ingest, parse_event_time

log = logging.getLogger("fti_pipelines.feature.replay")
REPLAY_RESOURCE = "fti-quarantine-replay"


def _batch(store: ArtifactStore, ref: str) -> Any:
    try:
        group, version, name = parse_ref(ref)
    except ValueError as exc:
        raise PipelineError("InvalidBatch", str(exc)) from None
    try:
        return batch_info(store, group, version, name)
    except KeyError:
        raise PipelineError(
            "BatchNotFound", f"no quarantined batch {ref} in {store.uri}: `fti quarantine list` shows the batches", batch=ref
        ) from None


def show(store: ArtifactStore, ref: str, limit: int | None = None) -> tuple[Any, pd.DataFrame]:
    """The batch's summary and its rows, each with the checks it failed (column `failedChecks`)."""
    info = _batch(store, ref)
    table, report = read_quarantined(store, info.uri)
    rows = table.slice(0, limit) if limit is not None else table
    df = rows.to_pandas(types_mapper=pd.ArrowDtype).reset_index(drop=True)
    checks: dict[int, list[str]] = {}
    if info.reason == "LateRow":
        label = f"LateRow (event time before the cutoff {report.get('cutoff')})"
        checks = {i: [label] for i in range(len(df))}
    else:
        lines = read_row_checks(store, info.group, info.version, info.name)
        if lines is None:  # quarantined before per-row checks were recorded: the batch's failing checks
            failing = [f"{c['check']} on {c['column']!r}" for c in report.get("checks") or [] if not c.get("passed")]
            checks = {i: [*failing, "(per-row detail not recorded)"] for i in range(len(df))}
        else:
            for row, check, blocking in zip(*(lines.column(c).to_pylist() for c in ("row", "check", "blocking")), strict=True):
                if row < len(df):
                    checks.setdefault(row, []).append(check if blocking else f"{check} (within mostly)")
    df.insert(0, "failedChecks", ["; ".join(checks.get(i, [])) or "-" for i in range(len(df))])
    return info, df


def read_rows(path: Path) -> pa.Table:
    """A corrected batch: parquet, csv or jsonl by the file's suffix."""
    if not path.is_file():
        raise PipelineError("RowsNotFound", f"--rows {path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix == ".csv":
            return pacsv.read_csv(path)
        if suffix in (".jsonl", ".json"):
            return pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PipelineError("InvalidRows", f"--rows {path}: {exc}") from None
    raise PipelineError("InvalidRows", f"--rows {path}: expected a .parquet, .csv or .jsonl file")


def replay(
    store: ArtifactStore,
    ref: str,
    spec: FeaturePipelineSpec,
    *,
    artifact_store: str,
    namespace: str,
    online_store: str | None = None,
    rows: Path | None = None,
) -> dict[str, Any]:
    """Re-ingest batch `ref` of `store` (the namespace's) with the rules of `spec`; returns the run's result."""
    info = _batch(store, ref)
    if info.replay is not None:
        raise PipelineError(
            "AlreadyReplayed",
            f"batch {info.ref} was replayed at {info.replay.get('replayedAt')} ({info.replay.get('rowsWritten', 0)} rows "
            f"written, {info.replay.get('rowsQuarantined', 0)} quarantined again"
            + (f" as {info.replay['quarantined']}" if info.replay.get("quarantined") else "")
            + "): a batch is replayed once",
            batch=info.ref,
        )
    fg = spec.feature_group
    if (fg.name, fg.version) != (info.group, info.version):
        raise PipelineError(
            "WrongPipeline",
            f"batch {info.ref} belongs to {info.group} v{info.version}, the FeaturePipeline given writes {fg.name} "
            f"v{fg.version}: give the pipeline's spec of that version",
            batch=info.ref,
        )
    if fg.online and not online_store:
        raise PipelineError("MissingOnlineStore", f"{fg.name} is online: give the online store (--online-store)")
    if rows is None:
        table, _ = read_quarantined(store, info.uri)
        source = "as quarantined"
    else:
        table = parse_event_time(read_rows(rows), fg.event_time)
        source = str(rows)
    run_id = f"{info.name}-replay"
    ctx = PipelineContext(
        spec=spec.model_dump(by_alias=True, exclude_none=True),
        artifact_store=artifact_store,
        online_store=online_store,
        namespace=namespace,
        resource=REPLAY_RESOURCE,
        run_id=run_id,
        run_time=datetime.now(UTC),
    )
    incremental = spec.model_copy(update={"ingestion": "incremental"})
    failed: PipelineError | None = None
    try:
        result = ingest(ctx, incremental, store, table, {})
    except PipelineError as exc:
        if exc.reason != "ValidationFailed":  # nothing was written or quarantined: the batch stays unreplayed
            raise PipelineError(exc.reason, f"replay of {info.ref}: {exc.message}", batch=info.ref, **exc.details) from None
        failed, result = exc, dict(exc.details)  # onFailure=fail: the rows went back to quarantine
    again = [u for u in (result.get("quarantineUri"), result.get("lateQuarantineUri")) if u]
    record = {
        "batch": info.ref,
        "replayedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "runId": run_id,
        "rows": source,
        "rowsRead": table.num_rows,
        "rowsWritten": result.get("rowsWritten", 0),
        "rowsDuplicate": result.get("rowsDuplicate", 0),
        "rowsQuarantined": int(result.get("rowsRejected") or 0) + int(result.get("rowsTooLate") or 0),
        "quarantined": [_ref(store, u) for u in again],
        "snapshot": result.get("snapshot"),
    }
    try:
        mark_replayed(store, info.group, info.version, info.name, record)
    except ArtifactExists:
        raise PipelineError("AlreadyReplayed", f"batch {info.ref} was replayed by another process meanwhile") from None
    log.info("replayed %s: %s", info.ref, record)
    result["replay"] = record
    if failed is not None:
        result["message"] = failed.message
    return result


def _ref(store: ArtifactStore, uri: str) -> str:
    """`<group>/v<version>/<name>` of a quarantine URI of `store`."""
    prefix = store.url(ROOT) + "/"
    return uri.removeprefix(prefix)
