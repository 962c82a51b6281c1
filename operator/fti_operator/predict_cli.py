"""Requests `fti local apply` sends to the online services it started: `--predict N` real ones,
whose answers it prints, and `--shifted N` deliberately shifted ones, whose predictions the
model server logs so that `fti local monitor` has drift to report (docs/monitoring.md).

Both replay recent labelled events of the service's own stores (local/samples.py).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from rich.table import Table

from .api import InferenceService
from .cli_common import fail, out

SHIFTED_BATCH = 100  # instances per request of a shifted batch (the server takes up to 1000)


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST JSON; (HTTP status, the decoded answer, or its text when it is not JSON)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        try:
            return exc.code, json.loads(text)
        except json.JSONDecodeError:
            return exc.code, text


def _serving(driver: Any, isvc: InferenceService) -> tuple[dict[str, Any], str, list[str]]:
    """(stable revision, url, request features) of a started online service, or exit naming it."""
    obj = driver.get("InferenceService", isvc.metadata.namespace, isvc.metadata.name) or {}
    stable, url = (obj.get("status") or {}).get("stable") or {}, (obj.get("status") or {}).get("url")
    if not stable or not url:
        fail(f"{isvc.metadata.name} is not serving")
    features = list(isvc.spec.online.request_features) if isvc.spec.online else []
    return stable, str(url), features


def _samples(driver: Any, isvc: InferenceService, stable: dict[str, Any], features: list[str], n: int) -> list[Any]:
    from .local.samples import sample_instances

    namespace = isvc.metadata.namespace or "default"
    return sample_instances(driver.config.artifact_store, namespace, isvc.spec.model.name, int(stable["model"]), features, n)


def predict_samples(driver: Any, isvc: InferenceService, n: int) -> None:
    """Send n real requests one by one and print each answer beside the label it was recorded with."""
    stable, url, features = _serving(driver, isvc)
    instances = _samples(driver, isvc, stable, features, n)
    table = Table(title=f"{isvc.metadata.name}: predictions over HTTP ({url})")
    for col in [*instances[0][0].keys(), "label", "prediction", "model", "featureView"] if instances else []:
        table.add_column(str(col))
    for inst, label in instances:
        code, answer = post(f"{url}/v1/models/{isvc.metadata.name}:predict", {"instances": [inst]})
        if code != 200:
            fail(f"prediction request failed with HTTP {code}: {answer}")
        pred = (answer.get("predictions") or [None])[0]
        table.add_row(
            *[str(v) for v in inst.values()],
            str(label),
            _fmt(pred),
            str(answer.get("modelVersion")),
            str(answer.get("featureViewVersion")),
        )
    out.print(table)


def send_shifted(driver: Any, isvc: InferenceService, n: int) -> None:
    """Send n requests whose request-time features are deliberately shifted, and say how."""
    from .local.samples import shift_instances

    stable, url, features = _serving(driver, isvc)
    name, namespace = isvc.metadata.name, isvc.metadata.namespace or "default"
    instances, how = shift_instances([i for i, _label in _samples(driver, isvc, stable, features, n)], features)
    for start in range(0, len(instances), SHIFTED_BATCH):
        code, answer = post(f"{url}/v1/models/{name}:predict", {"instances": instances[start : start + SHIFTED_BATCH]})
        if code != 200:
            fail(f"shifted request failed with HTTP {code}: {answer}")
    moved = ", ".join(f"{f} {h}" for f, h in how.items()) or "no request features to shift"
    logged = "" if isvc.spec.monitoring and isvc.spec.monitoring.logging else " (not logged: spec.monitoring.logging is off)"
    out.print(
        f"{name}: sent {len(instances)} shifted requests ({moved}) to model {stable['model']}{logged}; "
        f"`fti local monitor {name} -n {namespace}` reports their drift",
        highlight=False,
        soft_wrap=True,  # one line: the command in it is meant to be copied
    )


def _fmt(pred: Any) -> str:
    if isinstance(pred, dict):
        return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in pred.items())
    return f"{pred:.4f}" if isinstance(pred, float) else str(pred)
