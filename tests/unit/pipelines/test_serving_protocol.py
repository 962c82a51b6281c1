"""v1/v2 request decoding and response encoding, predictor answers, and the body-size limit."""

from __future__ import annotations

import asyncio

import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from fti_pipelines.serving.errors import BodyLimitMiddleware, PredictorError, RequestError
from fti_pipelines.serving.launch import normalize_v2, v2_body
from fti_pipelines.serving.predictor import _rows_from_v2
from fti_pipelines.serving.protocol import Scored, v1_instances, v1_response, v2_instances, v2_response
from fti_pipelines.serving.transformer import scored_from_predictor


def request(*inputs):
    return InferRequest(model_name="m", infer_inputs=list(inputs), request_id="r1")


def test_v2_columns_become_instances():
    req = request(InferInput("cc_num", [2], "INT64", data=[1, 2]), InferInput("category", [2, 1], "BYTES", data=[["a"], ["b"]]))
    assert v2_instances(req, 10) == [{"cc_num": 1, "category": "a"}, {"cc_num": 2, "category": "b"}]


def test_v2_single_json_tensor():
    req = request(InferInput("instances", [1], "BYTES", data=['{"cc_num": 5, "amount": 1.5}']))
    assert v2_instances(req, 10) == [{"cc_num": 5, "amount": 1.5}]
    bad = request(InferInput("instances", [1], "BYTES", data=["{nope"]))
    with pytest.raises(RequestError) as err:
        v2_instances(bad, 10)
    assert err.value.field == "inputs[0].data[0]"


def test_v2_limits_and_shapes():
    with pytest.raises(RequestError) as err:
        v2_instances(request(InferInput("cc_num", [3], "INT64", data=[1, 2, 3])), 2)
    assert err.value.status == 413
    with pytest.raises(RequestError) as err:
        v2_instances(request(InferInput("cc_num", [2, 2], "INT64", data=[[1, 2], [3, 4]])), 10)
    assert err.value.status == 400 and "cc_num" in err.value.field


def test_v2_column_tensors_of_different_lengths_are_refused_not_truncated():
    req = request(InferInput("a", [2], "FP64", data=[1.0, 2.0]), InferInput("b", [1], "FP64", data=[3.0]))
    with pytest.raises(RequestError) as err:
        _rows_from_v2(req, 2)
    assert err.value.status == 400 and err.value.field == "inputs" and "[2, 1]" in str(err.value)
    assert _rows_from_v2(request(InferInput("a", [1], "FP64", data=[1.0]), InferInput("b", [1], "FP64", data=[3.0])), 2) == [
        [1.0, 3.0]
    ]


def test_v1_needs_an_object_with_instances():
    assert v1_instances({"instances": [1]}) == [1]
    for body, field in (([1], "body"), ({"inputs": []}, "instances")):
        with pytest.raises(RequestError) as err:
            v1_instances(body)
        assert err.value.field == field


def test_responses_say_which_revision_answered():
    scored = Scored([0.25], [0], [True])
    assert v1_response(scored, "svc", 4, 2) == {
        "predictions": [0.25],
        "labels": [0],
        "defaultsUsed": [True],
        "model": "svc",
        "modelVersion": 4,
        "featureViewVersion": 2,
    }
    rest, _ = v2_response(scored, request(InferInput("cc_num", [1], "INT64", data=[1])), "svc", 4, "fraud", 2).to_rest()
    assert rest["model_version"] == "4" and rest["id"] == "r1"
    assert normalize_v2(rest) == {
        "predictions": [0.25],
        "labels": [0],
        "defaultsUsed": [True],
        "model": "svc",
        "modelVersion": 4,
        "featureViewVersion": 2,
    }


def test_v2_body_types_each_column():
    body = v2_body([{"cc_num": 1, "amount": 2.5, "category": "x", "flag": True}])
    assert [(t["name"], t["datatype"]) for t in body["inputs"]] == [
        ("cc_num", "INT64"),
        ("amount", "FP64"),
        ("category", "BYTES"),
        ("flag", "BOOL"),
    ]


def test_predictor_answers_probability_rows_or_labels():
    s = scored_from_predictor([[0.9, 0.1], [0.2, 0.8]], [False, True])
    assert s.predictions == [0.1, 0.8] and s.labels == [0, 1] and s.defaults_used == [False, True]
    assert scored_from_predictor([1, 0], [False, False]).predictions == [1, 0]
    with pytest.raises(PredictorError):
        scored_from_predictor([0.5], [False, False])


def test_body_limit_refuses_by_declared_and_streamed_size():
    sent = []

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        sent.append("app")

    async def send(message):
        sent.append(message)

    mw = BodyLimitMiddleware(app, max_bytes=10)
    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"11")]}
    asyncio.run(mw(scope, None, send))
    assert sent[0]["status"] == 413 and "app" not in sent

    chunks = iter(
        [
            {"type": "http.request", "body": b"x" * 6, "more_body": True},
            {"type": "http.request", "body": b"x" * 6, "more_body": False},
        ]
    )

    async def receive():
        return next(chunks)

    with pytest.raises(RequestError) as err:
        asyncio.run(mw({"type": "http", "method": "POST", "headers": []}, receive, send))
    assert err.value.status == 413 and err.value.field == "body"
