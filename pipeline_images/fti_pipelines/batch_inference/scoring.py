"""One batch-inference run: input entities -> features (point in time) -> predictions -> output.

Memory stays bounded by the chunk size and the feature data, not by the input: the
input is streamed in pyarrow batches of `chunkRows`, each batch is joined to the
feature tables (features.py), scored with the registered model, and written as one
row group of the run's output (output.py). Every output row carries the model
version, the feature-view version and the run time.

Model inputs the input file itself carries (like request features online, e.g. the
transaction `amount`) are taken from the input; the rest are looked up. A row whose
entity has no feature row is still scored the way training treated such rows (the
pipeline imputes the nulls), flagged `features_missing` and counted in the result.
With FTI_PREDICTION_LOG set, the scored rows also go to the prediction log
(prediction_log.py), published after the output.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from ..contract import PipelineContext, PipelineError
from ..registry import ModelNotFound, ModelRegistry
from ..serving.config import ServingConfig
from ..serving.plan import PlanError, build_plan
from ..serving.prediction_log import LogSettings
from ..serving.predictor import Scorer
from ..serving.skew import check_card
from ..store.artifacts import ArtifactExists, ArtifactStore
from ..store.offline import FeatureStore
from ..store.tenancy import artifact_store
from ..training.transformations import to_rows
from .features import FeatureTables
from .output import run_directory, run_output
from .prediction_log import BatchPredictionLog

log = logging.getLogger("fti_pipelines.batch_inference")

INPUT_FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "json"}


def _run_text(run_time: datetime) -> str:
    return run_time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def open_input(uri: str, fmt: str) -> ds.Dataset:
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        return ds.dataset(path, filesystem=fs, format=INPUT_FORMATS[fmt])
    except (FileNotFoundError, pa.ArrowInvalid) as exc:
        raise PipelineError("InputUnreadable", f"spec.batch.input.uri {uri}: cannot read as {fmt}: {exc}") from exc


def stream_input(dataset: ds.Dataset, columns: list[str], chunk_rows: int):
    """Record batches of at most `chunk_rows`, read as they are consumed (no read-ahead of the whole input)."""
    options = ds.ParquetFragmentScanOptions(pre_buffer=False) if dataset.format.default_extname == "parquet" else None
    scanner = ds.Scanner.from_dataset(
        dataset,
        columns=columns,
        batch_size=chunk_rows,
        batch_readahead=0,
        fragment_readahead=0,
        use_threads=False,
        fragment_scan_options=options,
    )
    return scanner.to_batches()


def load_model(store: ArtifactStore, config: ServingConfig) -> tuple[Any, dict]:
    try:
        pipeline, card = ModelRegistry(store).load(config.model_name, config.model_version)
    except ModelNotFound as exc:
        raise PipelineError("ModelNotFound", str(exc)) from exc
    problems = check_card(card, config)
    if problems:  # the same skew guard as online serving: never score with the wrong features
        raise PipelineError(problems[0].reason, "; ".join(p.message for p in problems))
    return pipeline, card


def _time_column(card: dict, names: list[str]) -> str | None:
    """The spine's event-time column, if the input carries it (per-row point in time)."""
    label = (card.get("featureView") or {}).get("label") or {}
    spine = label.get("featureGroup") or {}
    for feat in (card.get("featureView") or {}).get("features") or []:
        if feat.get("featureGroup") == spine and feat.get("eventTime") in names:
            return feat["eventTime"]
    for feat in (card.get("featureView") or {}).get("features") or []:
        if feat.get("eventTime") in names:
            return feat["eventTime"]
    return None


def score_run(ctx: PipelineContext) -> dict[str, Any]:
    config = ServingConfig.from_spec(ctx.spec, ctx.env)
    if config.batch is None:
        raise PipelineError("InvalidSpec", "spec.batch is required for batch inference")
    batch = config.batch
    store = artifact_store(ctx)
    pipeline, card = load_model(store, config)
    dataset = open_input(batch.input.uri, batch.input.format)
    names = dataset.schema.names
    columns = list((card.get("featureView") or {}).get("columns") or [])
    from_input = [c for c in columns if c in names]
    spec = dict(ctx.spec)
    spec["online"] = {"requestFeatures": from_input}
    try:
        plan = build_plan(card, ServingConfig.from_spec(spec, ctx.env))
    except PlanError as exc:
        raise PipelineError(exc.reason, exc.message) from exc
    missing_keys = [k for k in plan.entity_keys if k not in names]
    if missing_keys:
        raise PipelineError(
            "InputMissingColumn",
            f"spec.batch.input {batch.input.uri}: entity key column(s) {missing_keys} missing (columns: {names})",
            columns=missing_keys,
        )
    time_column = _time_column(card, names) if batch.as_of == "runTime" else None
    run_time = ctx.run_time
    run_dir = run_directory(_run_text(run_time))
    result_base = {
        "modelVersion": config.model_version,
        "featureViewVersion": config.feature_view_version,
        "runTime": run_time.isoformat().replace("+00:00", "Z"),
        "asOf": batch.as_of,
    }
    output = ArtifactStore(batch.output.uri)
    if output.is_committed(run_dir):  # a retried Job for the same run: already published, never rewritten
        info = output.commit_info(run_dir)
        return {**result_base, "rowsScored": info.get("rowsScored"), "outputUri": output.url(run_dir), "alreadyCommitted": True}
    feature_store = FeatureStore(store)
    log_settings = LogSettings.from_env(ctx.env, config.name, config.namespace)
    prediction_log = BatchPredictionLog(log_settings, plan, config, ctx.run_id) if log_settings else None
    tables = FeatureTables(store.fs if store.protocol != "file" else None)
    started = time.perf_counter()
    try:
        for group in plan.groups:
            tables.add(
                group,
                feature_store.parquet_files(group.name, group.version),
                as_of=run_time if batch.as_of == "runTime" else None,
                per_row=time_column is not None,
            )
        keep = list(dict.fromkeys([*plan.entity_keys, *([time_column] if time_column else []), *from_input]))
        scorer = Scorer(pipeline)
        metadata: dict[str, Any] = dict(result_base)
        missing_total = 0
        try:
            with run_output(batch.output.uri, run_dir, batch.output.format, metadata) as writer:
                for record_batch in stream_input(dataset, keep, batch.chunk_rows):
                    if record_batch.num_rows == 0:
                        continue
                    chunk = pa.Table.from_batches([record_batch])
                    out, missing = _score_chunk(chunk, plan, tables, scorer, config, run_time, time_column, prediction_log)
                    missing_total += missing
                    writer.write(out)
                metadata["rowsMissingFeatures"] = missing_total
        except ArtifactExists:
            info = output.commit_info(run_dir)
            return {
                **result_base,
                "rowsScored": info.get("rowsScored"),
                "outputUri": output.url(run_dir),
                "alreadyCommitted": True,
            }
        logged = prediction_log.publish() if prediction_log is not None else []
    finally:
        tables.close()
        if prediction_log is not None:
            prediction_log.close()
    seconds = time.perf_counter() - started
    rows = metadata.get("rowsScored", 0)
    log.info("scored %d rows in %.1fs (%.0f rows/s) -> %s", rows, seconds, rows / seconds if seconds else 0, output.url(run_dir))
    return {
        **result_base,
        "rowsScored": rows,
        "rowsMissingFeatures": missing_total,
        "outputUri": output.url(run_dir),
        "inputColumns": from_input,
        "seconds": round(seconds, 3),
        **({"rowsLogged": prediction_log.rows_logged, "logFiles": len(logged)} if prediction_log is not None else {}),
    }


def _score_chunk(
    chunk: pa.Table,
    plan: Any,
    tables: FeatureTables,
    scorer: Scorer,
    config: ServingConfig,
    run_time: datetime,
    time_column: str | None,
    prediction_log: BatchPredictionLog | None = None,
) -> tuple[pa.Table, int]:
    joined = tables.join(chunk, time_column=time_column, run_time=run_time)
    n = chunk.num_rows
    frame_cols: dict[str, Any] = {}
    for col, _pos in plan.request_features:
        frame_cols[col] = chunk.column(col)
    missing = np.zeros(n, dtype=bool)
    for t in tables.tables:
        for c in t.group.columns:
            frame_cols[c] = joined.column(f"{t.table}.{c}")
        missing |= joined.column(t.found).is_null().to_numpy(zero_copy_only=False)
    frame = pa.table(frame_cols).to_pandas()
    proba_or_labels, labels = scorer.score(to_rows(frame, list(plan.columns)))
    if prediction_log is not None:
        prediction_log.add(chunk, frame_cols, proba_or_labels)
    out: dict[str, Any] = {k: chunk.column(k) for k in plan.entity_keys}
    if time_column:
        out[time_column] = chunk.column(time_column)
    out["prediction"] = pa.array(proba_or_labels)
    if labels is not None:
        out["label"] = pa.array(labels)
    out["features_missing"] = pa.array(missing)
    out["model_name"] = pa.array([config.model_name] * n, pa.string()).dictionary_encode()
    out["model_version"] = pa.array(np.full(n, config.model_version, dtype=np.int32))
    out["feature_view"] = pa.array([config.feature_view_name] * n, pa.string()).dictionary_encode()
    out["feature_view_version"] = pa.array(np.full(n, config.feature_view_version, dtype=np.int32))
    out["run_time"] = pa.array(
        np.full(n, np.datetime64(run_time.astimezone(UTC).replace(tzinfo=None), "us")), pa.timestamp("us", tz="UTC")
    )
    return pa.table(out), int(missing.sum())
