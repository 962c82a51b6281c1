"""The prediction log: every field of a logged row, the bounded queue, sampling, atomic files, the batch log."""

from __future__ import annotations

import asyncio
import json
import random
import threading

import pandas as pd
import pyarrow as pa
import pytest

from fti_pipelines.contract import PipelineContext, PipelineError
from fti_pipelines.serving.combined import CombinedModel
from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.prediction_log import LogSettings, PredictionLogger, feature_kinds
from fti_pipelines.serving.request_id import CURRENT, RequestIdMiddleware
from fti_pipelines.serving.revision import Revision
from fti_pipelines.store.prediction_log import PredictionLogFiles, log_schema, read_log
from fti_pipelines.store.tenancy import predictions_dir
from support.serving_fixtures import COLUMNS, DEFAULTS, PROFILES, TX, build_revision, feature_frames

NAME = "fraud-online"


def served_model(rev, log_uri, **settings):
    config = ServingConfig.from_spec(rev.spec, {})
    model = CombinedModel(NAME, Revision(config, rev.artifact_store, rev.online_store), LogSettings(log_uri, **settings))
    assert model.load(), model.revision.reason
    return model


def score(model, instances, request_id="req-1"):
    token = CURRENT.set((request_id, 0.0)) if request_id else None
    try:
        prepared = model.predict(model.preprocess({"instances": instances}))
        return model.postprocess(prepared)
    finally:
        if token is not None:
            CURRENT.reset(token)


def test_a_logged_row_has_every_field_of_the_contract(tmp_path):
    rev = build_revision(tmp_path, missing_entity="defaults", defaults=DEFAULTS)
    log_uri = f"file://{tmp_path}/predictions/{NAME}"
    model = served_model(rev, log_uri, flush_seconds=3600)
    answer = score(model, [rev.instance(1000, 42.0, "online"), rev.instance(777, 5.0, "grocery")], "abc-123")
    model.stop()  # the server's shutdown: writes what is queued
    table = read_log(log_uri)
    assert table.schema == log_schema(feature_kinds(model.revision.plan))
    rows = table.to_pylist()
    assert len(rows) == 2
    known, unknown = rows
    assert {r["request_id"] for r in rows} == {"abc-123"}
    assert known["logged_at"].tzinfo is not None
    assert (known["model_version"], known["feature_view_version"], known["source"]) == (1, 1, "online")
    assert json.loads(known["entity"]) == {"cc_num": 1000}
    expected = rev.expected_row(1000, 42.0, "online")
    assert [known[f"f.{c}"] for c in COLUMNS] == [float(v) if not isinstance(v, str) else v for v in expected]
    assert known["defaulted"] == [] and unknown["defaulted"] == [c for c in COLUMNS if c in DEFAULTS]
    assert unknown["f.amount"] == 5.0 and unknown["f.age_group"] == DEFAULTS["age_group"]
    assert [known["score"], unknown["score"]] == pytest.approx(answer["predictions"], rel=1e-12)
    assert known["latency_ms"] > 0
    # The partition path is the contract's: model version, feature-view version, date.
    files = list((tmp_path / "predictions" / NAME).rglob("*.parquet"))
    assert len(files) == 1
    day = known["logged_at"].date().isoformat()
    assert files[0].parent.relative_to(tmp_path / "predictions" / NAME).as_posix() == (
        f"model_version=1/feature_view_version=1/date={day}"
    )


class BlockingFiles(PredictionLogFiles):
    """A store that does not answer until released: the writer thread is stuck in it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, table):
        self.entered.set()
        assert self.release.wait(60)
        return super().write(table)


def small_logger(tmp_path, files_cls=PredictionLogFiles, **settings):
    features = [("amount", True), ("category", False)]
    files = files_cls(f"file://{tmp_path}/log", 3, 2, "pod-a")
    labels = {"model": "m", "model_version": "3", "feature_view": "v", "feature_view_version": "2"}
    return PredictionLogger(LogSettings(f"file://{tmp_path}/log", **settings), files, features, [], labels)


def test_a_full_queue_drops_and_counts_without_blocking_the_request(tmp_path):
    logger = small_logger(tmp_path, BlockingFiles, queue_rows=4, flush_seconds=3600)
    logger.record([{"k": 0}], [[1.0, "a"]], [()], [0.5])
    flusher = threading.Thread(target=logger.flush)
    flusher.start()
    assert logger.files.entered.wait(60)  # the writer is stuck in the store from here on
    before = logger.dropped._value.get()
    for i in range(10):  # each call returns while the writer is blocked: nothing waits for it
        logger.record([{"k": i}], [[float(i), "b"]], [()], [0.1])
    assert logger.queued == 4
    assert logger.dropped._value.get() - before == 6
    logger.files.release.set()
    flusher.join()
    logger.close()
    assert read_log(f"file://{tmp_path}/log").num_rows == 5


def test_sample_rate_keeps_its_share_of_requests(tmp_path):
    logger = small_logger(tmp_path, sample_rate=0.3, queue_rows=100_000)
    logger._rng = random.Random(7).random
    n = 20_000
    for i in range(n):
        logger.record([{"k": i}], [[1.0, "a"]], [()], [0.5])
    # Binomial(20000, 0.3): standard deviation 64.8; five of them either side.
    assert abs(logger.queued - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5
    logger = small_logger(tmp_path, sample_rate=0.0)
    logger.record([{"k": 1}], [[1.0, "a"]], [()], [0.5])
    assert logger.queued == 0


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path):
    logger = small_logger(tmp_path, queue_rows=100)

    class Down(PredictionLogFiles):
        def write(self, table):
            raise OSError("store unreachable")

    good = logger.files
    logger.files = Down(good.store.uri, 3, 2, "pod-a")
    logger.record([{"k": 1}, {"k": 2}], [[1.0, "a"], [2.0, "b"]], [(), ()], [0.1, 0.2], {"x-request-id": "r1"})
    assert logger.flush() == 0
    logger.files = good
    assert logger.flush() == 2
    assert read_log(good.store.uri)["request_id"].to_pylist() == ["r1", "r1"]


def test_files_are_written_whole_and_never_seen_half_written(tmp_path):
    files = PredictionLogFiles(f"file://{tmp_path}/log", 1, 1, "pod/with spaces")
    logger = small_logger(tmp_path)
    logger.record([{"k": 1}], [[1.0, "a"]], [()], [0.5])
    urls = files.write(logger.table([logger._queue.popleft()]))
    (path,) = [u.removeprefix("file://") for u in urls]
    assert "pod-with-spaces" in path and path.endswith(".parquet")
    leftovers = [p.name for p in (tmp_path / "log").rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # the temporary file was renamed into place


def test_settings_from_the_environment():
    env = {"FTI_ARTIFACT_STORE": "file:///tmp/store"}
    assert LogSettings.from_env(env, NAME, "fraud") is None
    settings = LogSettings.from_env({**env, "FTI_PREDICTION_LOG": '{"sampleRate": 0.5, "flushSeconds": 2}'}, NAME, "fraud")
    assert settings == LogSettings(predictions_dir("file:///tmp/store", "fraud", NAME), 0.5, 2.0)
    assert settings.uri == "file:///tmp/store/namespaces/fraud/predictions/fraud-online"
    for bad in ("nope", "[1]", '{"sampleRate": 2}', '{"flushSeconds": 0}', '{"uri": "relative/path"}'):
        with pytest.raises(PipelineError) as err:
            LogSettings.from_env({**env, "FTI_PREDICTION_LOG": bad}, NAME, "fraud")
        assert err.value.reason == "InvalidPredictionLog"


async def _call(app, headers):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await RequestIdMiddleware(app)(scope, receive, send)
    return scope, dict(sent[0]["headers"]), sent[0]["status"]


def test_the_request_id_is_echoed_generated_and_kept_on_a_500():
    seen = []

    async def ok(scope, receive, send):
        seen.append(CURRENT.get()[0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def boom(scope, receive, send):
        raise RuntimeError("unhandled")

    scope, headers, status = asyncio.run(_call(ok, [(b"x-request-id", b"caller-7")]))
    assert (headers[b"x-request-id"], status, seen[-1]) == (b"caller-7", 200, "caller-7")
    scope, headers, status = asyncio.run(_call(ok, [(b"x-request-id", b"bad id\x01")]))
    generated = headers[b"x-request-id"]
    assert generated != b"bad id\x01" and len(generated) == 32 and seen[-1] == generated.decode()
    assert dict(scope["headers"])[b"x-request-id"] == generated  # the handlers see the id too
    scope, headers, status = asyncio.run(_call(boom, []))
    assert status == 500 and len(headers[b"x-request-id"]) == 32


def test_batch_inference_writes_the_same_log(tmp_path):
    from fti_pipelines.batch_inference.scoring import score_run
    from fti_pipelines.store.offline import FeatureStore
    from fti_pipelines.store.tenancy import namespace_store

    rev = build_revision(tmp_path)
    tx, profiles = feature_frames()
    fs = FeatureStore(namespace_store(rev.artifact_store, "default"))
    fs.ingest(TX[0], TX[1], tx, primary_key=["cc_num"], event_time="event_time", mode="full")
    fs.ingest(PROFILES[0], PROFILES[1], profiles, primary_key=["cc_num"], event_time="event_time", mode="full")
    (tmp_path / "input").mkdir()
    entities = pd.DataFrame({"cc_num": [1000, 1001, 99], "amount": [10.0, 20.0, 30.0], "category": ["online"] * 3})
    entities.to_parquet(tmp_path / "input" / "e.parquet", index=False)
    spec = {k: v for k, v in rev.spec.items() if k != "online"}
    spec.update(
        mode="batch",
        batch={
            "input": {"uri": f"file://{tmp_path}/input", "format": "parquet"},
            "output": {"uri": f"file://{tmp_path}/out", "format": "parquet"},
            "asOf": "latest",
        },
    )
    env = {
        "FTI_SPEC": json.dumps(spec),
        "FTI_ARTIFACT_STORE": rev.artifact_store,
        "FTI_RUN_ID": "batch-run-1",
        "FTI_PREDICTION_LOG": "{}",
    }
    result = score_run(PipelineContext.from_env(env))
    assert result["rowsLogged"] == 3
    log = read_log(predictions_dir(rev.artifact_store, "default", NAME)).sort_by("request_id").to_pylist()
    out = pa.concat_tables([pa.parquet.read_table(p) for p in sorted((tmp_path / "out").rglob("*.parquet"))]).to_pylist()
    assert [r["request_id"] for r in log] == ["batch-run-1:0", "batch-run-1:1", "batch-run-1:2"]
    assert {r["source"] for r in log} == {"batch"} and {r["latency_ms"] for r in log} == {None}
    assert [json.loads(r["entity"]) for r in log] == [{"cc_num": 1000}, {"cc_num": 1001}, {"cc_num": 99}]
    assert [r["score"] for r in log] == pytest.approx([r["prediction"] for r in out], rel=1e-12)
    assert log[0]["defaulted"] == [] and log[2]["defaulted"] == COLUMNS[2:]  # card 99 has no features
    assert log[2]["f.amount_sum_1d"] is None and log[0]["f.amount"] == 10.0
