"""A spec the API server admitted but the operator's validation refuses: reported, never acted on.

Admission (the CRD schema and its CEL rules) catches most mistakes. What it cannot judge —
does a regular expression compile, in the RE2 subset (api/regex.py) — the typed models
check, the same ones `fti local` parses with. Such an object gets `Ready=False` with reason
`InvalidSpec`, the field and what is allowed in the message, and one Warning Event when it
becomes invalid; no child is created or changed until the spec is fixed (docs/concepts.md,
"Validation").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..api.manifests import format_validation_error
from .conditions import condition, merge_conditions
from .context import Context
from .writes import emit_event, update_status

M = TypeVar("M", bound=BaseModel)
REASON = "InvalidSpec"


def invalid_status(body: Mapping[str, Any], message: str) -> dict[str, Any]:
    """Ready=False/InvalidSpec for this generation; the other conditions and status fields stay (pure)."""
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    others = [c for c in old.get("conditions") or [] if c.get("type") != "Ready"]
    ready = merge_conditions(old.get("conditions"), [condition("Ready", False, REASON, message)], generation)
    return {"observedGeneration": generation, "conditions": ready + others}


def parse_or_report(ctx: Context, body: Mapping[str, Any], model: type[M], api_version: str, plural: str) -> M | None:
    """The typed object, or None after the problem was written to status (and announced once)."""
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        message = "; ".join(f"{path}: {msg}" for path, msg in format_validation_error(exc))
    written = update_status(ctx.kube, api_version, plural, body, lambda b: invalid_status(b, message))
    was: Mapping[str, Any] = next((c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
    if written is not None and (was.get("reason") != REASON or was.get("message") != message):
        emit_event(ctx.kube, body, REASON, message, "Warning")
    return None
