"""Feature lookup: plan from the model card, rows in model order, request validation, missing entities."""

from __future__ import annotations

import math

import pytest
from support.serving_fixtures import COLUMNS, DEFAULTS, build_revision, model_card, serving_spec

from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.errors import RequestError
from fti_pipelines.serving.lookup import FeatureLookup, check_value, event_time_seconds
from fti_pipelines.serving.plan import NUMBER, STRING, PlanError, build_plan
from fti_pipelines.store.online import open_online_store


def config(**kw) -> ServingConfig:
    return ServingConfig.from_spec(serving_spec(**kw))


def test_plan_follows_the_feature_view_order_and_skips_request_features():
    plan = build_plan(model_card(), config())
    assert plan.columns == tuple(COLUMNS)
    assert plan.request_features == (("amount", 0), ("category", 1))
    assert [(g.name, g.version, g.columns, g.positions) for g in plan.groups] == [
        ("card_transactions", 2, ("amount_sum_1d", "tx_count_1d"), (2, 3)),
        ("card_profiles", 1, ("age_group", "credit_limit"), (4, 5)),
    ]
    assert plan.entity_keys == ("cc_num",)
    assert plan.kinds["amount"] == NUMBER and plan.kinds["category"] == STRING


def test_plan_rejects_request_features_the_model_does_not_take():
    spec = serving_spec()
    spec["online"]["requestFeatures"] = ["amount", "zip_code"]
    with pytest.raises(PlanError) as err:
        build_plan(model_card(), ServingConfig.from_spec(spec))
    assert err.value.reason == "RequestFeatureNotInView" and "zip_code" in err.value.message


def test_plan_with_every_column_sent_needs_no_lookup():
    spec = serving_spec()
    spec["online"]["requestFeatures"] = COLUMNS
    plan = build_plan(model_card(), ServingConfig.from_spec(spec))
    assert plan.groups == () and plan.entity_keys == ()


@pytest.fixture(scope="module")
def revision(tmp_path_factory):
    return build_revision(tmp_path_factory.mktemp("lookup"))


@pytest.fixture
def store(revision):
    s = open_online_store(revision.online_store)
    yield s
    s.close()


def make_lookup(store, **kw) -> FeatureLookup:
    cfg = config(**kw)
    return FeatureLookup(build_plan(model_card(), cfg, key_dtypes={"cc_num": "int64"}), store,
                         missing_entity=cfg.online.missing_entity, defaults=cfg.online.defaults, max_instances=3)


def test_lookup_builds_rows_in_model_order(revision, store):
    result = make_lookup(store).lookup([revision.instance(1000), revision.instance(1007, 9.5, "travel")])
    assert result.rows == [revision.expected_row(1000), revision.expected_row(1007, 9.5, "travel")]
    assert result.defaults_used == [False, False]


def test_unknown_entity_is_rejected_with_the_key_named(revision, store):
    with pytest.raises(RequestError) as err:
        make_lookup(store).lookup([revision.instance(1000), revision.instance(424242)])
    assert err.value.status == 404
    assert err.value.field == "instances[1].cc_num"
    assert "cc_num=424242" in err.value.message and "card_transactions v2" in err.value.message


def test_unknown_entity_with_defaults_is_served_and_flagged(revision, store):
    result = make_lookup(store, missing_entity="defaults", defaults=DEFAULTS).lookup(
        [revision.instance(424242, 5.0, "grocery"), revision.instance(1001)])
    assert result.defaults_used == [True, False]
    assert result.rows[0] == [5.0, "grocery", 0.0, 0, "26-40", 2500.0]
    assert result.rows[1] == revision.expected_row(1001)


@pytest.mark.parametrize("instance, field, text", [
    ({"amount": 1.0, "category": "x"}, "instances[0].cc_num", "missing"),
    ({"cc_num": "1000", "amount": 1.0, "category": "x"}, "instances[0].cc_num", "expected an integer"),
    ({"cc_num": 1000.5, "amount": 1.0, "category": "x"}, "instances[0].cc_num", "expected an integer"),
    ({"cc_num": 1000, "category": "x"}, "instances[0].amount", "missing"),
    ({"cc_num": 1000, "amount": "12", "category": "x"}, "instances[0].amount", "expected a number"),
    ({"cc_num": 1000, "amount": True, "category": "x"}, "instances[0].amount", "expected a number"),
    ({"cc_num": 1000, "amount": 1.0, "category": 7}, "instances[0].category", "expected a string"),
    ({"cc_num": 1000, "amount": None, "category": "x"}, "instances[0].amount", "required"),
    ([1000, 1.0, "x"], "instances[0]", "expected an object"),
])
def test_bad_instances_name_the_field(store, instance, field, text):
    with pytest.raises(RequestError) as err:
        make_lookup(store).lookup([instance])
    assert err.value.status == 400 and err.value.field == field and text in err.value.message


def test_request_size_and_shape_are_checked(store):
    lookup = make_lookup(store)
    with pytest.raises(RequestError) as err:
        lookup.validate([{}] * 4)
    assert err.value.status == 413 and err.value.field == "instances"
    with pytest.raises(RequestError) as err:
        lookup.validate([])
    assert err.value.status == 400
    with pytest.raises(RequestError) as err:
        lookup.validate({"cc_num": 1})
    assert err.value.status == 400 and "list" in err.value.message


def test_check_value_and_event_times():
    assert check_value(3, NUMBER, "f") == 3
    with pytest.raises(RequestError):
        check_value(float("inf"), NUMBER, "f")
    assert event_time_seconds("1970-01-01T00:01:00Z") == 60.0
    assert event_time_seconds(60_000) == 60_000.0  # below 1e11: already seconds
    assert math.isclose(event_time_seconds(1_700_000_000_000), 1_700_000_000.0)
    assert event_time_seconds("not a time") is None


def test_prepared_sqlite_reader_answers_like_the_store(revision, store):
    from fti_pipelines.serving.sqlite_reader import readers_for

    readers = readers_for(store)
    cols = ["amount_sum_1d", "tx_count_1d", "event_time"]
    read = readers.reader("card_transactions", 2, cols)
    raw = readers.reader("card_transactions", 2, cols, raw=("event_time",))
    try:
        for key in (1000, 1025, 1049, 424242):
            assert read((key,)) == store.get("card_transactions", 2, (key,), cols)
        got = raw((1000,))
        assert event_time_seconds(got["event_time"]) == event_time_seconds(read((1000,))["event_time"])
        with pytest.raises(KeyError):
            readers.reader("card_transactions", 2, ["no_such_column"])
    finally:
        readers.close()
