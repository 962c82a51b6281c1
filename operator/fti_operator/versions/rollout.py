"""Rollout and rollback of (model version, feature-view version) revisions, as observed.

`plan_rollout` is a pure function of what the InferenceService's status recorded, what
the spec and the model registry ask for (`Want`), and what KServe reports about the child
(`Observed`). It returns the revisions to record, the one revision to render, the Events of
this step and the `Progressing` condition (docs/rollouts.md). Status says what is, not
what was asked:

- `stable` is the pair KServe last reported Ready at full traffic; it keeps serving (and
  `Ready` stays True) whatever happens to the target;
- `target` is the pair being rolled out (a canary when a share of traffic is asked for),
  with `since`: `since + readinessTimeout` is the rollback deadline, which survives a
  restart because it is in status;
- `failed` is the last target that missed its deadline or was aborted, with the reason;
  it is not tried again while the spec (generation) and what it resolves to stay the same;
- `pinned` is a revision an annotation rolled back to; it is served until the spec
  resolves to a different pair than the one it overrode;
- `history` holds earlier stable revisions, newest first, each a self-contained snapshot.

A rollback is the same move as a rollout: the earlier pair becomes the target, keeping its
revision number, and becomes stable once KServe reports it ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Revision = dict[str, Any]  # the wire shape of api.inference_service.Revision (camelCase)

ROLLING_OUT = "RollingOut"
CANARY_IN_PROGRESS = "CanaryInProgress"
WAITING_FOR_FEATURES = "WaitingForFeatures"
REMATERIALIZING = "Rematerializing"
ROLLOUT_COMPLETE = "RolloutComplete"
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ROLLED_BACK = "RolledBack"
ABORTED = "Aborted"
TRAFFIC_SPLIT_UNSUPPORTED = "TrafficSplitUnsupported"
RUN_FAILED = "RunFailed"


@dataclass(frozen=True)
class Want:
    """What the spec (and the registry behind `latest`) asks for, and how to roll it out."""

    revision: Revision | None  # the resolved pair with its snapshot, or None when nothing servable is asked
    # The asked pair that cannot be served yet because its features are not ready: recorded as
    # `pending` so that retention keeps (or brings back) the feature-group versions it reads.
    pending: Revision | None = None
    rematerializing: bool = False  # a feature-group version it waits for is being brought back by a run
    blocked_reason: str | None = None  # why the asked pair cannot be served (FeaturesNotReady, ...)
    blocked_message: str = ""
    canary_percent: int | None = None
    # False where KServe cannot split traffic (RawDeployment): a canary is then held back, or
    # rolled out to all traffic when the spec opts in (canary_fallback "rollOut").
    traffic_split: bool = True
    canary_fallback: str = "hold"
    auto_rollback: bool = True
    readiness_timeout: float = 600.0
    # Online: a target has readinessTimeout to become ready. Batch: there is no server to wait
    # for; the target's first run decides (a failed or refused run counts as not ready at once).
    deadline: bool = True
    history_limit: int = 5
    generation: int = 0
    # Annotations, handled once per token: rollback ("previous" | "revision-N"), promote, abort, retry.
    rollback: str | None = None
    promote: str | None = None
    abort: str | None = None
    retry: str | None = None


@dataclass(frozen=True)
class Observed:
    """What KServe reports about the child as it is now."""

    revision: int | None = None  # our revision number the child renders (its fti.dev/revision annotation)
    ready: bool | None = None  # that spec is ready (None: not reported on yet)
    message: str = ""
    kserve_revision: str | None = None  # KServe's name for the ready revision
    latest_traffic: int | None = None  # percent KServe routes to the latest revision


@dataclass
class Plan:
    stable: Revision | None
    target: Revision | None
    failed: Revision | None
    pinned: Revision | None
    history: list[Revision]
    handled: dict[str, str]
    pending: Revision | None
    render: Revision | None  # the revision the child is rendered from
    canary_percent: int | None  # canaryTrafficPercent to render (None: the rendered revision gets all traffic)
    progressing: tuple[bool | None, str, str]  # (status, reason, message) of the Progressing condition
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None
    rolled_back: str | None = None  # the reason, when this step rolled back automatically

    def status_part(self) -> dict[str, Any]:
        return {
            "stable": self.stable,
            "target": self.target,
            "failed": self.failed,
            "pinned": self.pinned,
            "pending": self.pending,
            "history": self.history,
            "handled": self.handled or None,
        }


def pair(r: Mapping[str, Any] | None) -> tuple[int, int] | None:
    return (int(r["model"]), int(r["featureView"])) if r else None


def describe(r: Mapping[str, Any]) -> str:
    return f"revision {r['revision']} (model {r['model']} / feature view {r['featureView']})"


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


def _iso(t: datetime) -> str:
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _strip(r: Mapping[str, Any], *keys: str) -> Revision:
    return {k: v for k, v in r.items() if k not in keys}


def _find(history: list[Revision], value: str) -> Revision | None:
    """`previous` or `revision-N`, optionally with `@token` (so the same request can be made again)."""
    selector = value.split("@", 1)[0]
    if selector == "previous":
        return history[0] if history else None
    if selector.startswith("revision-") and selector[9:].isdigit():
        return next((h for h in history if int(h["revision"]) == int(selector[9:])), None)
    return None


def _stopped(failed: Revision, stable: Revision | None) -> str:
    """The Progressing message while a failed pair is held back (the same on every reconcile)."""
    return (
        f"{describe(failed)} {failed.get('reason')}: {failed.get('message', '')}; "
        f"{describe(stable) if stable else 'nothing'} serves; retry to try it again"
    )


def plan_rollout(status: Mapping[str, Any] | None, want: Want, observed: Observed, now: datetime) -> Plan:
    status = status or {}
    stable: Revision | None = status.get("stable")
    target: Revision | None = status.get("target")
    failed: Revision | None = status.get("failed")
    pinned: Revision | None = status.get("pinned")
    history: list[Revision] = list(status.get("history") or [])
    handled: dict[str, str] = dict(status.get("handled") or {})
    events: list[tuple[str, str, str]] = []
    progressing: tuple[bool | None, str, str] | None = None
    rolled_back: str | None = None
    asked = want.revision

    # -- imperative verbs (annotations), each token once ------------------------------------------
    def new(verb: str, token: str | None) -> bool:
        if not token or handled.get(verb) == token:
            return False
        handled[verb] = token
        return True

    if new("retry", want.retry) and failed is not None:
        events.append(("Normal", "Retry", f"{describe(failed)} will be rolled out again"))
        failed = None
    if new("rollback", want.rollback):
        found = _find([*([stable] if stable and target else []), *history], want.rollback or "")
        if found is None:
            events.append(("Warning", "RollbackNotFound", f"rollback to {want.rollback}: no such revision in history"))
        else:
            pinned = {**_strip(found, "traffic", "since", "pinnedFor"), "pinnedFor": pair(asked) and list(pair(asked) or ())}
            events.append(
                (
                    "Normal",
                    "RollbackRequested",
                    f"rolling back to {describe(found)}; pinned until the spec resolves to a different pair",
                )
            )
    if new("abort", want.abort) and target is not None:
        failed = {
            **_strip(target, "traffic"),
            "reason": ABORTED,
            "message": "aborted by an abort request",
            "generation": want.generation,
        }
        events.append(("Warning", ABORTED, f"{describe(target)} aborted; {describe(stable) if stable else 'nothing'} serves"))
        target = None
    promote = new("promote", want.promote)

    # -- what to serve -------------------------------------------------------------------------
    if pinned is not None:
        overridden = pinned.get("pinnedFor")
        if asked is not None and overridden is not None and tuple(overridden) != pair(asked):
            events.append(
                (
                    "Normal",
                    "Unpinned",
                    (
                        f"the spec now resolves to model {asked['model']} / feature view "
                        f"{asked['featureView']}: {describe(pinned)} is no longer pinned"
                    ),
                )
            )
            pinned = None
    wanted = _strip(pinned, "pinnedFor") if pinned is not None else asked
    if (
        wanted is not None
        and failed is not None
        and pair(wanted) == pair(failed)
        and int(failed.get("generation") or 0) == want.generation
    ):
        wanted = None  # a pair that failed is not retried until something changes
        progressing = (False, ROLLED_BACK if failed.get("reason") != ABORTED else ABORTED, _stopped(failed, stable))

    canary = want.canary_percent if stable is not None and pinned is None else None
    if canary is not None and not want.traffic_split:
        if want.canary_fallback == "rollOut":
            canary = None
        elif wanted is not None and pair(wanted) != pair(stable) and (target is None or pair(target) != pair(wanted)):
            progressing = (
                False,
                TRAFFIC_SPLIT_UNSUPPORTED,
                (
                    f"model {wanted['model']} / feature view {wanted['featureView']} is held back: KServe cannot "
                    "split traffic in RawDeployment mode (set spec.online.canary.whenUnsupported: rollOut to roll "
                    f"it out to all traffic); {describe(stable) if stable else 'nothing'} serves"
                ),
            )
            wanted = None
    if wanted is not None and pair(wanted) == pair(stable):
        if target is not None:
            events.append(
                (
                    "Normal",
                    "TargetCancelled" if target.get("traffic", 100) == 100 else "CanaryAborted",
                    f"the spec names {describe(stable) if stable else ''} again: {describe(target)} removed",
                )
            )
            target = None
    elif wanted is not None and (target is None or pair(target) != pair(wanted)):
        if target is not None:
            events.append(("Normal", "TargetSuperseded", f"{describe(target)} superseded before it was ready"))
        previous = next((h for h in history if pair(h) == pair(wanted)), None)
        numbers = [int(r["revision"]) for r in (stable, target, failed, *history) if r]
        number = int(previous["revision"]) if previous else int(wanted.get("revision") or 0) or max(numbers, default=0) + 1
        if previous is None and any(n == number for n in numbers):
            number = max(numbers, default=0) + 1
        target = {
            **_strip(previous or wanted, "traffic", "since", "kserveRevision", "pinnedFor"),
            "revision": number,
            "since": _iso(now),
        }
        verb = "RollbackStarted" if previous else ("CanaryStarted" if canary is not None else "RolloutStarted")
        events.append(
            (
                "Normal",
                verb,
                f"{describe(target)} " + (f"gets {canary}% of traffic" if canary is not None else "is being rolled out"),
            )
        )

    # -- what KServe says about the target ---------------------------------------------------------
    requeue_after: float | None = None
    if target is not None:
        is_canary = canary is not None
        target_ready = observed.revision == int(target["revision"]) and observed.ready is True
        if target_ready and observed.kserve_revision:
            target["kserveRevision"] = observed.kserve_revision
        if target_ready and is_canary and not promote:
            target["traffic"] = observed.latest_traffic if observed.latest_traffic is not None else canary
            progressing = (
                True,
                CANARY_IN_PROGRESS,
                f"{describe(target)} at {target['traffic']} %, ready; promote with kubectl fti rollout promote",
            )
        elif target_ready:
            if stable is not None:
                history = [_strip(stable, "traffic"), *[h for h in history if pair(h) != pair(stable)]]
            events.append(
                (
                    "Normal",
                    ROLLOUT_COMPLETE if not promote else "Promoted",
                    f"{describe(target)} serves 100 %" + (f", replacing {describe(stable)}" if stable else ""),
                )
            )
            stable = {**target, "traffic": 100, "since": _iso(now)}
            history = [h for h in history if pair(h) != pair(stable)]
            target = None
            failed = None  # the record of a failure lasts until a rollout completes
            progressing = (True, ROLLOUT_COMPLETE, f"{describe(stable)} serves 100 %")
        else:
            since = _parse(target.get("since")) or now
            deadline = since + timedelta(seconds=want.readiness_timeout)
            run_failed = not want.deadline and observed.ready is False and observed.revision == int(target["revision"])
            if run_failed or (want.deadline and now >= deadline):
                message = observed.message or "KServe did not report the revision ready"
                if want.auto_rollback and stable is not None:
                    failed = {
                        **_strip(target, "traffic"),
                        "reason": RUN_FAILED if run_failed else DEADLINE_EXCEEDED,
                        "message": message[:1024],
                        "generation": want.generation,
                    }
                    events.append(
                        (
                            "Warning",
                            ROLLED_BACK,
                            (
                                f"{describe(target)} "
                                + (
                                    f"run failed ({message})"
                                    if run_failed
                                    else f"not ready after {want.readiness_timeout:.0f}s ({message})"
                                )
                                + f"; back to {describe(stable)}"
                            ),
                        )
                    )
                    rolled_back = RUN_FAILED if run_failed else DEADLINE_EXCEEDED
                    progressing = (False, ROLLED_BACK, _stopped(failed, stable))
                    target = None
                else:
                    progressing = (
                        False,
                        RUN_FAILED if run_failed else DEADLINE_EXCEEDED,
                        f"{describe(target)} "
                        + (
                            f"run failed: {message}"
                            if run_failed
                            else f"not ready after {want.readiness_timeout:.0f}s: {message}"
                        ),
                    )
            else:
                if want.deadline:
                    requeue_after = max(1.0, (deadline - now).total_seconds())
                waiting_for = "KServe" if want.deadline else "its first run"
                progressing = (
                    True,
                    CANARY_IN_PROGRESS if is_canary else ROLLING_OUT,
                    f"{describe(target)} waiting for {waiting_for}: {observed.message or 'not ready yet'}",
                )

    if progressing is None:
        if want.blocked_reason and asked is None and stable is not None:
            reason = WAITING_FOR_FEATURES if want.blocked_reason == "FeaturesNotReady" else want.blocked_reason
            if reason == WAITING_FOR_FEATURES and want.rematerializing:
                reason = REMATERIALIZING
            progressing = (
                reason in (WAITING_FOR_FEATURES, REMATERIALIZING),
                reason,
                f"{want.blocked_message}; {describe(stable)} keeps serving",
            )
        elif stable is not None:
            progressing = (True, ROLLOUT_COMPLETE, f"{describe(stable)} serves 100 %")
        else:
            progressing = (None, want.blocked_reason or "NoRevision", want.blocked_message or "nothing to roll out yet")
    # A rollback or an abort renders the stable pair again, which KServe serves under a new
    # revision name: keep the recorded name current, so its traffic reports map back to the
    # stable pair (versions/traffic.py) whichever report a reconcile read.
    if (
        target is None
        and stable is not None
        and observed.ready is True
        and observed.revision == int(stable["revision"])
        and observed.kserve_revision
        and stable.get("kserveRevision") != observed.kserve_revision
    ):
        stable = {**stable, "kserveRevision": observed.kserve_revision}
    if stable is not None:
        stable = {**stable, "traffic": 100 - int(target["traffic"]) if target is not None and "traffic" in target else 100}
    history = history[: want.history_limit]
    render = target or stable
    pending = want.pending if want.pending is not None and pair(want.pending) != pair(stable) else None
    return Plan(
        stable,
        target,
        failed,
        pinned,
        history,
        handled,
        pending,
        render,
        canary if target is not None and render is target else None,
        progressing,
        events,
        requeue_after,
        rolled_back,
    )
