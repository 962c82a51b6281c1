"""The `combined` role: feature lookup and prediction in one kserve.Model (one hop).

KServe's handler chain does the work: `preprocess` validates the request and looks up
the features (KServe's preprocess histogram therefore times the lookup), `predict`
runs the model on the rows, `postprocess` encodes the v1 or v2 answer with the
revision that answered. The handlers are plain functions (not coroutines): all of it
is CPU-bound and microseconds long, so KServe calls them inline on the event loop.
With a prediction log (serving/prediction_log.py) every scored request's rows are queued
for it right after scoring; the transformer role does the same, the predictor role does
not log (its transformer has the entity keys and logs the whole row).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import kserve
from kserve.errors import ModelNotReady
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferRequest

from .lookup import LookupResult
from .prediction_log import LogSettings, PredictionLogger
from .predictor import Scorer
from .protocol import Scored, v1_instances, v1_response, v2_instances, v2_response
from .revision import Revision


@dataclass
class Prepared:
    """State carried from preprocess to postprocess within one request."""

    lookup: LookupResult
    request: InferRequest | None  # None for v1
    scored: Scored | None = None
    started: float | None = None  # time.perf_counter() at preprocess, when logging


class FeatureModelBase(kserve.Model):
    """Readiness and request decoding shared by the combined and transformer roles."""

    def __init__(self, name: str, revision: Revision, prediction_log: LogSettings | None = None):
        super().__init__(name)
        self.revision = revision
        self.log_settings = prediction_log
        self.prediction_log: PredictionLogger | None = None

    def _activate(self) -> None:
        """Prepare request-path objects once the revision passed its checks (subclasses extend it)."""
        if self.log_settings is not None and self.prediction_log is None and self.revision.plan is not None:
            self.prediction_log = PredictionLogger.for_revision(self.log_settings, self.revision.plan, self.revision.config)
            self.prediction_log.start()

    def stop(self) -> None:
        """KServe's unload at shutdown: write what the prediction log still holds."""
        super().stop()
        if self.prediction_log is not None:
            self.prediction_log.close()

    def log_scored(self, prepared: Prepared, headers: dict | None) -> None:
        """Queue the request's rows for the prediction log (no-op without one)."""
        logger = self.prediction_log
        if logger is not None and prepared.scored is not None:
            lookup = prepared.lookup
            logger.record(lookup.keys, lookup.rows, lookup.defaulted, prepared.scored.predictions, headers, prepared.started)

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
            return Prepared(lookup.lookup(instances, "inputs"), payload, started=self._started())
        instances = lookup.validate(v1_instances(payload))
        return Prepared(lookup.lookup(instances), None, started=self._started())

    def _started(self) -> float | None:
        return time.perf_counter() if self.prediction_log is not None else None

    def encode(self, prepared: Prepared) -> Any:
        cfg = self.revision.config
        assert prepared.scored is not None
        if prepared.request is None:
            return v1_response(prepared.scored, self.name, cfg.model_version, cfg.feature_view_version)
        return v2_response(
            prepared.scored, prepared.request, self.name, cfg.model_version, cfg.feature_view_name, cfg.feature_view_version
        )


class CombinedModel(FeatureModelBase):
    def __init__(self, name: str, revision: Revision, prediction_log: LogSettings | None = None):
        super().__init__(name, revision, prediction_log)
        self.scorer: Scorer | None = None
        # KServe's handler histograms, bound to this model once (kserve.Model.__call__ looks
        # the children up by label, and inspects each handler, on every request).
        labels = get_labels(name)
        self._timers = tuple(h.labels(**labels).observe for h in (PRE_HIST_TIME, PREDICT_HIST_TIME, POST_HIST_TIME))

    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> tuple[Any, dict[str, str]]:
        """kserve.Model.__call__ for a prediction, with the same handlers, validation and
        histograms (each observed even when its handler raises, as KServe's timers are),
        without its per-request lookups; anything else (explain, KServe's latency log
        line, response headers) goes through KServe's own."""
        if verb != InferenceVerb.PREDICT or self.enable_latency_logging or self.required_response_headers:
            return await super().__call__(body, headers, verb)
        observe_pre, observe_predict, observe_post = self._timers
        clock = time.perf_counter
        started = clock()
        try:
            prepared = self.preprocess(body, headers)
        finally:
            observe_pre(clock() - started)
        prepared = self.validate(prepared)
        started = clock()
        try:
            prepared = self.predict(prepared, headers)
        finally:
            observe_predict(clock() - started)
        started = clock()
        try:
            response = self.postprocess(prepared, headers)
        finally:
            observe_post(clock() - started)
        return response, {}

    def _activate(self) -> None:
        super()._activate()
        self.scorer = Scorer(self.revision.pipeline, compile_model=self.revision.config.compile_model)

    def preprocess(self, payload: Any, headers: dict | None = None) -> Prepared:
        return self.prepare(payload)

    def predict(self, prepared: Prepared, headers: dict | None = None) -> Prepared:
        assert self.scorer is not None
        predictions, labels = self.scorer.score(prepared.lookup.rows)
        prepared.scored = Scored(predictions, labels, prepared.lookup.defaults_used)
        self.log_scored(prepared, headers)
        return prepared

    def postprocess(self, prepared: Prepared, headers: dict | None = None, response_headers: dict | None = None) -> Any:
        return self.encode(prepared)
