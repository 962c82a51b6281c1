"""The `combined` role: feature lookup and prediction in one kserve.Model (one hop).

KServe's handler chain does the work: `preprocess` validates the request and looks up
the features (KServe's preprocess histogram therefore times the lookup), `predict`
runs the model on the rows, `postprocess` encodes the v1 or v2 answer with the
revision that answered. The handlers are plain functions (not coroutines): all of it
is CPU-bound and microseconds long, so KServe calls them inline on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kserve
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferRequest

from .lookup import LookupResult
from .predictor import Scorer
from .protocol import Scored, v1_instances, v1_response, v2_instances, v2_response
from .revision import Revision


@dataclass
class Prepared:
    """State carried from preprocess to postprocess within one request."""

    lookup: LookupResult
    request: InferRequest | None  # None for v1
    scored: Scored | None = None


class FeatureModelBase(kserve.Model):
    """Readiness and request decoding shared by the combined and transformer roles."""

    def __init__(self, name: str, revision: Revision):
        super().__init__(name)
        self.revision = revision

    def _activate(self) -> None:
        """Hook: prepare request-path objects once the revision passed its checks."""

    def load(self) -> bool:
        if self.revision.load():
            self._activate()
        self.ready = self.revision.ready
        return self.ready

    def start(self) -> None:  # KServe's default start() would mark us ready unconditionally
        pass

    async def healthy(self) -> bool:
        if not self.ready and self.revision.recheck():
            self._activate()
            self.ready = True
        if not self.ready:
            # The reason reaches /v1/models/<name>, /v2/models/<name>/ready and /v2/health/ready.
            raise ModelNotReady(self.name, self.revision.reason)
        return True

    def prepare(self, payload: Any) -> Prepared:
        lookup = self.revision.lookup
        assert lookup is not None
        if isinstance(payload, InferRequest):
            instances = lookup.validate(v2_instances(payload, self.revision.config.max_instances), "inputs")
            return Prepared(lookup.lookup(instances, "inputs"), payload)
        instances = lookup.validate(v1_instances(payload))
        return Prepared(lookup.lookup(instances), None)

    def encode(self, prepared: Prepared) -> Any:
        cfg = self.revision.config
        assert prepared.scored is not None
        if prepared.request is None:
            return v1_response(prepared.scored, self.name, cfg.model_version, cfg.feature_view_version)
        return v2_response(
            prepared.scored, prepared.request, self.name, cfg.model_version, cfg.feature_view_name, cfg.feature_view_version
        )


class CombinedModel(FeatureModelBase):
    def __init__(self, name: str, revision: Revision):
        super().__init__(name, revision)
        self.scorer: Scorer | None = None

    def _activate(self) -> None:
        self.scorer = Scorer(self.revision.pipeline, compile_model=self.revision.config.compile_model)

    def preprocess(self, payload: Any, headers: dict | None = None) -> Prepared:
        return self.prepare(payload)

    def predict(self, prepared: Prepared, headers: dict | None = None) -> Prepared:
        assert self.scorer is not None
        predictions, labels = self.scorer.score(prepared.lookup.rows)
        prepared.scored = Scored(predictions, labels, prepared.lookup.defaults_used)
        return prepared

    def postprocess(self, prepared: Prepared, headers: dict | None = None, response_headers: dict | None = None) -> Any:
        return self.encode(prepared)
