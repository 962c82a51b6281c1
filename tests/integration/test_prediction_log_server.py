"""The prediction log of a real model server process: request ids round trip, errors carry theirs,
a SIGTERM loses no queued row, a full queue drops (and counts) rather than blocks.

No control plane needed: the server is `python -m fti_pipelines.serving` in a subprocess.
"""

from __future__ import annotations

import json

import httpx
import pytest

from fti_pipelines.serving.launch import free_port, start_server_subprocess, stop_server, wait_ready
from fti_pipelines.store.prediction_log import read_log
from support.serving_fixtures import build_revision

pytestmark = pytest.mark.slow
NAME = "fraud-online"
# How long a SIGTERMed server may take to flush and exit before it is killed: a deadline for a
# loaded CI machine (the flush writes Parquet through the artifact store), not a speed check.
STOP_DEADLINE = 60.0


@pytest.fixture(scope="module")
def revision(tmp_path_factory):
    return build_revision(tmp_path_factory.mktemp("served"), missing_entity="reject")


def start(tmp_path, revision, log_settings):
    port = free_port()
    log_path = str(tmp_path / f"server-{port}.log")
    env = {**revision.env, "FTI_PREDICTION_LOG": json.dumps(log_settings)}
    proc = start_server_subprocess(revision.spec, env, port, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, NAME, timeout=120, process=proc, log_path=log_path)
    return proc, url


def test_sigterm_writes_every_queued_row_and_ids_round_trip(tmp_path, revision):
    uri = f"file://{tmp_path}/predictions/{NAME}"
    proc, url = start(tmp_path, revision, {"uri": uri, "flushSeconds": 3600})  # only the shutdown flushes
    sent, generated = [], []
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(40):
                body = {"instances": [revision.instance(1000 + i % 50, float(i), "online")]}
                if i % 2:
                    r = client.post(f"{url}/v1/models/{NAME}:predict", json=body)
                    generated.append(r.headers["x-request-id"])
                else:
                    rid = f"caller-{i}"
                    r = client.post(f"{url}/v1/models/{NAME}:predict", json=body, headers={"X-Request-Id": rid})
                    assert r.headers["x-request-id"] == rid
                    sent.append(rid)
                assert r.status_code == 200, r.text
            # Errors carry their id too: a 400, a 404 (unknown entity), a 404 (unknown model).
            bad = client.post(f"{url}/v1/models/{NAME}:predict", json={"rows": []}, headers={"X-Request-Id": "bad-1"})
            unknown = client.post(f"{url}/v1/models/{NAME}:predict", json={"instances": [revision.instance(5)]})
            nomodel = client.post(f"{url}/v1/models/nope:predict", json={"instances": []})
            assert (bad.status_code, bad.headers["x-request-id"]) == (400, "bad-1")
            assert unknown.status_code == 404 and unknown.headers["x-request-id"]
            assert nomodel.status_code == 404 and nomodel.headers["x-request-id"]
            assert client.get(f"{url}/v2/health/ready").headers["x-request-id"]
            assert read_log(uri).num_rows == 0  # nothing flushed yet: the rows are all in the queue
    finally:
        assert stop_server(proc, timeout=STOP_DEADLINE) == 0
    table = read_log(uri)
    assert sorted(table["request_id"].to_pylist()) == sorted(sent + generated)  # 40 rows, failed requests not logged
    assert len(set(generated)) == 20 and all(len(g) == 32 for g in generated)


def test_a_full_queue_drops_and_counts_while_requests_are_answered(tmp_path, revision):
    uri = f"file://{tmp_path}/predictions/{NAME}"
    proc, url = start(tmp_path, revision, {"uri": uri, "flushSeconds": 3600, "queueRows": 3})
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(8):
                r = client.post(f"{url}/v1/models/{NAME}:predict", json={"instances": [revision.instance(1000 + i)]})
                assert r.status_code == 200, r.text
            metrics = client.get(f"{url}/metrics").text
    finally:
        assert stop_server(proc, timeout=STOP_DEADLINE) == 0
    dropped = [
        line for line in metrics.splitlines() if line.startswith("fti_prediction_log_dropped_total{") and "queue_full" in line
    ]
    assert len(dropped) == 1 and float(dropped[0].rsplit(" ", 1)[1]) == 5.0
    assert read_log(uri).num_rows == 3


def test_sampled_log_and_the_written_counter(tmp_path, revision):
    uri = f"file://{tmp_path}/predictions/{NAME}"
    proc, url = start(tmp_path, revision, {"uri": uri, "flushSeconds": 3600, "sampleRate": 0.0})
    try:
        with httpx.Client(timeout=30) as client:
            r = client.post(f"{url}/v1/models/{NAME}:predict", json={"instances": [revision.instance(1001)]})
            assert r.status_code == 200 and r.headers["x-request-id"]
            assert "fti_prediction_log_rows_written_total" in client.get(f"{url}/metrics").text
    finally:
        assert stop_server(proc, timeout=STOP_DEADLINE) == 0
    assert read_log(uri).num_rows == 0
