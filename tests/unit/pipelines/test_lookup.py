"""Feature lookup: plan from the model card, rows in model order, request validation, missing entities."""

from __future__ import annotations

import math
import time

import pytest

from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.errors import RequestError
from fti_pipelines.serving.lookup import FeatureLookup, check_value, entity_reads, event_time_seconds
from fti_pipelines.serving.plan import NUMBER, STRING, PlanError, build_plan
from fti_pipelines.store.online import open_online_store
from support.serving_fixtures import COLUMNS, DEFAULTS, build_revision, feature_frames, model_card, serving_spec


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
    s = open_online_store(revision.online_store, "default")
    yield s
    s.close()


def make_lookup(store, **kw) -> FeatureLookup:
    cfg = config(**kw)
    return FeatureLookup(
        build_plan(model_card(), cfg, key_dtypes={"cc_num": "int64"}),
        store,
        missing_entity=cfg.online.missing_entity,
        defaults=cfg.online.defaults,
        max_instances=3,
    )


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
        [revision.instance(424242, 5.0, "grocery"), revision.instance(1001)]
    )
    assert result.defaults_used == [True, False]
    assert result.rows[0] == [5.0, "grocery", 0.0, 0, "26-40", 2500.0]
    assert result.rows[1] == revision.expected_row(1001)


@pytest.mark.parametrize(
    "instance, field, text",
    [
        ({"amount": 1.0, "category": "x"}, "instances[0].cc_num", "missing"),
        ({"cc_num": "1000", "amount": 1.0, "category": "x"}, "instances[0].cc_num", "expected an integer"),
        ({"cc_num": 1000.5, "amount": 1.0, "category": "x"}, "instances[0].cc_num", "expected an integer"),
        ({"cc_num": 1000, "category": "x"}, "instances[0].amount", "missing"),
        ({"cc_num": 1000, "amount": "12", "category": "x"}, "instances[0].amount", "expected a number"),
        ({"cc_num": 1000, "amount": True, "category": "x"}, "instances[0].amount", "expected a number"),
        ({"cc_num": 1000, "amount": 1.0, "category": 7}, "instances[0].category", "expected a string"),
        ({"cc_num": 1000, "amount": None, "category": "x"}, "instances[0].amount", "required"),
        ({"cc_num": 1000, "amount": float("inf"), "category": "x"}, "instances[0].amount", "finite"),
        ({"cc_num": 1000, "amount": float("nan"), "category": "x"}, "instances[0].amount", "finite"),
        ({"cc_num": 1000, "amount": 1.0, "category": ["x"]}, "instances[0].category", "expected a string"),
        ({"cc_num": True, "amount": 1.0, "category": "x"}, "instances[0].cc_num", "expected an integer"),
        ([1000, 1.0, "x"], "instances[0]", "expected an object"),
    ],
)
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


def readers_of(store):
    """Every entity reader a lookup may run on: the server's prepared read-only one, the
    store's own (SQLite: one statement under its lock) and the base class's generic one."""
    from fti_pipelines.store.online import OnlineStore

    prepared = store.prepared_readers()
    # A memory map, not SQLite's own page cache (emptied by every write in WAL mode).
    # (The store is a namespace's view: its readers wrap the backend's.)
    assert getattr(prepared, "inner", prepared)._con.execute("PRAGMA mmap_size").fetchone()[0] >= 1 << 30
    return {
        "prepared": prepared.entity_reader,
        "store": store.entity_reader,
        "generic": lambda reads: OnlineStore.entity_reader(store, reads),
    }


@pytest.mark.parametrize("reader", ["prepared", "store", "generic"])
def test_one_instance_reads_every_group_at_once_and_answers_like_a_batch(revision, store, reader):
    plan = build_plan(model_card(), config(), key_dtypes={"cc_num": "int64"})
    read = readers_of(store)[reader](entity_reads(plan))
    lookup = FeatureLookup(plan, store, reader=read)
    for cc_num in (1000, 1025, 1049):
        one = lookup.lookup([revision.instance(cc_num, 3.5, "travel")])
        assert one.rows == [revision.expected_row(cc_num, 3.5, "travel")] and one.defaults_used == [False]
        batch = lookup.lookup([revision.instance(cc_num, 3.5, "travel"), revision.instance(1000)])
        assert batch.rows[0] == one.rows[0]
    with pytest.raises(RequestError) as err:
        lookup.lookup([revision.instance(424242)])
    assert err.value.status == 404 and err.value.field == "instances[0].cc_num"
    assert "cc_num=424242" in err.value.message and "card_transactions v2" in err.value.message


def test_one_unknown_instance_with_defaults_is_served_and_flagged(store):
    result = make_lookup(store, missing_entity="defaults", defaults=DEFAULTS).lookup(
        [{"cc_num": 424242, "amount": 5.0, "category": "grocery"}]
    )
    assert result.defaults_used == [True]
    assert result.rows == [[5.0, "grocery", 0.0, 0, "26-40", 2500.0]]


@pytest.mark.parametrize("instances_per_request", [1, 3])
def test_metrics_count_every_lookup_and_bin_the_feature_ages(revision, store, instances_per_request):
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.utils import floatToGoString

    from fti_pipelines.serving.metrics import AGE_BUCKETS, RevisionMetrics

    labels = {
        "model": "lookup-test",
        "model_version": str(instances_per_request),
        "feature_view": "fraud",
        "feature_view_version": "1",
    }
    plan = build_plan(model_card(), config(), key_dtypes={"cc_num": "int64"})
    metrics = RevisionMetrics(labels, [g.label for g in plan.groups])
    lookup = FeatureLookup(plan, store, metrics=metrics, max_instances=3)
    cards = [1000 + i % 50 for i in range(30)]
    before = time.time()
    for start in range(0, len(cards), instances_per_request):
        lookup.lookup([revision.instance(c) for c in cards[start : start + instances_per_request]])
    after = time.time()
    text = generate_latest(REGISTRY).decode()
    got = {
        (s.name, s.labels.get("feature_group"), s.labels.get("le")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if all(s.labels.get(k) == v for k, v in labels.items())
    }
    assert got[("fti_feature_lookup_seconds_count", None, None)] == len(cards) // instances_per_request
    tx, profiles = feature_frames()
    for group, frame in (("card_transactions@v2", tx), ("card_profiles@v1", profiles)):
        seen = dict(zip(frame["cc_num"].tolist(), (frame["event_time"].astype("int64") // 1000 / 1e6).tolist(), strict=True))
        ages = [before - seen[c] for c in cards]
        assert got[("fti_feature_age_seconds_count", group, None)] == len(cards)
        assert sum(ages) <= got[("fti_feature_age_seconds_sum", group, None)] <= sum(ages) + len(cards) * (after - before)
        for bound in AGE_BUCKETS:
            le = floatToGoString(bound)
            assert got[("fti_feature_age_seconds_bucket", group, le)] == sum(a <= bound for a in ages), (group, le)


def test_prepared_reader_sees_what_the_feature_pipeline_writes_later(tmp_path):
    import pandas as pd

    from fti_pipelines.store.online import EntityRead

    def rows(amount: float, n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "cc_num": list(range(n)),
                "amount": [amount] * n,
                "event_time": [pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=amount)] * n,
            }
        )

    writer = open_online_store(f"sqlite:///{tmp_path}/online.db")
    writer.write("tx", 1, ["cc_num"], "event_time", rows(1.0, 2000))
    readers = writer.prepared_readers()
    read = readers.entity_reader([EntityRead("tx", 1, ("amount",))])
    try:
        assert list(read({"cc_num": 5})) == [5, 1.0] and read({"cc_num": 2500})[0] is None
        writer.write("tx", 1, ["cc_num"], "event_time", rows(2.0, 3000))  # newer values, more keys, a bigger file
        assert list(read({"cc_num": 5})) == [5, 2.0] and list(read({"cc_num": 2500})) == [2500, 2.0]
    finally:
        readers.close()
        writer.close()


def test_an_event_time_the_model_takes_as_a_feature_stays_a_string_and_still_ages(revision, store):
    from fti_pipelines.serving.metrics import RevisionMetrics

    card = model_card()
    card["featureView"]["features"][1]["columns"].append("event_time")
    card["featureView"]["columns"] = [*COLUMNS, "event_time"]
    plan = build_plan(card, config(), key_dtypes={"cc_num": "int64"})
    assert [r.micros for r in entity_reads(plan)] == [("event_time",), ()]
    labels = {"model": "event-time-feature", "model_version": "1", "feature_view": "fraud", "feature_view_version": "1"}
    metrics = RevisionMetrics(labels, [g.label for g in plan.groups])
    lookup = FeatureLookup(plan, store, metrics=metrics)
    one = lookup.lookup([revision.instance(1000)]).rows[0]
    assert one[:6] == revision.expected_row(1000) and one[6] == "2026-10-02T00:00:00Z"
    assert lookup.lookup([revision.instance(1000), revision.instance(1001)]).rows[0] == one
    ages = metrics.age["card_profiles@v1"]
    ages.fold()
    assert int(ages.counts.sum()) == 3 and ages.sum > 3 * 30 * 86400  # three rows, each older than 30 days


@pytest.mark.redis
def test_one_instance_on_redis_answers_like_sqlite(revision, store, redis_url):
    from support.serving_fixtures import PROFILES, TX

    redis_store = open_online_store(redis_url)
    try:
        tx, profiles = feature_frames()
        redis_store.write(TX[0], TX[1], ["cc_num"], "event_time", tx)
        redis_store.write(PROFILES[0], PROFILES[1], ["cc_num"], "event_time", profiles)
        on_redis, on_sqlite = make_lookup(redis_store), make_lookup(store)
        for cc_num in (1000, 1031):
            assert on_redis.lookup([revision.instance(cc_num)]).rows == on_sqlite.lookup([revision.instance(cc_num)]).rows
        with pytest.raises(RequestError) as err:
            on_redis.lookup([revision.instance(424242)])
        assert err.value.status == 404 and "card_transactions v2" in err.value.message
    finally:
        redis_store.close()


def test_prepared_reader_answers_alike_on_other_threads_and_sees_later_writes(tmp_path):
    import sqlite3
    import threading

    import pandas as pd

    from fti_pipelines.store.online import EntityRead

    def rows(amount: float) -> pd.DataFrame:
        when = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=amount)
        return pd.DataFrame({"cc_num": range(100), "amount": [amount] * 100, "event_time": [when] * 100})

    writer = open_online_store(f"sqlite:///{tmp_path}/online.db")
    writer.write("tx", 1, ["cc_num"], "event_time", rows(1.0))
    readers = writer.prepared_readers()
    read = readers.entity_reader([EntityRead("tx", 1, ("amount", "event_time"), ("event_time",))])
    try:
        here = [tuple(read({"cc_num": k})) for k in range(0, 100, 7)]  # the building thread's own cursor
        there: list = []
        worker = threading.Thread(target=lambda: there.extend(tuple(read({"cc_num": k})) for k in range(0, 100, 7)))
        worker.start()
        worker.join(timeout=60)
        assert there == here and here[1][:2] == (7, 1.0)
        writer.write("tx", 1, ["cc_num"], "event_time", rows(2.0))
        # The reused cursor's statement ran to its end: no read snapshot holds the WAL back.
        with sqlite3.connect(tmp_path / "online.db") as con:
            assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
        assert tuple(read({"cc_num": 7}))[:2] == (7, 2.0)
    finally:
        readers.close()
        writer.close()
