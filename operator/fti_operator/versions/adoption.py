"""Adopting a live child the status does not know (docs/rollouts.md, "Crash safety").

Status is written before the child, so in normal operation the status always knows the
revision the child renders. When it does not — the status was lost (an object restored
from a backup without its status) or predates the child — the child is still the truth
about what serves: its `fti.dev/revision` annotation and labels name the pair. Rolling it
out again as a new target would start a fresh deadline and, with a new revision number,
make KServe create a new revision of the same pods. Instead the pair is adopted as it is:
stable when KServe reports it ready with all the traffic, otherwise the target, with the
`since` the child records (the time of the operator's own last write of it), so a deadline
that was running is not extended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .rollout import Observed, Revision, describe, pair


def adopt(
    status: Mapping[str, Any] | None, served: Revision | None, observed: Observed, since: str
) -> tuple[dict[str, Any], tuple[str, str, str] | None]:
    """The status with the child's revision adopted, and the Event saying so (None: nothing adopted).

    served: the child's revision with its snapshot (`revision`, `model`, `featureView`, ...).
    observed: what KServe reports about the child. since: when the child was last written.
    Nothing is adopted while a target is recorded (the status drives a rollout), nor a
    revision the status records anywhere (a failed one the child still renders is rolled
    back by the plan, not adopted)."""
    out = dict(status or {})
    if served is None or out.get("target"):
        return out, None
    recorded = [out.get(k) for k in ("stable", "failed", "pinned")] + list(out.get("history") or [])
    number = int(served["revision"])
    if any(r and int(r.get("revision") or 0) == number for r in recorded):
        return out, None
    stable = out.get("stable")
    if stable and pair(stable) == pair(served):
        return out, None  # the same pair under another number: nothing new serves
    full = observed.latest_traffic in (None, 100)
    ready = observed.revision == number and observed.ready is True
    entry: Revision = {**served, "since": since}
    if ready and observed.kserve_revision:
        entry["kserveRevision"] = observed.kserve_revision
    if ready and full:
        if stable:
            history = [s for s in out.get("history") or [] if pair(s) != pair(stable)]
            out["history"] = [{k: v for k, v in stable.items() if k != "traffic"}, *history]
        out["stable"] = {**entry, "traffic": 100}
        role = "stable"
    else:
        if ready and observed.latest_traffic is not None:
            entry["traffic"] = observed.latest_traffic
        out["target"] = entry
        role = "target"
    return out, ("Normal", "Adopted", f"{describe(entry)} found in the KServe child; adopted as {role}")
