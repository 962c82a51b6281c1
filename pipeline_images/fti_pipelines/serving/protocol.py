"""KServe v1 and v2 request/response shapes for feature-lookup serving.

v1: `{"instances": [{"cc_num": 1, "amount": 42.0, "category": "online"}, ...]}` ->
    `{"predictions": [...], "labels": [...], "defaultsUsed": [...], "model": ..., "modelVersion": 4,
      "featureViewVersion": 1}`.
v2 (Open Inference Protocol): one tensor per column, shape [n] or [n, 1] (BYTES for
    strings), or one BYTES tensor of JSON objects; the answer has `predictions` (FP64,
    probability of the positive class), `labels`, `defaults_used` (BOOL), `model_version`
    and the revision in `parameters`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from .errors import bad_field, too_large


@dataclass
class Scored:
    """What the model produced for one request, before encoding."""

    predictions: list[Any]  # P(positive class) when the model has predict_proba, else labels
    labels: list[Any] | None
    defaults_used: list[bool]


def v1_instances(payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise bad_field("body", 'expected a JSON object like {"instances": [...]}')
    if "instances" not in payload:
        raise bad_field("instances", 'is missing: send {"instances": [{...}, ...]}')
    return payload["instances"]


def _flat(values: Any, shape: Sequence[int] | None, field: str) -> list[Any]:
    if not isinstance(values, list):
        raise bad_field(field, "data must be a list")
    if values and isinstance(values[0], list):  # nested [[v], [v]] for shape [n, 1]
        if any(not isinstance(v, list) or len(v) != 1 for v in values):
            raise bad_field(field, "expected one value per instance (shape [n] or [n, 1])")
        values = [v[0] for v in values]
    if shape and (len(shape) > 2 or (len(shape) == 2 and shape[1] != 1)):
        raise bad_field(field, f"shape {list(shape)}: expected [n] or [n, 1], one value per instance")
    if shape and shape[0] != len(values):
        raise bad_field(field, f"shape {list(shape)} does not match {len(values)} values")
    return values


def v2_instances(request: InferRequest, max_instances: int) -> list[dict[str, Any]]:
    """Instances (dicts) from a v2 request, validating tensor shapes by name."""
    inputs = request.inputs or []
    if not inputs:
        raise bad_field("inputs", "is empty: send one tensor per entity key and request feature")
    first = inputs[0]
    if len(inputs) == 1 and first.datatype == "BYTES" and first.name in ("instances", "json"):
        values = _flat(first.data, first.shape, "inputs[0].data")
        if len(values) > max_instances:
            raise too_large("inputs[0]", f"{len(values)} instances exceed the limit of {max_instances} per request")
        out = []
        for i, raw in enumerate(values):
            try:
                obj = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
            except orjson.JSONDecodeError as exc:
                raise bad_field(f"inputs[0].data[{i}]", f"not a JSON object: {exc}") from exc
            out.append(obj)
        return out
    columns: dict[str, list[Any]] = {}
    n = None
    for i, tensor in enumerate(inputs):
        values = _flat(tensor.data, tensor.shape, f"inputs[{i}] ({tensor.name})")
        if n is None:
            n = len(values)
            if n > max_instances:
                raise too_large(f"inputs[{i}]", f"{n} instances exceed the limit of {max_instances} per request")
        elif len(values) != n:
            raise bad_field(f"inputs[{i}] ({tensor.name})", f"has {len(values)} values, inputs[0] has {n}")
        if tensor.datatype == "BYTES":
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        elif tensor.datatype == "BOOL":
            values = [bool(v) if isinstance(v, (int, bool)) else v for v in values]
        columns[tensor.name] = values
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def v1_response(scored: Scored, name: str, model_version: int, view_version: int) -> dict[str, Any]:
    out: dict[str, Any] = {"predictions": scored.predictions}
    if scored.labels is not None:
        out["labels"] = scored.labels
    out.update(defaultsUsed=scored.defaults_used, model=name, modelVersion=model_version, featureViewVersion=view_version)
    return out


def _label_tensor(labels: list[Any]) -> InferOutput:
    if all(isinstance(v, (int, bool)) for v in labels):
        return InferOutput("labels", [len(labels)], "INT64", data=[int(v) for v in labels])
    return InferOutput("labels", [len(labels)], "BYTES", data=[str(v) for v in labels])


def v2_response(
    scored: Scored, request: InferRequest, name: str, model_version: int, view: str, view_version: int
) -> InferResponse:
    n = len(scored.predictions)
    numeric = all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in scored.predictions)
    outputs = [
        InferOutput("predictions", [n], "FP64", data=[float(p) for p in scored.predictions])
        if numeric
        else InferOutput("predictions", [n], "BYTES", data=[str(p) for p in scored.predictions]),
    ]
    if scored.labels is not None:
        outputs.append(_label_tensor(scored.labels))
    outputs.append(InferOutput("defaults_used", [n], "BOOL", data=list(scored.defaults_used)))
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=name,
        infer_outputs=outputs,
        model_version=str(model_version),
        parameters={"modelVersion": model_version, "featureView": view, "featureViewVersion": view_version},
    )
