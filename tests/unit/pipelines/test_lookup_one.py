"""The one-instance lookup specialised at build time answers exactly like the general path.

Same rows, defaults, keys and errors (status, field, message) for every instance, and the
same metrics (lookup count, feature ages, missing-entity counters), on SQLite and Redis.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from fti_pipelines.serving.config import ServingConfig
from fti_pipelines.serving.errors import RequestError
from fti_pipelines.serving.lookup import FeatureLookup, entity_reads
from fti_pipelines.serving.metrics import RevisionMetrics
from fti_pipelines.serving.plan import build_plan
from fti_pipelines.store.online import open_online_store
from support.serving_fixtures import DEFAULTS, PROFILES, TX, build_revision, feature_frames, model_card, serving_spec


class Int(int):
    pass


class Dict(dict):
    pass


def instances() -> list[Any]:
    """Served, missing, defaulted and malformed instances, and types at the edge of the fast checks."""
    good = [{"cc_num": c, "amount": a, "category": cat} for c, a, cat in [(1000, 42.0, "online"), (1013, 7, "travel")]]
    return [
        *good,
        {"cc_num": 1049, "amount": 10**30, "category": "grocery", "extra": [1]},
        {"cc_num": 424242, "amount": 5.0, "category": "grocery"},  # no such card
        {"cc_num": Int(1001), "amount": 1.0, "category": "x"},  # a subclass: check_value decides
        Dict(cc_num=1002, amount=1.0, category="x"),
        {"cc_num": 1003.0, "amount": 1.0, "category": "x"},
        {"cc_num": True, "amount": 1.0, "category": "x"},
        {"cc_num": "1000", "amount": 1.0, "category": "x"},
        {"cc_num": 1000, "amount": True, "category": "x"},
        {"cc_num": 1000, "amount": float("inf"), "category": "x"},
        {"cc_num": 1000, "amount": float("-inf"), "category": "x"},
        {"cc_num": 1000, "amount": float("nan"), "category": "x"},
        {"cc_num": 1000, "amount": None, "category": "x"},
        {"cc_num": 1000, "amount": 1.0, "category": 7},
        {"cc_num": 1000, "amount": 1.0},
        {"amount": 1.0, "category": "x"},
        [1000, 1.0, "x"],
        None,
    ]


def outcome(lookup: FeatureLookup, instance: Any) -> tuple:
    try:
        r = lookup.lookup([instance])
    except RequestError as exc:
        return ("error", exc.status, exc.field, exc.message)
    rows = [["NaN" if isinstance(v, float) and math.isnan(v) else v for v in row] for row in r.rows]
    return ("ok", rows, r.defaulted, r.keys, [type(v) for v in r.rows[0]])


def metrics_of(metrics: RevisionMetrics) -> dict[str, Any]:
    out: dict[str, Any] = {}
    metrics.lookup.fold()
    out["lookups"] = int(metrics.lookup.counts.sum())
    for group, ages in metrics.age.items():
        ages.fold()
        out[group] = (ages.counts.tolist(), ages.sum)
    for action, counters in (("rejected", metrics.rejected), ("defaulted", metrics.defaulted)):
        for group, counter in counters.items():
            out[f"{action} {group}"] = counter._value.get()
    return out


def pair(store: Any, tag: str, **spec: Any) -> tuple[FeatureLookup, FeatureLookup]:
    """(specialised, general) lookups over `store`, each with metrics of its own."""
    cfg = ServingConfig.from_spec(serving_spec(**spec))
    plan = build_plan(model_card(), cfg, key_dtypes={"cc_num": "int64"})
    made = []
    for specialise in (True, False):
        labels = {"model": f"one-{tag}", "model_version": str(specialise), "feature_view": "fraud", "feature_view_version": "1"}
        made.append(
            FeatureLookup(
                plan,
                store,
                missing_entity=cfg.online.missing_entity,
                defaults=cfg.online.defaults,
                metrics=RevisionMetrics(labels, [g.label for g in plan.groups]),
                specialise=specialise,
            )
        )
    assert made[0]._one is not None and made[1]._one is None
    return made[0], made[1]


def assert_same(fast: FeatureLookup, general: FeatureLookup, cases: list[Any]) -> None:
    for instance in cases:
        assert outcome(fast, instance) == outcome(general, instance), instance
    a, b = metrics_of(fast.metrics), metrics_of(general.metrics)  # type: ignore[arg-type]
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], tuple):  # ages: now() differs by the microseconds between the calls
            assert a[name][0] == b[name][0] and math.isclose(a[name][1], b[name][1], rel_tol=1e-6), name
        else:
            assert a[name] == b[name], name
    assert a["lookups"] > 0


@pytest.fixture(scope="module")
def revision(tmp_path_factory):
    return build_revision(tmp_path_factory.mktemp("lookup-one"))


@pytest.fixture
def store(revision):
    s = open_online_store(revision.online_store, "default")
    yield s
    s.close()


@pytest.mark.parametrize("missing", ["reject", "defaults"])
def test_the_specialised_path_answers_and_counts_like_the_general_one(store, missing):
    defaults = DEFAULTS if missing == "defaults" else None
    fast, general = pair(store, f"sqlite-{missing}", missing_entity=missing, defaults=defaults)
    assert_same(fast, general, instances())


@pytest.mark.parametrize("missing", ["reject", "defaults"])
def test_the_complete_reader_answers_and_counts_like_the_general_path(store, missing):
    """SQLite's prepared readers: the specialised path reads with the complete reader (no
    presence slots), and an entity missing from a group is read again by the entity reader."""
    readers = store.prepared_readers()
    try:
        defaults = DEFAULTS if missing == "defaults" else None
        fast, general = pair(store, f"complete-{missing}", missing_entity=missing, defaults=defaults)
        reads = entity_reads(fast.plan)
        complete, calls = readers.complete_reader(reads), []
        assert complete is not None

        def counted(key: Any) -> Any:
            calls.append(key)
            return complete(key)

        fast._complete = counted
        fast._read = general._read = readers.entity_reader(reads)
        assert_same(fast, general, instances())
        assert calls == [1000, 1013, 1049, 424242]  # the well-formed instances, the missing card too
    finally:
        readers.close()


def test_a_served_instance_takes_the_specialised_path(revision, store, monkeypatch):
    fast, _ = pair(store, "taken")

    def general_check(*args: Any) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(fast, "_checked", general_check)
    assert fast.lookup([revision.instance(1000)]).rows == [revision.expected_row(1000)]


def test_a_loaded_revision_serves_through_sqlites_complete_reader(revision):
    from fti_pipelines.serving.revision import Revision

    served = Revision(ServingConfig.from_spec(revision.spec), revision.artifact_store, revision.online_store)
    try:
        assert served.load(), served.reason
        assert served.lookup is not None and served.lookup.complete_reader() is not None
        assert served.lookup.lookup([revision.instance(1000)]).rows == [revision.expected_row(1000)]
    finally:
        served.store.close()


def test_stored_nulls_and_future_event_times_on_both_paths(tmp_path):
    import pandas as pd

    tx, profiles = feature_frames()
    # A writer's clock ahead of ours: the age is 0, not negative.
    tx.loc[tx["cc_num"] % 7 == 0, "event_time"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    tx["amount_sum_1d"] = tx["amount_sum_1d"].astype("float64").where(tx["cc_num"] % 2 == 0)
    tx["tx_count_1d"] = tx["tx_count_1d"].astype("Int64").where(tx["cc_num"] % 3 == 0)
    profiles["age_group"] = profiles["age_group"].where(profiles["cc_num"] % 5 == 0)
    store = open_online_store(f"sqlite:///{tmp_path}/online.db", "default")
    readers = store.prepared_readers()
    try:
        store.write(TX[0], TX[1], ["cc_num"], "event_time", tx)
        store.write(PROFILES[0], PROFILES[1], ["cc_num"], "event_time", profiles)
        fast, general = pair(store, "nulls")
        fast._read = general._read = readers.entity_reader(entity_reads(fast.plan))
        cases = [{"cc_num": c, "amount": 1.5, "category": "online"} for c in range(1000, 1031)]
        assert_same(fast, general, cases)
        row = fast.lookup([cases[1]]).rows[0]  # card 1001: no amount_sum_1d, no tx_count_1d, no age group
        assert math.isnan(row[2]) and math.isnan(row[3]) and row[4] is None
        ages = fast.metrics.age["card_transactions@v2"]  # type: ignore[union-attr]
        ages.fold()
        assert ages.counts[0] == sum(c % 7 == 0 for c in range(1000, 1031)) + 1  # the cases, then card 1001 (in the future)
    finally:
        readers.close()
        store.close()


@pytest.mark.redis
def test_the_specialised_path_answers_like_the_general_one_on_redis(redis_url):
    store = open_online_store(redis_url)
    try:
        tx, profiles = feature_frames()
        store.write(TX[0], TX[1], ["cc_num"], "event_time", tx)
        store.write(PROFILES[0], PROFILES[1], ["cc_num"], "event_time", profiles)
        for missing in ("reject", "defaults"):
            defaults = DEFAULTS if missing == "defaults" else None
            fast, general = pair(store, f"redis-{missing}", missing_entity=missing, defaults=defaults)
            assert_same(fast, general, instances())
    finally:
        store.close()


def test_the_buffered_series_stay_bounded_on_the_specialised_path(revision, store):
    from fti_pipelines.serving.metrics import PENDING_CAP

    fast, _ = pair(store, "bounded")
    assert fast.metrics is not None
    longest = 0
    for i in range(PENDING_CAP + PENDING_CAP // 2):
        fast.lookup([revision.instance(1000 + i % 50)])
        longest = max(longest, len(fast.metrics.lookup.pending), *(len(a.pending) for a in fast.metrics.age.values()))
    assert longest <= PENDING_CAP + PENDING_CAP // 4  # folded at least once, never far past the cap
    assert len(fast.metrics.lookup.pending) < PENDING_CAP
