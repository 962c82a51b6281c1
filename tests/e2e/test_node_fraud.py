"""The fraud example end to end on the real node: ``helm install`` of the chart with the
built images, ``kubectl apply`` of examples/fraud, and every pipeline in its own image
as a real container — feature Jobs, the training Job, the model server behind the KServe
stand-in (tests/node/kserve_standin.py), batch scoring — with the data volume a hostPath PV and the
online store a Redis on the node. No pod runner.
"""

from __future__ import annotations

import os
import time

import pytest

from controlplane.fixtures import _report

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TAG = os.environ.get("FTI_IMAGE_TAG", "dev")


@pytest.fixture(scope="module")
def fraud(node, node_images, kserve_standin, request):
    from node.fraud import FraudOnNode, image_refs

    node_images(*image_refs(TAG))
    run = FraudOnNode(node, TAG, log=lambda line: _report(request, line))
    try:
        run.start_redis()
        run.storage()
        t0 = time.monotonic()
        run.install_operator()
        run.apply_example()
        run.started = t0
        yield run
    finally:
        run.close()


def test_feature_pipelines_ingest_in_their_image(fraud):
    fraud.run_now("featurepipeline", "card-transactions", "card-profiles")
    for name in ("card-transactions", "card-profiles"):
        fp = fraud.wait_ready("featurepipeline", name, timeout=900)
        versions = fp["status"].get("versions") or fp["status"].get("featureGroupVersions") or []
        assert versions, fp["status"]


def test_training_registers_a_validated_model(fraud):
    tp = fraud.train(timeout=1200)
    assert "Validated" in [v["phase"] for v in tp["status"]["modelVersions"]], tp["status"]


def test_online_inference_serves_real_predictions(fraud, request):
    fraud.wait_ready("inferenceservice.fti.dev", "fraud-online", timeout=600)
    answer = fraud.predict([{"cc_num": 4000000000000493, "amount": 538.67, "category": "electronics"}])
    _report(request, f"fraud: prediction {answer}; end to end {time.monotonic() - fraud.started:.0f}s")
    assert answer.get("predictions"), answer
    rss, millicores = fraud.operator_usage()
    _report(request, f"fraud: operator pod at rest with the example: RSS {rss:.0f} MiB, CPU {millicores:.0f}m")


def test_batch_scoring_runs_in_its_image(fraud, request):
    isvc = fraud.score_batch(timeout=600)
    run = isvc["status"]["lastRun"]
    _report(request, f"fraud: batch scoring {run}")
    assert run["succeeded"] and run["rowsScored"] > 0, run
    assert isvc["status"]["stable"]["model"] == run["modelVersion"] == 1, isvc["status"]
