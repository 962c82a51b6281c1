"""The `transformer` role: KServe's transformer pattern in front of a separate predictor.

`preprocess` looks up the features (same code as the combined role), `predict` sends
the plain ordered rows to the predictor over KServe's v1 protocol
(`/v1/models/<name>:predict`, what both our predictor role and KServe's stock sklearn
runtime answer), and `postprocess` adds the revision and the per-instance flags. The
predictor may answer probability rows (PREDICT_PROBA) or labels; both are handled.
A predictor failure is a 502 (or its own 4xx relayed), never the caller's 500.
"""

from __future__ import annotations

from typing import Any

import httpx

from .combined import FeatureModelBase, Prepared
from .errors import PredictorError, RequestError
from .protocol import Scored


def scored_from_predictor(predictions: Any, defaults_used: list[bool]) -> Scored:
    """Interpret the predictor's `predictions`: probability rows or labels."""
    if not isinstance(predictions, list) or len(predictions) != len(defaults_used):
        raise PredictorError(
            f"the predictor answered {len(predictions) if isinstance(predictions, list) else predictions!r} "
            f"predictions for {len(defaults_used)} instances"
        )
    if predictions and isinstance(predictions[0], list):
        positive = [float(row[-1]) for row in predictions]
        labels = [max(range(len(row)), key=row.__getitem__) for row in predictions]
        return Scored(positive, labels, defaults_used)
    return Scored(list(predictions), None, defaults_used)


class TransformerModel(FeatureModelBase):
    async def preprocess(self, payload: Any, headers: dict | None = None) -> Prepared:
        return self.prepare(payload)

    async def predict(self, prepared: Prepared, headers: dict | None = None, response_headers: dict | None = None) -> Prepared:
        body = {"instances": prepared.lookup.rows}
        try:
            response = await self._http_predict(body, headers)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            text = exc.response.text[:500]
            if 400 <= status < 500:  # the predictor refused the rows: relay its verdict
                raise RequestError(
                    f"the predictor refused the instances ({status}): {text}",
                    field="instances",
                    status=422 if status == 400 else status,
                    reason="PredictorRejectedInput",
                ) from exc
            raise PredictorError(f"the predictor at {self.predictor_config.predictor_host} failed ({status}): {text}") from exc
        except httpx.HTTPError as exc:
            raise PredictorError(f"the predictor at {self.predictor_config.predictor_host} is unreachable: {exc}") from exc
        predictions = response.get("predictions") if isinstance(response, dict) else None
        prepared.scored = scored_from_predictor(predictions, prepared.lookup.defaults_used)
        self.log_scored(prepared, headers)
        return prepared

    async def postprocess(self, prepared: Prepared, headers: dict | None = None, response_headers: dict | None = None) -> Any:
        return self.encode(prepared)
