"""The real KServe model server on loopback: v1 and v2 answers, both topologies, every bad request a 4xx,
readiness that refuses a skewed revision and says why, and the lookup metrics.

No control plane needed: each server is `python -m fti_pipelines.serving` in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from fti_pipelines.serving.launch import (
    free_port,
    predict,
    readiness,
    start_server_subprocess,
    stop_server,
    v2_body,
    wait_ready,
)
from support.serving_fixtures import DEFAULTS, build_revision
from support.wait import wait_until

pytestmark = pytest.mark.slow
NAME = "fraud-online"


class Server:
    def __init__(self, tmp, spec, env, role="combined", predictor_host=None, ready=True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = str(tmp / f"server-{role}-{self.port}.log")
        self.proc = start_server_subprocess(spec, env, self.port, role=role, predictor_host=predictor_host, log_path=self.log)
        if ready:
            wait_ready(self.url, spec["name"], timeout=120, process=self.proc, log_path=self.log)

    def stop(self):
        stop_server(self.proc)


@pytest.fixture(scope="module")
def revision(tmp_path_factory):
    return build_revision(tmp_path_factory.mktemp("served"), missing_entity="reject")


@pytest.fixture(scope="module")
def combined(revision, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("logs"), revision.spec, revision.env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def expected(revision, instances):
    rows = np.array([revision.expected_row(i["cc_num"], i["amount"], i["category"]) for i in instances], dtype=object)
    proba = revision.pipeline.predict_proba(rows)
    return proba[:, 1].tolist(), [int(c) for c in revision.pipeline.classes_[proba.argmax(axis=1)]]


INSTANCES = [
    {"cc_num": 1000, "amount": 42.0, "category": "online"},
    {"cc_num": 1013, "amount": 880.5, "category": "travel"},
    {"cc_num": 1049, "amount": 3.25, "category": "grocery"},
]


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_answers_match_the_model_called_in_process(revision, combined, protocol):
    answer = predict(combined.url, NAME, INSTANCES, protocol=protocol)
    probs, labels = expected(revision, INSTANCES)
    assert answer["predictions"] == pytest.approx(probs, rel=1e-9)
    assert answer["labels"] == labels
    assert answer["defaultsUsed"] == [False, False, False]
    assert (answer["modelVersion"], answer["featureViewVersion"]) == (1, 1)


def test_v2_answer_carries_model_version_and_tensors(combined, client):
    r = client.post(f"{combined.url}/v2/models/{NAME}/infer", json=v2_body(INSTANCES[:1]))
    assert r.status_code == 200
    body = r.json()
    assert body["model_name"] == NAME and body["model_version"] == "1"
    assert body["parameters"] == {"modelVersion": 1, "featureView": "fraud", "featureViewVersion": 1}
    assert {o["name"]: o["datatype"] for o in body["outputs"]} == {
        "predictions": "FP64",
        "labels": "INT64",
        "defaults_used": "BOOL",
    }


V1_BAD = [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, "body"),
    (b'{"rows": []}', 400, "instances"),
    (b'{"instances": []}', 400, "instances"),
    (b'{"instances": [{"amount": 1.0, "category": "online"}]}', 400, "instances[0].cc_num"),
    (b'{"instances": [{"cc_num": "1000", "amount": 1.0, "category": "online"}]}', 400, "instances[0].cc_num"),
    (b'{"instances": [{"cc_num": 1000, "amount": "1.0", "category": "online"}]}', 400, "instances[0].amount"),
    (b'{"instances": [{"cc_num": 1000, "amount": 1.0}]}', 400, "instances[0].category"),
    (
        (
            b'{"instances": [{"cc_num": 1000, "amount": 1.0, "category": "online"}, {"cc_num": 777, "amount": 1.0, '
            b'"category": "online"}]}'
        ),
        404,
        "instances[1].cc_num",
    ),
    (json.dumps({"instances": INSTANCES * 334}).encode(), 413, "instances"),
    (b'{"instances": "' + b"x" * (5 * 1024 * 1024) + b'"}', 413, "body"),
]


@pytest.mark.parametrize("body, status, field", V1_BAD, ids=[f"{s}-{f}" for _, s, f in V1_BAD])
def test_bad_v1_requests_get_their_4xx(combined, client, body, status, field):
    r = client.post(f"{combined.url}/v1/models/{NAME}:predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["error"]
    if field is not None:
        assert answer["field"] == field and field in answer["error"]


def _tensor(name, datatype, data, shape=None):
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


V2_BAD = [
    ({"inputs": []}, 400, "inputs"),
    ({"inputs": [_tensor("cc_num", "INT64", [1000, 1001], [3])]}, 400, "inputs[0] (cc_num)"),
    ({"inputs": [_tensor("cc_num", "INT64", [1000]), _tensor("amount", "FP64", [1.0, 2.0])]}, 400, "inputs[1] (amount)"),
    (
        {
            "inputs": [
                _tensor("cc_num", "INT64", [777]),
                _tensor("amount", "FP64", [1.0]),
                _tensor("category", "BYTES", ["online"]),
            ]
        },
        404,
        "inputs[0].cc_num",
    ),
    (
        {
            "inputs": [
                _tensor("cc_num", "BYTES", ["1000"]),
                _tensor("amount", "FP64", [1.0]),
                _tensor("category", "BYTES", ["online"]),
            ]
        },
        400,
        "inputs[0].cc_num",
    ),
    ({"inputs": [_tensor("amount", "FP64", [1.0])]}, 400, "inputs[0].cc_num"),
]


@pytest.mark.parametrize("body, status, field", V2_BAD, ids=[f"{s}-{f}" for _, s, f in V2_BAD])
def test_bad_v2_requests_get_their_4xx(combined, client, body, status, field):
    r = client.post(f"{combined.url}/v2/models/{NAME}/infer", json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


def test_malformed_v2_json_is_a_4xx(combined, client):
    r = client.post(f"{combined.url}/v2/models/{NAME}/infer", content=b"{nope", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_metrics_report_lookup_latency_missing_entities_and_feature_age(combined, client):
    predict(combined.url, NAME, INSTANCES)
    client.post(
        f"{combined.url}/v1/models/{NAME}:predict", json={"instances": [{"cc_num": 5, "amount": 1.0, "category": "online"}]}
    )
    text = client.get(f"{combined.url}/metrics").text
    labels = 'feature_view="fraud",feature_view_version="1",model="fraud",model_version="1"'
    assert f"fti_feature_lookup_seconds_count{{{labels}}}" in text
    assert any(
        line.startswith("fti_missing_entities_total")
        and 'action="rejected"' in line
        and 'feature_group="card_transactions@v2"' in line
        and not line.endswith(" 0.0")
        for line in text.splitlines()
    )
    assert 'fti_feature_age_seconds_count{feature_group="card_profiles@v1"' in text
    assert "fti_serving_ready{" in text and "request_predict_seconds" in text  # KServe's own histograms too


def test_missing_entity_defaults_are_served_and_reported(tmp_path):
    rev = build_revision(tmp_path, missing_entity="defaults", defaults=DEFAULTS)
    server = Server(tmp_path, rev.spec, rev.env)
    try:
        answer = predict(server.url, NAME, [{"cc_num": 777, "amount": 5.0, "category": "grocery"}, INSTANCES[0]])
        assert answer["defaultsUsed"] == [True, False]
        rows = np.array([[5.0, "grocery", 0.0, 0, "26-40", 2500.0], rev.expected_row(1000)], dtype=object)
        assert answer["predictions"] == pytest.approx(rev.pipeline.predict_proba(rows)[:, 1].tolist(), rel=1e-9)
    finally:
        server.stop()


def test_skewed_revision_stays_up_but_not_ready_with_its_reason(tmp_path, client):
    rev = build_revision(tmp_path, card_view_version=1, view_version=2)
    server = Server(tmp_path, rev.spec, rev.env, ready=False)
    try:
        # The server answers (it is live) but every readiness endpoint refuses, with the reason.
        def refused_with_reason() -> bool:
            assert server.proc.poll() is None, Path(server.log).read_text()[-2000:]
            ready, reason = readiness(server.url, NAME, client)
            assert not ready
            return "FeatureViewMismatch" in reason

        wait_until(
            refused_with_reason,
            timeout=120,
            interval=0.1,
            ignore=(httpx.TransportError,),
            description="the skewed revision's readiness reason",
        )
        v1 = client.get(f"{server.url}/v1/models/{NAME}")
        health = client.get(f"{server.url}/v2/health/ready")
        assert v1.status_code == 503 and "trained on feature view fraud v1" in v1.json()["error"]
        assert health.status_code == 503 and "FeatureViewMismatch" in health.json()["error"]
        assert client.get(f"{server.url}/v2/health/live").status_code == 200
        r = client.post(f"{server.url}/v1/models/{NAME}:predict", json={"instances": INSTANCES})
        assert r.status_code == 503  # never serves with mismatched features
        assert "FeatureViewMismatch" in Path(server.log).read_text()
    finally:
        server.stop()


def test_transformer_in_front_of_the_predictor(revision, tmp_path):
    predictor = Server(tmp_path, revision.spec, revision.env, role="predictor")
    transformer = None
    try:
        # The predictor alone takes plain ordered rows, like KServe's sklearn runtime.
        rows = [revision.expected_row(1000)]
        r = httpx.post(f"{predictor.url}/v1/models/{NAME}:predict", json={"instances": rows})
        assert r.status_code == 200
        probs, labels = expected(revision, INSTANCES)
        assert r.json()["predictions"][0][1] == pytest.approx(probs[0], rel=1e-9)
        transformer = Server(
            tmp_path, revision.spec, revision.env, role="transformer", predictor_host=f"127.0.0.1:{predictor.port}"
        )
        for protocol in ("v1", "v2"):
            answer = predict(transformer.url, NAME, INSTANCES, protocol=protocol)
            assert answer["predictions"] == pytest.approx(probs, rel=1e-9)
            assert answer["labels"] == labels
            assert (answer["modelVersion"], answer["featureViewVersion"]) == (1, 1)
        r = httpx.post(
            f"{transformer.url}/v1/models/{NAME}:predict",
            json={"instances": [{"cc_num": 777, "amount": 1.0, "category": "online"}]},
        )
        assert r.status_code == 404 and r.json()["field"] == "instances[0].cc_num"
    finally:
        if transformer:
            transformer.stop()
        predictor.stop()
