"""The combined role's handler chain: our kserve.Model.__call__ answers and counts as KServe's does."""

from __future__ import annotations

import asyncio

import kserve
import pytest
from prometheus_client import REGISTRY

from fti_pipelines.serving.combined import CombinedModel
from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.errors import RequestError
from fti_pipelines.serving.revision import Revision
from support.serving_fixtures import build_revision

NAME = "combined-call"
HISTOGRAMS = ("request_preprocess_seconds", "request_predict_seconds", "request_postprocess_seconds")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rev = build_revision(tmp_path_factory.mktemp("combined"))
    served = CombinedModel(NAME, Revision(ServingConfig.from_spec(rev.spec, {}), rev.artifact_store, rev.online_store))
    assert served.load(), served.revision.reason
    served.known = next(iter(rev.online_rows))  # type: ignore[attr-defined]
    return served


def counts() -> list[float]:
    return [REGISTRY.get_sample_value(f"{h}_count", {"model_name": NAME}) or 0.0 for h in HISTOGRAMS]


def test_a_prediction_answers_and_is_timed_like_kserves_own_call(model):
    body = {"instances": [{"cc_num": model.known, "amount": 42.0, "category": "online"}]}
    before = counts()
    ours = asyncio.run(model(body))
    assert counts() == [c + 1 for c in before]  # each handler's histogram, once
    kserves = asyncio.run(kserve.Model.__call__(model, body))
    assert ours == kserves
    assert counts() == [c + 2 for c in before]


def test_a_refused_request_is_timed_up_to_the_handler_that_refused_it(model):
    before = counts()
    with pytest.raises(RequestError) as refused:
        asyncio.run(model({"instances": [{"cc_num": -1, "amount": 42.0, "category": "online"}]}))
    assert refused.value.status == 404
    assert counts() == [before[0] + 1, before[1], before[2]]  # as KServe's timers: preprocess only
