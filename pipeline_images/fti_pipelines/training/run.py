"""The training pipeline: feature view -> training dataset -> fitted, evaluated, registered model.

    spec (TrainingPipeline) + FTI_MODEL_VERSION
      -> point-in-time-correct training dataset (versioned, content-hashed)
      -> split (time | random) -> sklearn Pipeline(transformations by position + estimator)
         fitted on the training split only
      -> metrics, gates, bias gate on the test split -> verdict Validated | Rejected
      -> training profile of the inputs and scores (monitoring/profile.py)
      -> registry: models/<name>/<version>/{model/model.joblib, model/monitoring-profile.json,
         model.json, report/}

A Rejected model is a successful run (exit 0, verdict Rejected, with its reasons);
only a failure to train exits non-zero. The model version is the registry's: the run
claims one (registry.py, `allocate`; FTI_MODEL_VERSION is only the number the operator
expects) and reports it. The same run retried (a Job's pod started again after it
registered) gets its own version back and returns that version's result; any other run
gets a new version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from pydantic import ValidationError
from sklearn.model_selection import train_test_split

from fti_operator.api.manifests import format_validation_error
from fti_operator.api.training_pipeline import TrainingPipelineSpec

from ..contract import PipelineContext, PipelineError
from ..feature_view import TrainingDataset, TrainingDatasets
from ..feature_view.definitions import register_definition
from ..monitoring.profile import build_profile
from ..registry import ModelRegistry, RunOwner
from ..store.artifacts import ArtifactStore
from ..store.tenancy import artifact_store
from .estimator import build_estimator
from .evaluation import evaluate
from .report import build_report
from .transformations import build_model_pipeline, column_kind, input_schema, to_rows

log = logging.getLogger("fti_pipelines.training")


def parse_spec(raw: dict[str, Any]) -> TrainingPipelineSpec:
    try:
        return TrainingPipelineSpec.model_validate(raw)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise PipelineError("InvalidSpec", "; ".join(f"spec.{p}: {m}" for p, m in problems), problems=problems) from None


def binary_labels(frame: pd.DataFrame, column: str) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Rows with a label, the labels as 0/1, and how many rows had none."""
    present = frame[column].notna()
    missing = int((~present).sum())
    frame = frame[present]
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return frame, values.astype(int).to_numpy(), missing
    distinct = set(pd.unique(values).tolist())
    if not distinct <= {0, 1}:
        shown = ", ".join(map(repr, sorted(distinct, key=str)[:5]))
        raise PipelineError(
            "InvalidLabel", f"featureView.label.column {column!r} must be binary 0/1 or true/false; found {shown}", column=column
        )
    return frame, values.astype(int).to_numpy(), missing


def split(frame: pd.DataFrame, y: np.ndarray, spec: TrainingPipelineSpec, event_time: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the train and test rows."""
    cfg = spec.training_data.split
    n = len(frame)
    positions = np.arange(n)
    if cfg.type == "time":
        # The newest events are the test set: the model is judged on the future it will meet.
        order = np.argsort(frame[event_time].to_numpy(), kind="stable")
        cut = round(n * (1 - cfg.test_fraction))
        return order[:cut], order[cut:]
    counts = np.bincount(y, minlength=2)
    stratify = y if counts.min() >= 2 else None
    train, test = train_test_split(positions, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def scores(pipeline: Any, rows: np.ndarray) -> np.ndarray:
    if hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(rows)
        classes = list(pipeline.classes_)
        return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(rows))
    return pipeline.decision_function(rows)


def spec_hash(raw: dict[str, Any]) -> str:
    """Hash of the resolved spec as the run received it (recorded in the version's claim)."""
    return "sha256:" + hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def train(
    spec: TrainingPipelineSpec,
    version: int | None,
    store: ArtifactStore,
    feature_store: Any,
    run_id: str = "local",
    owner: RunOwner | None = None,
) -> dict[str, Any]:
    """Train, evaluate and register one model version; returns the pipeline result.

    `version` is the number asked for; the registry allocates the one registered (see the
    module docstring). `owner` identifies the run (default: an anonymous run, never a retry).
    """
    name, view = spec.model.name, spec.feature_view
    # Fail on a bad estimator before anything is written: the stores stay as they were.
    estimator = build_estimator(spec.model, seed=spec.training_data.split.seed)
    # A feature view version is immutable: a different definition under it is refused here,
    # before a model version is claimed or anything is trained.
    view_hash = register_definition(store, view.wire())
    registry = ModelRegistry(store)
    owner = owner or RunOwner("", "local", None, spec_hash(spec.model_dump(mode="json", by_alias=True)), run_id)
    version = registry.allocate(name, owner, requested=version)
    if registry.exists(name, version):
        log.info("model %s version %s is this run's and already registered; reporting it", name, version)
        return result_of(registry.card(name, version), existing=True)

    bias = spec.evaluation.bias
    extra = [("evaluation.bias.sensitiveColumn", bias.sensitive_column)] if bias else []
    window = spec.training_data
    dataset = TrainingDatasets(store).create(view, feature_store, start=window.start, end=window.end, extra_columns=extra)
    log.info(
        "training dataset %s v%s #%s: %d rows, %s%s",
        view.name,
        view.version,
        dataset.version,
        dataset.rows,
        dataset.hash,
        " (reused)" if dataset.reused else "",
    )
    frame, y, unlabelled = binary_labels(dataset.frame, view.label.column)
    if len(frame) < 10:
        raise PipelineError(
            "NotEnoughTrainingData",
            f"featureView {view.name} v{view.version}: {len(frame)} labelled rows"
            f"{_window_text(window.start, window.end)}; at least 10 are needed",
            rows=len(frame),
        )
    columns = list(view.feature_columns)
    pipeline = build_model_pipeline(frame, columns, view.transformations, estimator)
    train_pos, test_pos = split(frame, y, spec, dataset.plan.spine.event_time)
    if len(np.unique(y[train_pos])) < 2:
        raise PipelineError(
            "NotEnoughTrainingData",
            f"the training split has only label {int(y[train_pos][0])}; a classifier needs both classes of {view.label.column!r}",
        )
    rows = to_rows(frame, columns)
    pipeline.fit(rows[train_pos], y[train_pos])  # transformations are fitted on the training split only
    score = scores(pipeline, rows[test_pos])
    sensitive = frame[bias.sensitive_column].iloc[test_pos].reset_index(drop=True) if bias else None
    ev = evaluate(spec.evaluation, y[test_pos], score, sensitive)

    plan = dataset.plan
    card = {
        "name": name,
        "version": version,
        "verdict": ev.verdict,
        "reasons": ev.reasons,
        "notes": ev.notes,
        "metrics": ev.metrics,
        "gates": ev.gates,
        "bias": ev.bias,
        "featureView": {
            "name": view.name,
            "version": view.version,
            "label": {"featureGroup": view.label.feature_group.wire(), "column": view.label.column},
            "features": [
                {
                    "featureGroup": f.feature_group.wire(),
                    "columns": list(f.columns),
                    "primaryKey": list(_group(plan, f.feature_group.key).primary_key),
                    "eventTime": _group(plan, f.feature_group.key).event_time,
                }
                for f in view.features
            ],
            "columns": columns,
            "transformations": [t.wire() for t in view.transformations or []],
            "definitionHash": view_hash,
        },
        "entityKeys": plan.entity_keys,
        "inputSchema": input_schema(frame, columns),
        "trainingDataset": dataset.ref,
        "split": {
            "type": spec.training_data.split.type,
            "testFraction": spec.training_data.split.test_fraction,
            "train": len(train_pos),
            "test": len(test_pos),
            "unlabelled": unlabelled,
        },
        "threshold": spec.evaluation.threshold,
        "estimator": spec.model.estimator or spec.model.entrypoint,
        "params": spec.model.params or {},
        "steps": [s for s, _ in pipeline.steps],
        "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "runId": run_id,
        "run": owner.wire(),
        "libraries": {"sklearn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__},
    }
    report = build_report(card, ev, y[test_pos], score, spec.evaluation.threshold)
    profile = build_profile(
        frame.iloc[train_pos],
        columns,
        {c: column_kind(frame[c]) for c in columns},
        score,
        y,
        dataset.ref,
        {"train": len(train_pos), "test": len(test_pos)},
    )
    stored = registry.register(name, version, pipeline, card, report, profile=profile)
    log.info("model %s v%s: %s %s", name, version, ev.verdict, ev.metrics)
    return result_of(stored)


def _group(plan: Any, key: str) -> Any:
    if plan.spine.key == key:
        return plan.spine
    return next(g for g, _ in plan.joins if g.key == key)


def _window_text(start: datetime | None, end: datetime | None) -> str:
    if not start and not end:
        return ""
    return f" between {start.isoformat() if start else '-'} and {end.isoformat() if end else '-'}"


def result_of(card: dict[str, Any], existing: bool = False) -> dict[str, Any]:
    """The termination-message result of a registered version (small: under 4 KiB)."""
    out = {
        "model": card["name"],
        "version": card["version"],
        "verdict": card["verdict"],
        "metrics": card["metrics"],
        "reasons": card.get("reasons", []),
        "featureView": {"name": card["featureView"]["name"], "version": card["featureView"]["version"]},
        "featureGroups": sorted(
            {(f["featureGroup"]["name"], f["featureGroup"]["version"]) for f in card["featureView"]["features"]}
            | {(card["featureView"]["label"]["featureGroup"]["name"], card["featureView"]["label"]["featureGroup"]["version"])}
        ),
        "trainingDataset": {"version": card["trainingDataset"]["version"], "hash": card["trainingDataset"]["hash"]},
        "storageUri": card["storageUri"],
        "rows": {"train": card["split"]["train"], "test": card["split"]["test"]},
    }
    if card.get("profileUri"):  # versions registered before profiles existed have none
        out["profileUri"] = card["profileUri"]
    out["featureGroups"] = [{"name": n, "version": v} for n, v in out["featureGroups"]]
    if card.get("bias"):
        out["bias"] = {"gap": card["bias"]["gap"], "maxGap": card["bias"]["maxGap"], "passed": card["bias"]["passed"]}
    if existing:
        out["existing"] = True
    return out


def main(ctx: PipelineContext) -> dict[str, Any]:
    """Entry for `python -m fti_pipelines.training` (the pipeline contract)."""
    from ..store.offline import FeatureStore  # the features engineer's module; imported late for clear errors

    spec = parse_spec(ctx.spec)
    store = artifact_store(ctx)
    owner = RunOwner(ctx.namespace, ctx.resource, ctx.resource_uid, spec_hash(ctx.spec), ctx.run_id)
    return train(spec, ctx.model_version, store, FeatureStore(store), run_id=ctx.run_id, owner=owner)


__all__ = ["TrainingDataset", "main", "parse_spec", "result_of", "train"]
