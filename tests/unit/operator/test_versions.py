"""Table tests of the pure version logic (DESIGN §4)."""

from __future__ import annotations

import pytest

from fti_operator.versions import (
    FeatureGroupAvailability as FA,  # noqa: N814 - short, so each case of the tables below is one line
)
from fti_operator.versions import (
    ModelInfo,
    decide_pair,
    fg_version_states,
    latest_validated,
    models_from_status,
    needed_feature_groups,
    next_model_version,
    resolve_model,
)
from fti_operator.versions.retention import served_model_versions
from fti_operator.versions.rollout import plan_rollout
from fti_operator.versions.serving import ServingDecision

FG = (("card_transactions", 2), ("card_profiles", 1))


def m(version, phase="Validated", fv=1, groups=FG, uri=None):
    return ModelInfo("fraud", version, phase, "fraud", fv, tuple(groups), uri or f"s3://ml/models/fraud/{version}/model")


@pytest.mark.parametrize("existing,expected", [([], 1), ([1], 2), ([3, 1, 2], 4), ([7], 8)])
def test_next_model_version(existing, expected):
    assert next_model_version(existing) == expected


@pytest.mark.parametrize("models,requested,expected", [
    ([], "latest", None),
    ([m(1), m(2, "Rejected")], "latest", 1),
    ([m(1), m(2), m(3, "Training")], "latest", 2),
    ([m(1, "Failed")], "latest", None),
    ([m(1), m(2)], 1, 1),
    ([m(1), m(2, "Rejected")], 2, 2),  # a pinned number resolves in any phase; decide_pair refuses it
    ([m(1)], 5, None),
])
def test_resolve_model(models, requested, expected):
    got = resolve_model(requested, models)
    assert (got.version if got else None) == expected


ALL_ONLINE = {g: FA(True, True) for g in FG}


@pytest.mark.parametrize("model,availability,mode,allowed,reason", [
    (None, ALL_ONLINE, "online", False, "ModelNotFound"),
    (m(2, "Rejected"), ALL_ONLINE, "online", False, "ModelNotValidated"),
    (m(2, "Training"), ALL_ONLINE, "online", False, "ModelNotValidated"),
    (m(2), ALL_ONLINE, "online", True, "Servable"),
    (m(2), {FG[0]: FA(True, True)}, "online", False, "FeaturesNotReady"),
    (m(2), {FG[0]: FA(True, True), FG[1]: FA(True, False)}, "online", False, "FeaturesNotReady"),
    (m(2), {FG[0]: FA(True, True), FG[1]: FA(True, False)}, "batch", True, "Servable"),
    (m(2), {FG[0]: FA(False, False), FG[1]: FA(True, True)}, "batch", False, "FeaturesNotReady"),
    (m(2, groups=()), ALL_ONLINE, "online", False, "FeaturesNotReady"),
])
def test_decide_pair(model, availability, mode, allowed, reason):
    d = decide_pair("latest", "fraud", model, availability, mode)
    assert (d.allowed, d.reason) == (allowed, reason)
    if reason == "FeaturesNotReady" and model.feature_groups:
        assert "card_" in d.message  # names the feature group that is missing


def test_models_from_status_roundtrip():
    status = {"modelVersions": [{"version": 2, "phase": "Validated", "featureView": {"name": "fraud", "version": 1},
                                 "featureGroups": [{"name": "a", "version": 1}], "storageUri": "s3://x"}]}
    [info] = models_from_status("fraud", status)
    assert info.feature_groups == (("a", 1),) and info.feature_view_version == 1 and latest_validated([info]) == info


def test_needed_feature_groups_and_states():
    models = {("fraud", 1): m(1, groups=[("card_transactions", 1)]), ("fraud", 2): m(2, groups=[("card_transactions", 2)])}
    services = [("fraud/online", "fraud", [2, 1]), ("fraud/batch", "fraud", [2])]
    needed = needed_feature_groups(services, models)
    assert needed == {("card_transactions", 1): ["fraud/online"], ("card_transactions", 2): ["fraud/batch", "fraud/online"]}
    states = fg_version_states("card_transactions", 3, [1, 2], needed)
    assert states == {3: ("Active", []), 2: ("Retained", ["fraud/batch", "fraud/online"]), 1: ("Retained", ["fraud/online"])}
    assert fg_version_states("card_transactions", 3, [1], {})[1] == ("Retired", [])


def test_served_model_versions():
    assert served_model_versions({"serving": {"revision": 2, "model": 4, "featureView": 1},
                                  "canary": {"revision": 3, "model": 5, "featureView": 2},
                                  "history": [{"revision": 1, "model": 3, "featureView": 1}]}) == [4, 5, 3]
    assert served_model_versions(None) == []


def ok(model):
    return ServingDecision(True, "Servable", "", model)


BLOCKED = ServingDecision(False, "FeaturesNotReady", "x", m(5))
S = {"serving": {"revision": 2, "model": 4, "featureView": 1, "traffic": 100},
     "history": [{"revision": 1, "model": 3, "featureView": 1}]}


@pytest.mark.parametrize("name,status,decision,canary,serving,canary_rev,history,render,events", [
    ("first rollout", None, ok(m(1)), None, (1, 1, 1), None, [], (1, 1), ["RolledOut"]),
    ("first rollout ignores canary", None, ok(m(1)), 10, (1, 1, 1), None, [], (1, 1), ["RolledOut"]),
    ("blocked keeps serving", S, BLOCKED, None, (2, 4, 1), None, [(1, 3)], (4, 1), []),
    ("blocked with nothing served", None, BLOCKED, None, None, None, [], None, []),
    ("no change", S, ok(m(4)), None, (2, 4, 1), None, [(1, 3)], (4, 1), []),
    ("immediate rollout", S, ok(m(5, fv=2)), None, (3, 5, 2), None, [(2, 4), (1, 3)], (5, 2), ["RolledOut"]),
    ("canary", S, ok(m(5, fv=2)), 10, (2, 4, 1), (3, 5, 2), [(1, 3)], (5, 2), ["CanaryStarted"]),
    ("rollback to history reuses revision", S, ok(m(3)), None, (1, 3, 1), None, [(2, 4)], (3, 1), ["RolledBack"]),
])
def test_plan_rollout(name, status, decision, canary, serving, canary_rev, history, render, events):
    plan = plan_rollout(status, decision, canary_percent=canary, history_limit=5, now="2026-11-27T00:00:00Z")
    assert ((plan.serving.revision, plan.serving.model, plan.serving.feature_view) if plan.serving else None) == serving, name
    assert ((plan.canary.revision, plan.canary.model, plan.canary.feature_view) if plan.canary else None) == canary_rev, name
    assert [(h.revision, h.model) for h in plan.history] == history, name
    assert (plan.render.pair if plan.render else None) == render, name
    assert [e[0] for e in plan.events] == events, name


def test_canary_promotion_and_abort():
    with_canary = {**S, "canary": {"revision": 3, "model": 5, "featureView": 2, "traffic": 10}}
    promoted = plan_rollout(with_canary, ok(m(5, fv=2)), canary_percent=None, history_limit=5, now="t")
    assert promoted.serving.model == 5 and promoted.canary is None and promoted.history[0].model == 4
    assert promoted.events[0][0] == "Promoted"
    aborted = plan_rollout(with_canary, ok(m(4)), canary_percent=10, history_limit=5, now="t")
    assert aborted.serving.model == 4 and aborted.canary is None and aborted.render.pair == (4, 1)
    assert aborted.events[0][0] == "CanaryAborted"
    kept = plan_rollout(with_canary, ok(m(5, fv=2)), canary_percent=10, history_limit=5, now="t")
    assert kept.canary.traffic == 10 and kept.serving.traffic == 90 and kept.render.pair == (5, 2) and kept.canary_percent == 10


def test_history_limit():
    status = {"serving": {"revision": 5, "model": 5, "featureView": 1},
              "history": [{"revision": r, "model": r, "featureView": 1} for r in (4, 3, 2, 1)]}
    plan = plan_rollout(status, ok(m(6)), canary_percent=None, history_limit=2, now="t")
    assert [h.revision for h in plan.history] == [5, 4]
