"""Rollout and rollback of (model version, feature-view version) revisions (DESIGN §4.1, §4.4).

plan_rollout is a pure function of (current status revisions, the serving decision,
canary settings): it returns the new serving/canary/history and the one pair to render.
A rollback is the same move as a rollout: the spec names an earlier version and that
pair comes back whole, with its old revision number when it is still in history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .serving import ServingDecision


@dataclass(frozen=True)
class Rev:
    revision: int
    model: int
    feature_view: int
    traffic: int | None = None
    since: str | None = None

    @property
    def pair(self) -> tuple[int, int]:
        return (self.model, self.feature_view)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"revision": self.revision, "model": self.model, "featureView": self.feature_view}
        if self.traffic is not None:
            out["traffic"] = self.traffic
        if self.since:
            out["since"] = self.since
        return out

    @classmethod
    def from_wire(cls, d: Mapping[str, Any] | None) -> Rev | None:
        if not d:
            return None
        return cls(int(d["revision"]), int(d["model"]), int(d["featureView"]), d.get("traffic"), d.get("since"))


@dataclass(frozen=True)
class RolloutPlan:
    serving: Rev | None
    canary: Rev | None
    history: list[Rev]
    render: Rev | None  # the revision the child is rendered from (canary if any, else serving)
    canary_percent: int | None
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) for Kubernetes Events

    def status_part(self) -> dict[str, Any]:
        return {
            "serving": self.serving.wire() if self.serving else None,
            "canary": self.canary.wire() if self.canary else None,
            "history": [r.wire() for r in self.history],
        }


def plan_rollout(status: Mapping[str, Any] | None, decision: ServingDecision, *, canary_percent: int | None,
                 history_limit: int, now: str) -> RolloutPlan:
    status = status or {}
    serving = Rev.from_wire(status.get("serving"))
    canary = Rev.from_wire(status.get("canary"))
    history = [r for r in (Rev.from_wire(h) for h in status.get("history") or []) if r]
    events: list[tuple[str, str]] = []

    def done(serving: Rev | None, canary: Rev | None, history: list[Rev]) -> RolloutPlan:
        if serving is not None:
            serving = Rev(serving.revision, serving.model, serving.feature_view,
                          100 - canary.traffic if canary and canary.traffic else 100, serving.since)
        history = [Rev(h.revision, h.model, h.feature_view, None, h.since) for h in history][:history_limit]
        render = canary or serving
        return RolloutPlan(serving, canary, history, render, canary.traffic if canary else None, events)

    if not decision.allowed or decision.model is None:
        # Keep whatever serves now (§4.2); the handler reports decision.reason.
        return done(serving, canary, history)

    m = decision.model
    target = (m.version, int(m.feature_view_version or 0))
    if serving and serving.pair == target:
        if canary:
            events.append(("CanaryAborted", (f"spec names the serving pair again: canary revision {canary.revision} "
                                             f"(model {canary.model} / feature view {canary.feature_view}) removed")))
        return done(serving, None, history)
    if canary and canary.pair == target:
        if canary_percent is None:
            events.append(("Promoted", (f"canary revision {canary.revision} (model {canary.model} / feature view "
                                        f"{canary.feature_view}) now serves 100%")))
            new_history = [serving, *history] if serving else history
            return done(canary, None, new_history)
        if canary.traffic != canary_percent:
            canary = Rev(canary.revision, canary.model, canary.feature_view, canary_percent, canary.since)
        return done(serving, canary, history)

    # A new pair: reuse its revision number when it comes back from history (a rollback).
    previous = next((h for h in history if h.pair == target), None)
    all_revs = [r.revision for r in [serving, canary, *history] if r]
    number = previous.revision if previous else max(all_revs, default=0) + 1
    new = Rev(number, target[0], target[1], None, now)
    history = [h for h in history if h.pair != target]
    verb = "RolledBack" if previous else "RolledOut"
    if canary_percent is not None and serving is not None:
        events.append(("CanaryStarted", (f"revision {number} (model {new.model} / feature view {new.feature_view}) "
                                         f"gets {canary_percent}% of traffic")))
        return done(serving, Rev(number, new.model, new.feature_view, canary_percent, now), history)
    events.append((verb, f"revision {number} (model {new.model} / feature view {new.feature_view}) serves 100%"
                   + (f", replacing revision {serving.revision}" if serving else "")))
    return done(new, None, ([serving] if serving else []) + history)
