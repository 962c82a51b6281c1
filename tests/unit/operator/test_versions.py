"""Table tests of the pure version logic (docs/versions.md)."""

from __future__ import annotations

import pytest

from fti_operator.versions import (
    FeatureGroupAvailability as FA,  # noqa: N814 - short, so each case of the tables below is one line
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

FG = (("card_transactions", 2), ("card_profiles", 1))


def m(version, phase="Validated", fv=1, groups=FG, uri=None):
    return ModelInfo("fraud", version, phase, "fraud", fv, tuple(groups), uri or f"s3://ml/models/fraud/{version}/model")


@pytest.mark.parametrize("existing,expected", [([], 1), ([1], 2), ([3, 1, 2], 4), ([7], 8)])
def test_next_model_version(existing, expected):
    assert next_model_version(existing) == expected


@pytest.mark.parametrize(
    "models,requested,expected",
    [
        ([], "latest", None),
        ([m(1), m(2, "Rejected")], "latest", 1),
        ([m(1), m(2), m(3, "Training")], "latest", 2),
        ([m(1, "Failed")], "latest", None),
        ([m(1), m(2)], 1, 1),
        ([m(1), m(2, "Rejected")], 2, 2),  # a pinned number resolves in any phase; decide_pair refuses it
        ([m(1)], 5, None),
    ],
)
def test_resolve_model(models, requested, expected):
    got = resolve_model(requested, models)
    assert (got.version if got else None) == expected


ALL_ONLINE = {g: FA(True, True) for g in FG}


@pytest.mark.parametrize(
    "model,availability,mode,allowed,reason",
    [
        (None, ALL_ONLINE, "online", False, "ModelNotFound"),
        (m(2, "Rejected"), ALL_ONLINE, "online", False, "ModelNotValidated"),
        (m(2, "Training"), ALL_ONLINE, "online", False, "ModelNotValidated"),
        (m(2), ALL_ONLINE, "online", True, "Servable"),
        (m(2), {FG[0]: FA(True, True)}, "online", False, "FeaturesNotReady"),
        (m(2), {FG[0]: FA(True, True), FG[1]: FA(True, False)}, "online", False, "FeaturesNotReady"),
        (m(2), {FG[0]: FA(True, True), FG[1]: FA(True, False)}, "batch", True, "Servable"),
        (m(2), {FG[0]: FA(False, False), FG[1]: FA(True, True)}, "batch", False, "FeaturesNotReady"),
        (m(2, groups=()), ALL_ONLINE, "online", False, "FeaturesNotReady"),
    ],
)
def test_decide_pair(model, availability, mode, allowed, reason):
    d = decide_pair("latest", "fraud", model, availability, mode)
    assert (d.allowed, d.reason) == (allowed, reason)
    if reason == "FeaturesNotReady" and model.feature_groups:
        assert "card_" in d.message  # names the feature group that is missing


def test_models_from_status_roundtrip():
    status = {
        "modelVersions": [
            {
                "version": 2,
                "phase": "Validated",
                "featureView": {"name": "fraud", "version": 1},
                "featureGroups": [{"name": "a", "version": 1}],
                "storageUri": "s3://x",
            }
        ]
    }
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
    assert served_model_versions(
        {
            "serving": {"revision": 2, "model": 4, "featureView": 1},
            "canary": {"revision": 3, "model": 5, "featureView": 2},
            "history": [{"revision": 1, "model": 3, "featureView": 1}],
        }
    ) == [4, 5, 3]
    assert served_model_versions(None) == []
