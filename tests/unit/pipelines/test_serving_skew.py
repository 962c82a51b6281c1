"""The load-time skew guard: a revision is ready only when model, feature view and online features agree."""

from __future__ import annotations

import pytest

from fti_pipelines.contract import PipelineError
from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.revision import Revision
from fti_pipelines.store.online import open_online_store
from support.serving_fixtures import DEFAULTS, PROFILES, TX, build_revision


def load(rev, spec=None, **kw) -> Revision:
    revision = Revision(ServingConfig.from_spec(spec or rev.spec), rev.artifact_store, rev.online_store, **kw)
    revision.load()
    return revision


def reasons(revision: Revision) -> list[str]:
    return [p.reason for p in revision.problems]


def test_matching_revision_is_ready(tmp_path):
    revision = load(build_revision(tmp_path))
    assert revision.ready and revision.problems == []


def test_feature_view_other_than_the_trained_one_is_refused(tmp_path):
    rev = build_revision(tmp_path, card_view_version=1, view_version=2)
    revision = load(rev)
    assert not revision.ready
    assert reasons(revision) == ["FeatureViewMismatch"]
    assert "trained on feature view fraud v1" in revision.reason and "fraud v2" in revision.reason


def test_feature_group_version_not_online_is_refused_then_recovers(tmp_path):
    rev = build_revision(tmp_path, materialize=(TX,))
    revision = load(rev, recheck_seconds=0)
    assert not revision.ready
    assert reasons(revision) == ["FeaturesNotMaterialized"]
    assert "card_profiles v1" in revision.reason
    # Materializing the missing version makes the same server ready at its next check.
    from support.serving_fixtures import feature_frames

    store = open_online_store(rev.online_store, "default")
    store.write(PROFILES[0], PROFILES[1], ["cc_num"], "event_time", feature_frames()[1])
    store.close()
    assert revision.recheck() and revision.ready


def test_rejected_model_is_never_served(tmp_path):
    revision = load(build_revision(tmp_path, verdict="Rejected"), recheck_seconds=0)
    assert reasons(revision) == ["ModelNotValidated"]
    assert "roc_auc 0.51" in revision.reason
    assert not revision.recheck()


def test_missing_model_version_is_refused(tmp_path):
    rev = build_revision(tmp_path)
    spec = {**rev.spec, "model": {"name": "fraud", "version": 9}}
    revision = load(rev, spec)
    assert reasons(revision) == ["ModelNotFound"]


def test_defaults_must_cover_every_looked_up_column(tmp_path):
    rev = build_revision(tmp_path, missing_entity="defaults", defaults={"amount_sum_1d": 0.0})
    revision = load(rev)
    assert reasons(revision) == ["DefaultsIncomplete"]
    assert "tx_count_1d" in revision.reason
    (tmp_path / "ok").mkdir()
    ok = build_revision(tmp_path / "ok", missing_entity="defaults", defaults=DEFAULTS)
    assert load(ok).ready


def test_online_columns_missing_are_refused(tmp_path):
    rev = build_revision(tmp_path, materialize=(PROFILES,))
    from support.serving_fixtures import feature_frames

    store = open_online_store(rev.online_store, "default")
    store.write(TX[0], TX[1], ["cc_num"], "event_time", feature_frames()[0].drop(columns=["tx_count_1d"]))
    store.close()
    revision = load(rev)
    assert reasons(revision) == ["FeatureColumnsMissing"] and "tx_count_1d" in revision.reason


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"model": {"name": "fraud", "version": "latest"}, "featureView": {"name": "fraud", "version": 1}}, "spec.model.version"),
        ({"model": {"name": "fraud", "version": 1}}, "spec.featureView"),
        (
            {
                "model": {"name": "fraud", "version": 1},
                "featureView": {"name": "fraud", "version": 1},
                "online": {"missingEntity": "maybe"},
            },
            "spec.online.missingEntity",
        ),
    ],
)
def test_spec_errors_name_the_field(spec, field):
    with pytest.raises(PipelineError) as err:
        ServingConfig.from_spec(spec)
    assert field in err.value.message


def test_unreachable_online_store_is_a_transient_not_ready(tmp_path):
    from fti_pipelines.serving.launch import free_port

    rev = build_revision(tmp_path)
    revision = Revision(
        ServingConfig.from_spec(rev.spec), rev.artifact_store, f"redis://127.0.0.1:{free_port()}/0", recheck_seconds=0
    )
    assert not revision.load()
    assert reasons(revision) == ["OnlineStoreUnavailable"]
