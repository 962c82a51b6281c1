"""The feature pipeline: source -> transform -> validate -> offline (+ online) feature store.

One run, driven by the contract (fti_pipelines.contract):

1. parse FTI_SPEC as a FeaturePipelineSpec (field-path errors), import the transform and
   the generator, check the online store is configured when `featureGroup.online` -
   all before any data is touched, so bad input leaves the stores as they were;
2. read the source (files through fsspec, or the generator), apply the transform (one
   that declares a `history` parameter can read the version's stored rows: history.py);
3. shape the batch for the offline store: canonical types, schema check against the
   version's recorded schema, dedup on key + event time (within the batch and against the
   stored rows). Late rows (before the watermark) are ingested; with `allowedLateness`,
   rows later than that are quarantined at once with reason LateRow - never dropped;
4. validate the rows that would be written with pandera (the spec's expectations plus an
   implicit notNull on key and event time) while their Parquet files are written into the
   invisible staging directory. A failing batch is written to NEITHER store: the staging is
   discarded, its rows go whole to quarantine with a report; onFailure=fail fails the run;
5. publish the new offline snapshot (atomic), then the latest row per key online, which
   was prepared while step 4 ran (feature/online.py). If the online store lags the offline
   snapshot it builds on (a run died between the two writes), the whole current version
   is re-materialised instead of just the batch. A `full` run replaces the online copy of
   the version: keys absent from the new data are removed.

The result (termination message): featureGroup, version, ingestion, rowsRead,
rowsWritten, rowsRejected, rowsLate, rowsDuplicate, watermark, snapshot,
quarantineUri, onlineRowsWritten, addedColumns, validation summary; when the batch failed
validation, rejectedExamples (the first failing rows and their checks); and when rows were
beyond the allowed lateness, rowsTooLate and lateQuarantineUri. The operator turns these into
the DataQuarantined condition (docs/data-quality.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
from pydantic import ValidationError

from fti_operator.api import FeaturePipelineSpec, parse_duration

from ..contract import PipelineContext, PipelineError
from ..sources import apply_transform, load_callable, read_source, to_pandas
from ..store.artifacts import ArtifactStore
from ..store.compaction import compact_after_run
from ..store.offline import Batch, FeatureStore
from ..store.online import open_online_store
from ..store.quarantine import quarantine_batch
from ..store.tenancy import artifact_store
from ..validation import check_columns, validate
from .history import FeatureHistory, wants_history
from .online import OnlineWrite

log = logging.getLogger("fti_pipelines.feature")


def parse_spec(raw: dict[str, Any]) -> FeaturePipelineSpec:
    try:
        return FeaturePipelineSpec.model_validate(raw)
    except ValidationError as exc:
        errors = "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PipelineError("InvalidSpec", errors) from None


def parse_event_time(table: pa.Table, column: str) -> pa.Table:
    """Make the event-time column a timestamp; ISO-8601 strings are parsed, anything else is refused."""
    if column not in table.column_names:
        raise PipelineError(
            "MissingColumn", f"eventTime column {column!r} is not in the data; columns are {table.column_names}", column=column
        )
    dtype = table.schema.field(column).type
    if pa.types.is_timestamp(dtype):
        return table
    index = table.schema.get_field_index(column)
    if pa.types.is_date(dtype):
        return table.set_column(index, column, table.column(column).cast(pa.timestamp("us")))
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        raw = table.column(column).to_pandas()
        parsed = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna() & raw.notna()
        if bad.any():
            row = int(bad.idxmax())
            raise PipelineError(
                "InvalidColumnType",
                f"eventTime column {column!r}: value {raw.iloc[row]!r} in row {row} is not an ISO-8601 time",
                column=column,
                row=row,
            )
        return table.set_column(index, column, pa.array(parsed, pa.timestamp("ns", tz="UTC")))
    raise PipelineError(
        "InvalidColumnType",
        f"eventTime column {column!r} has type {dtype}; expected a timestamp or ISO-8601 strings",
        column=column,
    )


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - start, 4)


def run(ctx: PipelineContext) -> dict[str, Any]:
    timings: dict[str, float] = {}
    result = _run(ctx, timings)
    result.setdefault("details", {})["timings"] = timings
    return result


def _run(ctx: PipelineContext, timings: dict[str, float]) -> dict[str, Any]:
    spec = parse_spec(ctx.spec)
    fg = spec.feature_group
    # Import user code and check configuration first: bad input must not touch the stores.
    transform = load_callable(spec.transform, "transform") if spec.transform else None
    if spec.source.generator is not None:
        load_callable(spec.source.generator.function, "source.generator.function")
    if fg.online and not ctx.online_store:
        raise PipelineError("MissingOnlineStore", "featureGroup.online is true but FTI_ONLINE_STORE is not set")
    store = artifact_store(ctx)
    with _timed(timings, "read"):
        raw = read_source(spec.source)
    with _timed(timings, "transform"):
        history = None
        if transform is not None and wants_history(transform):
            history = FeatureHistory(FeatureStore(store), fg.name, fg.version, fg.event_time, full=spec.ingestion == "full")
        table = apply_transform(raw, spec.transform, transform, history) if spec.transform else raw
        table = parse_event_time(table, fg.event_time)
    return ingest(ctx, spec, store, table, timings, rows_read=raw.num_rows)


def ingest(
    ctx: PipelineContext,
    spec: FeaturePipelineSpec,
    store: ArtifactStore,
    table: pa.Table,
    timings: dict[str, float],
    rows_read: int | None = None,
) -> dict[str, Any]:
    """Steps 3-5 for a transformed batch: shape, quarantine late rows, validate, publish.

    The one way rows enter a feature group: a run, and a replay of a quarantined batch
    (feature/replay.py), go through it alike."""
    fg = spec.feature_group
    features = FeatureStore(store)
    result: dict[str, Any] = {"featureGroup": fg.name, "version": fg.version, "ingestion": spec.ingestion}
    result["rowsRead"] = table.num_rows if rows_read is None else rows_read
    expectations = spec.validation.expectations if spec.validation else []
    check_columns(table.column_names, expectations)  # before anything is staged
    lateness = timedelta(seconds=parse_duration(spec.allowed_lateness)) if spec.allowed_lateness else None
    with _timed(timings, "prepare"):
        batch = features.prepare(
            fg.name,
            fg.version,
            table,
            primary_key=list(fg.primary_key),
            event_time=fg.event_time,
            mode=spec.ingestion,
            allowed_lateness=lateness,
        )
    result.update(rowsLate=batch.rows_late, rowsDuplicate=batch.rows_duplicate, addedColumns=batch.added_columns)
    if batch.too_late is not None:
        # set aside before anything else can fail: these rows are in no other store
        with _timed(timings, "quarantineLate"):
            result.update(_quarantine_late(store, batch, ctx.run_id, spec.allowed_lateness))

    reports = []

    def validated() -> bool:
        with _timed(timings, "validate"):
            reports.append(validate(to_pandas(batch.table), expectations, implicit_not_null=[*fg.primary_key, fg.event_time]))
        return reports[0].passed

    publishes = bool(batch.table.num_rows or batch.added_columns or batch.parent is None or spec.ingestion == "full")
    with ExitStack() as stack:
        online_write = None
        if fg.online and ctx.online_store:  # (checked above: online needs FTI_ONLINE_STORE)
            online = stack.enter_context(open_online_store(ctx.online_store, ctx.namespace))
            online_write = OnlineWrite(features, online, batch, publishes, timings)
            online_write.start()  # prepared while validation runs; published only after the offline commit
            stack.callback(online_write.discard)  # a no-op once published
        if publishes:
            # validation runs while the Parquet files are staged; a failing batch is never published
            with _timed(timings, "validateAndWriteOffline"):
                manifest = features.commit(batch, run_id=ctx.run_id, gate=validated)
            written = batch.table.num_rows
        else:
            validated()
            manifest, written = batch.parent, 0  # nothing new since the watermark: no empty snapshot
        if reports[0].passed and online_write is not None:
            assert manifest is not None  # passed: committed just now, or nothing new over the parent
            with _timed(timings, "writeOnline"):
                online_rows = online_write.finish(manifest)
    report = reports[0]
    result["validation"] = {
        "passed": report.passed,
        "checks": len(report.results),
        "warnings": [f"{w.spec.check} on {w.spec.column!r}: {w.failed} rows" for w in report.warnings],
    }
    if not report.passed:
        with _timed(timings, "quarantine"):
            body = report.to_json() | {"reason": "ValidationFailed"}
            uri = quarantine_batch(store, fg.name, fg.version, ctx.run_id, batch.table, body, row_checks=report.row_checks())
        on_failure = spec.validation.on_failure if spec.validation else "quarantine"
        log.warning("validation failed, %d rows quarantined at %s: %s", batch.table.num_rows, uri, report.summary())
        result.update(
            rowsWritten=0,
            rowsRejected=batch.table.num_rows,
            quarantineUri=uri,
            watermark=_watermark(batch.parent),
            snapshot=batch.parent["snapshot"] if batch.parent else None,
            message=f"validation failed: {report.summary()}"[:1000],
            rejectedExamples=report.first_rejected(),
            details={"failures": [f.to_json() | {"examples": f.examples[:2]} for f in report.failures]},
        )
        if on_failure == "fail":
            raise PipelineError("ValidationFailed", result["message"], **{k: v for k, v in result.items() if k != "message"})
        return result

    assert manifest is not None  # as above: validation passed
    result.update(
        rowsWritten=written,
        rowsRejected=0,
        watermark=manifest["watermark"],
        snapshot=manifest["snapshot"],
        rows=manifest["rows"],
        quarantineUri=None,
    )
    if fg.online:
        result["onlineRowsWritten"] = online_rows
    with _timed(timings, "compact"):  # housekeeping: few large files per version (store/compaction.py)
        result.update(compact_after_run(features, manifest, ctx.run_id))
    return result


def _quarantine_late(store: ArtifactStore, batch: Batch, run_id: str, allowed: str | None) -> dict[str, Any]:
    """Quarantine the rows beyond the allowed lateness, with the reason a reader needs to replay them."""
    assert batch.too_late is not None and batch.parent is not None
    report = {
        "reason": "LateRow",
        "message": (
            f"{batch.rows_too_late} row(s) have event times before {batch.cutoff}: more than allowedLateness "
            f"{allowed} before the watermark {batch.parent['watermark']}"
        ),
        "allowedLateness": allowed,
        "cutoff": batch.cutoff,
        "watermark": batch.parent["watermark"],
    }
    uri = quarantine_batch(store, batch.group, batch.version, run_id, batch.too_late, report, suffix="late")
    log.warning("%s; quarantined at %s", report["message"], uri)
    return {"rowsTooLate": batch.rows_too_late, "lateQuarantineUri": uri}


def _watermark(manifest: dict[str, Any] | None) -> str | None:
    return manifest["watermark"] if manifest else None
