"""Status conditions in the Kubernetes API convention, rolled up to `Ready`.

lastTransitionTime changes only when a condition's status flips, so re-computing the
same conditions yields an identical list and the handler writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any


def now_iso(now: datetime | None = None) -> str:
    """RFC 3339 in UTC with whole seconds, as the API server writes times."""
    return (now or datetime.now(UTC)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(type_: str, ok: bool | None, reason: str, message: str = "") -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message}


def merge_conditions(
    old: Iterable[Mapping[str, Any]] | None, new: Iterable[Mapping[str, Any]], generation: int | None, now: str | None = None
) -> list[dict[str, Any]]:
    """The new conditions, keeping each one's lastTransitionTime unless its status changed."""
    previous = {c.get("type"): c for c in old or []}
    out = []
    for c in new:
        before = previous.get(c["type"])
        ltt = before.get("lastTransitionTime") if before and before.get("status") == c["status"] else None
        merged = dict(c)
        merged["lastTransitionTime"] = ltt or now or now_iso()
        if generation is not None:
            merged["observedGeneration"] = generation
        out.append(merged)
    return out


def ready_rollup(parts: list[dict[str, Any]], ready_reason: str, ready_message: str) -> dict[str, Any]:
    """Ready is True when every other condition is True; else the first non-True one explains it."""
    for c in parts:
        if c["status"] != "True":
            return condition("Ready", False if c["status"] == "False" else None, c["reason"], c["message"])
    return condition("Ready", True, ready_reason, ready_message)
