"""The serving spec: what `FTI_SPEC` tells a model server (or a batch run) to serve.

The operator resolves an InferenceService into concrete versions before a pod starts,
so the spec names one revision — a (model version, feature-view version) pair — and
the online settings (topology, request features, missing-entity policy, defaults).
Parsing goes through the API models so the rules are the ones the CRD enforces.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fti_operator.api.inference_service import BatchSpec, OnlineSpec

from ..contract import ENV_NAMESPACE, ENV_RESOURCE, PipelineError

# Guard rails for one request (the body limit is checked before JSON parsing).
DEFAULT_MAX_INSTANCES = 1000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


def _version(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PipelineError("InvalidSpec", f"{path} must be a positive integer (a resolved version), got {value!r}")
    return value


def _name(spec: Mapping[str, Any], path: str) -> str:
    value = spec.get("name")
    if not isinstance(value, str) or not value:
        raise PipelineError("InvalidSpec", f"{path}.name must be a non-empty string")
    return value


def _validation_message(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return f"{prefix}{'.' + loc if loc else ''}: {first.get('msg')}"


@dataclass(frozen=True)
class ServingConfig:
    """One revision to serve, plus its online or batch settings."""

    name: str  # the InferenceService name = the served model name
    model_name: str
    model_version: int
    feature_view_name: str
    feature_view_version: int
    online: OnlineSpec = field(default_factory=OnlineSpec)
    batch: BatchSpec | None = None
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Score through a compiled path when it reproduces the model exactly (serving/compiled.py,
    # docs/serving.md); FTI_SERVING_COMPILE=false keeps plain sklearn.
    compile_model: bool = True
    # The namespace whose artifacts and online keys the revision reads (store/tenancy.py).
    namespace: str = "default"

    @property
    def revision_labels(self) -> dict[str, str]:
        """Prometheus labels that say which pair answered."""
        return {
            "model": self.model_name,
            "model_version": str(self.model_version),
            "feature_view": self.feature_view_name,
            "feature_view_version": str(self.feature_view_version),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ServingConfig:
        """Parse FTI_SPEC; every problem is a PipelineError naming the field."""
        env = os.environ if env is None else env
        if not isinstance(spec, Mapping):
            raise PipelineError("InvalidSpec", "FTI_SPEC must be a JSON object")
        model = spec.get("model")
        view = spec.get("featureView")
        if not isinstance(model, Mapping):
            raise PipelineError("InvalidSpec", "spec.model must be an object {name, version}")
        if not isinstance(view, Mapping):
            raise PipelineError("InvalidSpec", "spec.featureView must be an object {name, version} (resolved by the operator)")
        model_name = _name(model, "spec.model")
        name = spec.get("name") or env.get(ENV_RESOURCE) or model_name
        if not isinstance(name, str):
            raise PipelineError("InvalidSpec", "spec.name must be a string")
        try:
            online = OnlineSpec.model_validate(spec.get("online") or {})
        except ValidationError as exc:
            raise PipelineError("InvalidSpec", _validation_message(exc, "spec.online")) from exc
        batch = None
        if spec.get("batch") is not None:
            try:
                batch = BatchSpec.model_validate(spec["batch"])
            except ValidationError as exc:
                raise PipelineError("InvalidSpec", _validation_message(exc, "spec.batch")) from exc
        return cls(
            name=name,
            model_name=model_name,
            model_version=_version(model.get("version"), "spec.model.version"),
            feature_view_name=_name(view, "spec.featureView"),
            feature_view_version=_version(view.get("version"), "spec.featureView.version"),
            online=online,
            batch=batch,
            max_instances=_positive_env(env, "FTI_MAX_INSTANCES", DEFAULT_MAX_INSTANCES),
            max_body_bytes=_positive_env(env, "FTI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            compile_model=env.get("FTI_SERVING_COMPILE", "true").strip().lower() not in ("false", "0", "no", "off"),
            namespace=env.get(ENV_NAMESPACE) or "default",
        )


def _positive_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise PipelineError("InvalidSpec", f"{key}={raw!r} is not an integer") from exc
    if value < 1:
        raise PipelineError("InvalidSpec", f"{key} must be positive")
    return value
