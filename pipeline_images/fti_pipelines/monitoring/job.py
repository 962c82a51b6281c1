"""One monitoring run: each serving revision's logged window against its training profile.

    FTI_SPEC {inferenceService, window, minRows, drift{method, threshold, features,
              minDriftedFeatures}, revisions[{role, modelVersion, featureViewVersion,
              modelUri, profileUri}]}
      -> per revision: its profile + the prediction log in [runTime - window, runTime)
      -> NotEnoughData below minRows, else one drift score per feature (drift.py)
      -> Drifted when at least minDriftedFeatures features pass the threshold
      -> report.json + report.html under monitoring/<inferenceservice>/<run id>/
      -> the termination message: per revision status, counts, top features, reportUri

Stable and canary are scored separately: a canary's new model has its own profile and
its own partition of the log. The contract is docs/monitoring.md's.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timedelta
from typing import Any

import fsspec

from fti_operator.api.common import parse_duration

from ..contract import TERMINATION_MESSAGE_LIMIT, PipelineContext, PipelineError
from ..registry import PROFILE_FILE
from ..store.artifacts import ArtifactStore
from ..store.tenancy import artifact_store, check_namespace
from .drift import METHODS, categorical_score, numeric_score
from .predictions import read_window, revision_parts
from .report import report_html

log = logging.getLogger("fti_pipelines.monitoring")

DEFAULT_THRESHOLDS = {"psi": 0.2, "js": 0.1, "wasserstein": 0.1, "ks": 0.1}
TOP_FEATURES = 10
MONITORING = "monitoring"


def _rfc3339(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def parse_job_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """The spec with defaults filled in; PipelineError InvalidSpec naming the field otherwise."""

    def bad(field: str, why: str) -> PipelineError:
        return PipelineError("InvalidSpec", f"spec.{field}: {why}", field=field)

    name = raw.get("inferenceService")
    if not isinstance(name, str) or not name:
        raise bad("inferenceService", "the InferenceService's name is required")
    try:
        window = parse_duration(str(raw.get("window", "24h")))
    except ValueError as exc:
        raise bad("window", str(exc)) from None
    if window <= 0:
        raise bad("window", "must be longer than zero")
    min_rows = raw.get("minRows", 1000)
    if not isinstance(min_rows, int) or min_rows < 1:
        raise bad("minRows", f"must be a positive integer, got {min_rows!r}")
    drift = dict(raw.get("drift") or {})
    method = drift.get("method", "psi")
    if method not in METHODS:
        raise bad("drift.method", f"{method!r} is not one of {', '.join(METHODS)}")
    threshold = drift.get("threshold", DEFAULT_THRESHOLDS[method])
    if not isinstance(threshold, int | float) or threshold <= 0:
        raise bad("drift.threshold", f"must be a positive number, got {threshold!r}")
    revisions = raw.get("revisions") or []
    if not revisions:
        raise bad("revisions", "at least one revision (the stable one) is required")
    for i, r in enumerate(revisions):
        for key in ("role", "modelVersion", "featureViewVersion"):
            if key not in r:
                raise bad(f"revisions[{i}].{key}", "is required")
        if not r.get("profileUri") and not r.get("modelUri"):
            raise bad(f"revisions[{i}].profileUri", "is required (or modelUri, next to which the profile lies)")
    return {
        "inferenceService": name,
        "window": window,
        "minRows": min_rows,
        "method": method,
        "threshold": float(threshold),
        "features": drift.get("features"),
        "minDriftedFeatures": int(drift.get("minDriftedFeatures", 1)),
        "revisions": revisions,
    }


def load_profile(uri: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as fh:
            return json.loads(fh.read())
    except FileNotFoundError:
        raise PipelineError(
            "ProfileNotFound",
            f"training profile {uri} does not exist: the model version was trained before profiles were written "
            "or by another training image (docs/monitoring.md, 'Training profile'); retrain it to monitor it",
            profileUri=uri,
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError("InvalidProfile", f"training profile {uri} is not JSON: {exc}", profileUri=uri) from None


def score_revision(
    store: ArtifactStore, spec: dict[str, Any], revision: dict[str, Any], start: datetime, end: datetime, options: dict[str, Any]
) -> dict[str, Any]:
    """Everything the report says about one revision (the termination message takes a summary)."""
    uri = revision.get("profileUri") or revision["modelUri"].rstrip("/") + "/" + PROFILE_FILE
    profile = load_profile(uri, options)
    names = list(profile["features"])
    if spec["features"] is not None:
        unknown = [f for f in spec["features"] if f not in profile["features"]]
        if unknown:
            raise PipelineError(
                "UnknownFeature",
                f"spec.drift.features: {', '.join(unknown)} not among model version {revision['modelVersion']}'s "
                f"features ({', '.join(names)})",
                features=unknown,
            )
        names = list(spec["features"])
    parts = revision_parts(spec["inferenceService"], revision["modelVersion"], revision["featureViewVersion"])
    categorical = [n for n in names if profile["features"][n]["kind"] == "categorical"]
    window = read_window(store, parts, start, end, names, categorical)
    out: dict[str, Any] = {
        "role": revision["role"],
        "modelVersion": int(revision["modelVersion"]),
        "featureViewVersion": int(revision["featureViewVersion"]),
        "rows": window.rows,
        "files": window.files,
        "profileUri": uri,
        "windowStart": _rfc3339(start),
        "windowEnd": _rfc3339(end),
    }
    if window.rows < spec["minRows"]:
        log.info(
            "%s v%s: %d rows in the window, fewer than minRows %d",
            revision["role"],
            revision["modelVersion"],
            window.rows,
            spec["minRows"],
        )
        return {**out, "status": "NotEnoughData", "driftedFeatures": 0, "features": [], "notLogged": []}
    method, threshold = spec["method"], spec["threshold"]
    features, not_logged = [], []
    defaulted = window.defaulted()
    for name in names:
        if not window.has(name):
            not_logged.append(name)
            continue
        fp = profile["features"][name]
        # One column at a time: the window's Arrow table plus one float64 copy at most.
        if fp["kind"] == "numeric":
            score, hist, extra = numeric_score(method, fp, window.numeric(name))
        else:
            score, hist, extra = categorical_score(method, fp, *window.counts(name))
        score = 0.0 if math.isnan(score) else score
        features.append(
            {
                "name": name,
                "kind": fp["kind"],
                "method": method,
                "score": round(score, 6),
                "threshold": threshold,
                "drifted": score > threshold,
                "defaultedRows": defaulted.get(name, 0),
                "histogram": {"labels": hist.labels, "reference": hist.reference.tolist(), "current": hist.current.tolist()},
                **extra,
            }
        )
    features.sort(key=lambda f: -f["score"])
    drifted = sum(f["drifted"] for f in features)
    out.update(
        status="Drifted" if drifted >= spec["minDriftedFeatures"] else "NoDrift",
        driftedFeatures=drifted,
        features=features,
        notLogged=not_logged,
    )
    if window.has("score") and profile.get("score", {}).get("quantiles"):
        s, hist, extra = numeric_score(method, profile["score"], window.numeric("score"))
        out["prediction"] = {
            "method": method,
            "score": round(s, 6),
            "histogram": {"labels": hist.labels, "reference": hist.reference.tolist(), "current": hist.current.tolist()},
            **extra,
        }
    return out


def summary(revision: dict[str, Any], report_uri: str) -> dict[str, Any]:
    """The contract's termination-message entry of one revision."""
    keys = ("role", "modelVersion", "featureViewVersion", "rows", "status", "driftedFeatures", "windowStart", "windowEnd")
    top = [{k: f[k] for k in ("name", "method", "score", "threshold", "drifted")} for f in revision["features"][:TOP_FEATURES]]
    return {**{k: revision[k] for k in keys}, "features": top, "reportUri": report_uri}


def run(ctx: PipelineContext, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = parse_job_spec(ctx.spec)
    check_namespace(ctx.namespace)
    store = artifact_store(ctx)
    end = ctx.run_time
    start = end - timedelta(seconds=spec["window"])
    revisions = [score_revision(store, spec, r, start, end, storage_options or {}) for r in spec["revisions"]]
    report = {
        "inferenceService": spec["inferenceService"],
        "namespace": ctx.namespace,
        "runId": ctx.run_id,
        "method": spec["method"],
        "threshold": spec["threshold"],
        "minRows": spec["minRows"],
        "minDriftedFeatures": spec["minDriftedFeatures"],
        "windowStart": _rfc3339(start),
        "windowEnd": _rfc3339(end),
        "revisions": revisions,
    }
    parts = (MONITORING, spec["inferenceService"], ctx.run_id)
    store.write_json(*parts, "report.json", report)
    store.write_bytes(*parts, "report.html", report_html(report).encode())
    report_uri = store.url(*parts, "report.json")
    for r in revisions:
        log.info(
            "%s v%s: %s, %d rows, %d drifted features", r["role"], r["modelVersion"], r["status"], r["rows"], r["driftedFeatures"]
        )
    return fit_message([summary(r, report_uri) for r in revisions])


def fit_message(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The result, with fewer top features per revision when long names would pass the
    kubelet's 4096 bytes (the statuses and counts always reach the operator; report.json has all)."""
    budget = TERMINATION_MESSAGE_LIMIT - 400  # ok, startedAt, finishedAt, truncated
    top = TOP_FEATURES
    while top > 0 and len(json.dumps({"revisions": summaries}, separators=(",", ":"))) > budget:
        top -= 1
        summaries = [{**s, "features": s["features"][:top], "featuresTruncated": True} for s in summaries]
    return {"revisions": summaries}


def main(ctx: PipelineContext) -> dict[str, Any]:
    """Entry for `python -m fti_pipelines.monitoring` (the pipeline contract)."""
    return run(ctx)


__all__ = ["DEFAULT_THRESHOLDS", "load_profile", "main", "parse_job_spec", "run", "score_revision"]
