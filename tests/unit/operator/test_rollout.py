"""Table tests of the rollout state machine: stable only once KServe says so, deadlines, verbs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fti_operator.versions.rollout import Observed, Want, plan_rollout

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ISO0 = "2026-12-01T10:00:00Z"


def rev(model: int, fv: int = 1, revision: int | None = None, **extra):
    out = {
        "model": model,
        "featureView": fv,
        "featureGroups": [{"name": "g", "version": fv}],
        "storageUri": f"file:///s/models/m/{model}/model",
    }
    if revision is not None:
        out["revision"] = revision
    return {**out, **extra}


def want(model: int | None, fv: int = 1, **kw) -> Want:
    return Want(revision=rev(model, fv) if model else None, **kw)


STABLE = {"stable": rev(4, revision=2, traffic=100, since=ISO0), "history": [rev(3, revision=1)]}


def test_first_rollout_is_stable_only_once_kserve_reports_it_ready():
    plan = plan_rollout(None, want(1), Observed(), T0)
    assert plan.stable is None and plan.target["revision"] == 1 and plan.render is plan.target
    assert plan.progressing[1] == "RollingOut" and plan.requeue_after == 600
    assert [e[1] for e in plan.events] == ["RolloutStarted"]
    # KServe has not seen it yet: still the target.
    again = plan_rollout(plan.status_part(), want(1), Observed(1, None, "not ready"), T0 + timedelta(seconds=5))
    assert again.stable is None and again.target["since"] == plan.target["since"] and again.events == []
    ready = plan_rollout(again.status_part(), want(1), Observed(1, True, "", "m-predictor-00001", 100), T0 + timedelta(seconds=9))
    assert ready.target is None and ready.stable["revision"] == 1 and ready.stable["kserveRevision"] == "m-predictor-00001"
    assert ready.progressing == (True, "RolloutComplete", "revision 1 (model 1 / feature view 1) serves 100 %")
    assert [e[1] for e in ready.events] == ["RolloutComplete"]


def test_upgrade_keeps_stable_until_ready_then_moves_it_to_history():
    plan = plan_rollout(STABLE, want(5, 2), Observed(2, True), T0)
    assert plan.stable["model"] == 4 and plan.target["model"] == 5 and plan.target["revision"] == 3
    assert plan.render["model"] == 5 and plan.canary_percent is None
    done = plan_rollout(plan.status_part(), want(5, 2), Observed(3, True, "", "x-00003", 100), T0 + timedelta(minutes=1))
    assert done.stable["model"] == 5 and [h["revision"] for h in done.history] == [2, 1]
    assert "traffic" not in done.history[0]


def test_the_stable_pair_rendered_again_records_kserves_new_revision_name():
    # After a rollback or an abort the stable pair is rendered again and KServe serves it as a
    # new revision: the status follows, so traffic reports name the stable pair.
    status = {"stable": rev(4, revision=2, traffic=100, since=ISO0, kserveRevision="x-00002")}
    again = plan_rollout(status, want(4), Observed(2, True, "", "x-00004", 100), T0)
    assert again.stable["kserveRevision"] == "x-00004" and again.events == []
    assert again.stable["since"] == ISO0 and again.progressing[1] == "RolloutComplete"
    # Not yet ready, or another revision's report: the recorded name stays.
    for observed in (Observed(2, None, "", None), Observed(2, False, "", "x-00004"), Observed(3, True, "", "x-00005")):
        assert plan_rollout(status, want(4), observed, T0).stable["kserveRevision"] == "x-00002"


def test_readiness_deadline_rolls_back_once_and_does_not_retry_the_same_spec():
    plan = plan_rollout(STABLE, want(5, 2, generation=7, readiness_timeout=60), Observed(2, True), T0)
    late = T0 + timedelta(seconds=61)
    back = plan_rollout(
        plan.status_part(),
        want(5, 2, generation=7, readiness_timeout=60),
        Observed(3, False, "readiness probe failed: skew guard: feature view 2 not online"),
        late,
    )
    assert back.target is None and back.stable["model"] == 4 and back.render["model"] == 4
    assert back.failed["model"] == 5 and back.failed["reason"] == "ProgressDeadlineExceeded"
    assert "skew guard" in back.failed["message"] and back.rolled_back == "ProgressDeadlineExceeded"
    assert back.progressing[:2] == (False, "RolledBack")
    assert [e[:2] for e in back.events] == [("Warning", "RolledBack")]
    # The same spec again: nothing to do, no new Event.
    held = plan_rollout(back.status_part(), want(5, 2, generation=7, readiness_timeout=60), Observed(2, True), late)
    assert held.target is None and held.events == [] and held.progressing[1] == "RolledBack"
    # A spec change (new generation) tries again; so does a retry token.
    assert plan_rollout(back.status_part(), want(5, 2, generation=8), Observed(2, True), late).target["model"] == 5
    retried = plan_rollout(back.status_part(), want(5, 2, generation=7, retry="r1"), Observed(2, True), late)
    assert retried.target["model"] == 5 and retried.failed is None and retried.handled["retry"] == "r1"


def test_deadline_without_auto_rollback_keeps_the_target():
    plan = plan_rollout(STABLE, want(5, auto_rollback=False, readiness_timeout=60), Observed(2, True), T0)
    late = plan_rollout(
        plan.status_part(),
        want(5, auto_rollback=False, readiness_timeout=60),
        Observed(3, False, "CrashLoopBackOff"),
        T0 + timedelta(minutes=2),
    )
    assert late.target["model"] == 5 and late.failed is None and late.render["model"] == 5
    assert late.progressing[:2] == (False, "ProgressDeadlineExceeded")


def test_deadline_survives_a_restart_and_requeue_counts_down():
    plan = plan_rollout(STABLE, want(5, readiness_timeout=600), Observed(2, True), T0)
    later = plan_rollout(plan.status_part(), want(5, readiness_timeout=600), Observed(), T0 + timedelta(seconds=400))
    assert later.requeue_after == 200 and later.target["since"] == ISO0


def test_canary_traffic_is_read_back_and_promote_makes_it_stable():
    w = want(5, 2, canary_percent=10)
    plan = plan_rollout(STABLE, w, Observed(2, True), T0)
    assert plan.target["model"] == 5 and plan.canary_percent == 10 and "traffic" not in plan.target
    assert [e[1] for e in plan.events] == ["CanaryStarted"]
    live = plan_rollout(plan.status_part(), w, Observed(3, True, "", "x-00003", 10), T0)
    assert live.target["traffic"] == 10 and live.stable["traffic"] == 90 and live.progressing[1] == "CanaryInProgress"
    promoted = plan_rollout(live.status_part(), Want(**{**w.__dict__, "promote": "p1"}), Observed(3, True, "", "x-00003", 10), T0)
    assert promoted.stable["model"] == 5 and promoted.target is None and promoted.handled == {"promote": "p1"}
    # Removing the canary from the spec promotes as well.
    assert plan_rollout(live.status_part(), want(5, 2), Observed(3, True, "", "x-00003", 100), T0).stable["model"] == 5


def test_abort_never_leaves_the_aborted_pair_rendered():
    w = want(5, 2, canary_percent=10, generation=3)
    live = plan_rollout(plan_rollout(STABLE, w, Observed(2, True), T0).status_part(), w, Observed(3, True, "", "x", 10), T0)
    aborted = plan_rollout(live.status_part(), Want(**{**w.__dict__, "abort": "a1"}), Observed(3, True, "", "x", 10), T0)
    assert aborted.target is None and aborted.render["model"] == 4 and aborted.failed["reason"] == "Aborted"
    assert aborted.stable["traffic"] == 100 and aborted.progressing[1] == "Aborted"


def test_rollback_annotation_pins_until_the_spec_resolves_elsewhere():
    w = want(4)
    plan = plan_rollout(STABLE, Want(**{**w.__dict__, "rollback": "previous"}), Observed(2, True), T0)
    assert plan.pinned["model"] == 3 and plan.target["revision"] == 1 and plan.render["model"] == 3
    assert [e[1] for e in plan.events] == ["RollbackRequested", "RollbackStarted"]
    back = plan_rollout(plan.status_part(), Want(**{**w.__dict__, "rollback": "previous"}), Observed(1, True, "", "x-1", 100), T0)
    assert back.stable["model"] == 3 and back.pinned["model"] == 3 and back.events[0][1] == "RolloutComplete"
    # Same spec, same token: stays pinned, nothing happens.
    assert plan_rollout(back.status_part(), Want(**{**w.__dict__, "rollback": "previous"}), Observed(1, True), T0).events == []
    # The spec now resolves to a new model: the pin goes, the new model rolls out.
    moved = plan_rollout(back.status_part(), want(6), Observed(1, True), T0)
    assert moved.pinned is None and moved.target["model"] == 6


def test_rollback_by_spec_reuses_the_revision_number_from_history():
    plan = plan_rollout(STABLE, want(3), Observed(2, True), T0)
    assert plan.target["revision"] == 1 and [e[1] for e in plan.events] == ["RollbackStarted"]


def test_blocked_pair_keeps_the_stable_revision_and_says_why():
    asked = Want(
        None,
        pending=rev(6, 3),
        blocked_reason="FeaturesNotReady",
        blocked_message="g v3 not materialized (re-materializing in Job j)",
    )
    plan = plan_rollout(STABLE, asked, Observed(2, True), T0)
    assert plan.target is None and plan.render["model"] == 4
    assert plan.progressing[:2] == (True, "WaitingForFeatures") and "Job j" in plan.progressing[2]
    # The waiting pair is recorded, so retention keeps (or brings back) the versions it reads.
    assert plan.pending["model"] == 6 and plan.status_part()["pending"]["featureGroups"] == [{"name": "g", "version": 3}]


@pytest.mark.parametrize("limit,expected", [(2, [2, 1]), (0, [])])
def test_history_limit(limit, expected):
    status = {"stable": rev(3, revision=3), "history": [rev(2, revision=2), rev(1, revision=1)]}
    plan = plan_rollout(status, want(4, history_limit=limit), Observed(3, True), T0)
    # With limit 0 the old pair stays stable (so its features stay) until the new one is ready.
    assert plan.stable["model"] == 3
    done = plan_rollout(plan.status_part(), want(4, history_limit=limit), Observed(4, True, "", "k", 100), T0)
    assert [h["revision"] for h in done.history] == [3, 2, 1][:limit] if limit else done.history == []


def test_canary_where_kserve_cannot_split_traffic_is_held_back_or_rolled_out_by_choice():
    held = plan_rollout(STABLE, want(5, canary_percent=10, traffic_split=False), Observed(2, True), T0)
    assert held.target is None and held.render["model"] == 4
    assert held.progressing[:2] == (False, "TrafficSplitUnsupported") and "whenUnsupported" in held.progressing[2]
    full = plan_rollout(STABLE, want(5, canary_percent=10, traffic_split=False, canary_fallback="rollOut"), Observed(2, True), T0)
    assert full.target["model"] == 5 and full.canary_percent is None


def test_batch_target_waits_for_its_first_run_and_a_failed_run_rolls_back_at_once():
    w = want(5, deadline=False, generation=4)
    plan = plan_rollout(STABLE, w, Observed(2, True), T0)  # the newest run is still the stable revision's
    assert plan.target["model"] == 5 and plan.requeue_after is None
    later = plan_rollout(plan.status_part(), w, Observed(2, True), T0 + timedelta(days=1))
    assert later.target is not None and later.failed is None, "no deadline while waiting for a scheduled run"
    ok = plan_rollout(plan.status_part(), w, Observed(3, True), T0 + timedelta(hours=1))
    assert ok.stable["model"] == 5 and ok.target is None
    refused = plan_rollout(plan.status_part(), w, Observed(3, False, "SkewGuard: feature view 2 expected"), T0)
    assert refused.stable["model"] == 4 and refused.render["model"] == 4 and refused.failed["reason"] == "RunFailed"
    assert refused.rolled_back == "RunFailed" and "SkewGuard" in refused.failed["message"]
