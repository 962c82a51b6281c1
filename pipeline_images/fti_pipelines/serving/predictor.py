"""Scoring with the saved sklearn pipeline, and the `predictor` role.

`Scorer` turns feature rows (model input order) into the probability of the positive
class and the label, in one `predict_proba` call (the label is the arg-max class,
which is what `predict` returns for sklearn classifiers). The call goes through the
compiled model when it reproduces sklearn exactly (compiled.py: ONNX Runtime for linear
models, numpy tree traversal for tree ensembles, regressors included), else sklearn.

`PredictorModel` is the predictor of the transformer topology: it takes plain ordered
rows like KServe's stock sklearn runtime (v1 `{"instances": [[...], ...]}`, v2 one
tensor of shape [n, k] or one tensor per column in model order), so the transformer
works in front of either this server or KServe's sklearn server. With PREDICT_PROBA
(default true here) it answers probability rows, like the stock runtime does.
"""

from __future__ import annotations

import os
from typing import Any

import kserve
import numpy as np
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from .compiled import CompiledModel, Rows, TreeModel, try_compile
from .errors import RequestError, bad_field
from .revision import Revision


class Scorer:
    def __init__(self, pipeline: Any, *, compile_model: bool = True):
        self.pipeline = pipeline
        self.has_proba = hasattr(pipeline, "predict_proba")
        classes = getattr(pipeline, "classes_", None)
        # Plain Python scalars (not numpy's), so labels serialize as JSON numbers/strings.
        self.classes = [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None
        width = getattr(pipeline, "n_features_in_", None)
        self.compiled: CompiledModel | TreeModel | None = None
        if compile_model and isinstance(width, int):
            self.compiled = try_compile(pipeline, width)

    @staticmethod
    def matrix(rows: Rows) -> np.ndarray:
        # object dtype keeps numbers numeric and strings as strings, column by position.
        return np.array(rows, dtype=object)

    def _model_error(self, exc: Exception) -> RequestError:
        return RequestError(
            f"the model could not score these instances: {exc}", field="instances", status=422, reason="ModelRejectedInput"
        )

    def proba(self, rows: Rows) -> np.ndarray:
        if self.compiled is not None:
            p = self.compiled.proba(rows)
            if p is not None:
                return p
        try:
            return self.pipeline.predict_proba(self.matrix(rows))
        except (ValueError, TypeError) as exc:  # e.g. an unseen category the encoder refuses
            raise self._model_error(exc) from exc

    def predict(self, rows: Rows) -> np.ndarray:
        """The model's `predict`, for models without predict_proba (regressors)."""
        if isinstance(self.compiled, TreeModel):
            y = self.compiled.predict(rows)
            if y is not None:
                return y
        try:
            return self.pipeline.predict(self.matrix(rows))
        except (ValueError, TypeError) as exc:
            raise self._model_error(exc) from exc

    def score(self, rows: Rows) -> tuple[list[Any], list[Any] | None]:
        """(predictions, labels): P(positive) and labels, or labels only for a model without proba."""
        if not self.has_proba:
            return self.predict(rows).tolist(), None
        if len(rows) == 1 and isinstance(self.compiled, TreeModel):  # one row, as served online
            one = self.compiled.proba_row(rows[0])
            # Two classes (proba_row exists for binary models only); NaN: numpy's argmax decides.
            if one is not None and one[0] == one[0] and one[1] == one[1]:
                best = 0 if one[0] >= one[1] else 1  # the first of equal maxima, as argmax
                return [one[1]], [self.classes[best] if self.classes is not None else best]
        p = self.proba(rows)
        best = p.argmax(axis=1).tolist()
        labels = [self.classes[i] for i in best] if self.classes is not None else best
        return p[:, -1].tolist(), labels


def _rows_from_v2(request: InferRequest, width: int) -> list[list[Any]]:
    inputs = request.inputs or []
    if not inputs:
        raise bad_field("inputs", "is empty")
    if len(inputs) == 1:
        t = inputs[0]
        data = t.data if isinstance(t.data, list) else t.as_numpy().tolist()
        if t.shape and len(t.shape) == 2:
            if t.shape[1] != width:
                raise bad_field("inputs[0].shape", f"expected [n, {width}] (the model has {width} inputs), got {t.shape}")
            if data and not isinstance(data[0], list):  # flat row-major data
                data = [data[i : i + width] for i in range(0, len(data), width)]
            return data
        raise bad_field("inputs[0].shape", f"expected [n, {width}], got {t.shape}")
    if len(inputs) != width:
        raise bad_field("inputs", f"expected one tensor per model input ({width}), got {len(inputs)}")
    cols = [t.data if isinstance(t.data, list) else t.as_numpy().ravel().tolist() for t in inputs]
    if len({len(c) for c in cols}) > 1:  # zip would silently drop the longer tensors' tails
        raise bad_field("inputs", f"every tensor needs one value per instance, got {[len(c) for c in cols]} values")
    return [list(r) for r in zip(*cols, strict=True)]


class PredictorModel(kserve.Model):
    """The model alone, answering plain ordered rows (KServe sklearn-runtime compatible)."""

    def __init__(self, name: str, revision: Revision):
        super().__init__(name)
        self.revision = revision
        self.scorer: Scorer | None = None
        self.want_proba = os.environ.get("PREDICT_PROBA", "true").lower() == "true"
        self.width = 0

    def load(self) -> bool:
        if self.revision.load():
            self.scorer = Scorer(self.revision.pipeline, compile_model=self.revision.config.compile_model)
            self.width = len((self.revision.card.get("featureView") or {}).get("columns") or [])
        self.ready = self.revision.ready
        return self.ready

    def start(self) -> None:  # KServe's default start() would mark us ready unconditionally
        pass

    async def healthy(self) -> bool:
        if not self.ready:
            raise ModelNotReady(self.name, self.revision.reason)
        return True

    def predict(self, payload: Any, headers: dict | None = None) -> Any:
        if isinstance(payload, InferRequest):
            rows = _rows_from_v2(payload, self.width)
        else:
            if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
                raise bad_field("instances", 'expected {"instances": [[...], ...]} (rows in model input order)')
            rows = payload["instances"]
        if not rows:
            raise bad_field("instances", "is empty")
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != self.width:
                raise bad_field(f"instances[{i}]", f"expected a row of {self.width} values in model input order")
        assert self.scorer is not None
        proba = self.want_proba and self.scorer.has_proba
        if proba:
            result = self.scorer.proba(rows).tolist()
        else:
            predictions, labels = self.scorer.score(rows)
            result = labels if labels is not None else predictions
        if isinstance(payload, InferRequest):
            flat = np.asarray(result).ravel().tolist()
            if proba:
                out = InferOutput("output-0", list(np.shape(result)), "FP64", data=flat)
            elif all(isinstance(v, int) for v in flat):
                out = InferOutput("output-0", [len(flat)], "INT64", data=flat)
            else:
                out = InferOutput("output-0", [len(flat)], "BYTES", data=[str(v) for v in flat])
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=[out],
                model_version=str(self.revision.config.model_version),
            )
        return {"predictions": result}
