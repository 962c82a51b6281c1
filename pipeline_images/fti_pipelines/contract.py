"""The pipeline contract: what a pipeline pod receives and what it reports.

A pipeline gets its resolved spec and the store URIs as environment variables and
reports one JSON object in its termination message. The operator reads results only
from there, so it never needs store credentials. Any image, in any language, that
honours these names can replace a reference image (docs/pipeline-contract.md).

The names are defined once, in fti_operator.api.identity, which the operator renders
from too. Environment (all strings):
  FTI_SPEC             JSON of the resolved spec (the custom resource's spec, camelCase)
  FTI_ARTIFACT_STORE   artifact store URI: file:///... or s3://...
  FTI_ONLINE_STORE     online store URI: sqlite:///... or redis://...
  FTI_NAMESPACE        namespace of the owning resource
  FTI_RESOURCE         name of the owning resource
  FTI_RUN_ID           identifies this run (the Job name in a cluster)
  FTI_RESOURCE_UID     training: metadata.uid of the owning resource (the run's owner)
  FTI_MODEL_VERSION    training: the model version number the operator expects
  FTI_RUN_TIME         RFC 3339 time the run stands for (defaults to now)
  FTI_TERMINATION_LOG  where the result goes (default /dev/termination-log)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Contract names, re-exported for the pipelines that import them from here.
from fti_operator.api.identity import (
    CONTRACT_ENV,
    ENV_ARTIFACT_STORE,
    ENV_MODEL_VERSION,
    ENV_NAMESPACE,
    ENV_ONLINE_STORE,
    ENV_RESOURCE,
    ENV_RESOURCE_UID,
    ENV_RUN_ID,
    ENV_RUN_TIME,
    ENV_SPEC,
    ENV_TERMINATION_LOG,
    TERMINATION_LOG as DEFAULT_TERMINATION_LOG,
    TERMINATION_MESSAGE_LIMIT,
)

# Every contract variable a pipeline reads: the identity module's contract, so the operator's
# renderers and the pipelines share one list (tests/unit/operator/test_identity.py checks that
# the rendered containers set exactly these, less the ones left to their defaults).
READS = CONTRACT_ENV

log = logging.getLogger("fti_pipelines")


class PipelineError(Exception):
    """A failure the user can act on: `reason` is CamelCase, the message names the field/row."""

    def __init__(self, reason: str, message: str, **details: Any):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


@dataclass(frozen=True)
class PipelineContext:
    """Everything a pipeline reads from its environment, parsed once."""

    spec: dict[str, Any]
    artifact_store: str
    online_store: str | None
    namespace: str
    resource: str
    run_id: str
    run_time: datetime
    model_version: int | None = None
    resource_uid: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PipelineContext:
        env = dict(os.environ if env is None else env)
        raw_spec = env.get(ENV_SPEC)
        if not raw_spec:
            raise PipelineError("MissingSpec", f"environment variable {ENV_SPEC} is not set")
        try:
            spec = json.loads(raw_spec)
        except json.JSONDecodeError as exc:
            raise PipelineError("InvalidSpec", f"{ENV_SPEC} is not valid JSON: {exc}") from exc
        if not isinstance(spec, dict):
            raise PipelineError("InvalidSpec", f"{ENV_SPEC} must be a JSON object")
        store = env.get(ENV_ARTIFACT_STORE)
        if not store:
            raise PipelineError("MissingArtifactStore", f"environment variable {ENV_ARTIFACT_STORE} is not set")
        model_version = env.get(ENV_MODEL_VERSION)
        try:
            version = int(model_version) if model_version else None
        except ValueError as exc:
            raise PipelineError("InvalidModelVersion", f"{ENV_MODEL_VERSION}={model_version!r} is not an integer") from exc
        return cls(
            spec=spec,
            artifact_store=store,
            online_store=env.get(ENV_ONLINE_STORE) or None,
            namespace=env.get(ENV_NAMESPACE, "default"),
            resource=env.get(ENV_RESOURCE, "local"),
            run_id=env.get(ENV_RUN_ID, "local"),
            run_time=parse_run_time(env.get(ENV_RUN_TIME)),
            model_version=version,
            resource_uid=env.get(ENV_RESOURCE_UID) or None,
            env=env,
        )


def parse_run_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PipelineError("InvalidRunTime", f"{ENV_RUN_TIME}={value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def encode_result(result: Mapping[str, Any]) -> str:
    """JSON for the termination message, kept under the kubelet's 4096-byte limit.

    Large optional parts (`details`, then `examples`) are dropped first so the
    counts and the verdict always reach the operator.
    """
    payload = dict(result)
    text = json.dumps(payload, default=str, separators=(",", ":"), sort_keys=True)
    for key in ("details", "examples", "metrics_extra"):
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
            break
        if key in payload:
            payload.pop(key)
            payload["truncated"] = True
            text = json.dumps(payload, default=str, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
        text = json.dumps(
            {"ok": payload.get("ok", False), "truncated": True, "error": str(payload.get("error", ""))[:1000]},
            separators=(",", ":"),
        )
    return text


def write_result(result: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    path = env.get(ENV_TERMINATION_LOG, DEFAULT_TERMINATION_LOG)
    text = encode_result(result)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:  # a local run without /dev/termination-log still prints the result
        log.warning("could not write termination log %s: %s", path, exc)
    print(text, flush=True)
    return text


def run_pipeline(main: Callable[[PipelineContext], dict[str, Any]], env: Mapping[str, str] | None = None) -> int:
    """Run `main`, report its result (or the failure) per the contract, return the exit code."""
    logging.basicConfig(level=os.environ.get("FTI_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    try:
        ctx = PipelineContext.from_env(env)
        result = dict(main(ctx))
        ok = bool(result.pop("ok", True))
        code = 0 if ok else 1
    except PipelineError as exc:
        log.error("%s: %s", exc.reason, exc.message)
        result, ok, code = {"reason": exc.reason, "error": exc.message, **exc.details}, False, 1
    except Exception as exc:  # noqa: BLE001 - the contract needs a result even for bugs
        traceback.print_exc()
        result, ok, code = {"reason": "PipelineCrashed", "error": f"{type(exc).__name__}: {exc}"}, False, 2
    result.update(
        ok=ok,
        startedAt=started.isoformat().replace("+00:00", "Z"),
        finishedAt=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    write_result(result, env)
    return code


def main_entry(main: Callable[[PipelineContext], dict[str, Any]]) -> None:
    sys.exit(run_pipeline(main))
