"""The card-fraud example: manifests parse, the generator is deterministic and consistent,
the aggregates are computed as of each transaction, and the model's columns can be served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fti_operator.api import load_manifests
from fti_pipelines.examples import fraud

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "fraud"


def by_kind(resources):
    out: dict[str, list] = {}
    for r in resources:
        out.setdefault(r.kind, []).append(r)
    return out


def test_manifests_parse_with_the_operator_models():
    kinds = by_kind(load_manifests([EXAMPLE]))
    assert sorted((k, len(v)) for k, v in kinds.items()) == [
        ("FeaturePipeline", 2),
        ("InferenceService", 2),
        ("TrainingPipeline", 1),
    ]
    modes = sorted(r.spec.mode for r in kinds["InferenceService"])
    assert modes == ["batch", "online"]


def test_manifests_are_consistent_with_each_other_and_the_generator():
    kinds = by_kind(load_manifests([EXAMPLE]))
    groups = {fp.spec.feature_group.name: fp.spec for fp in kinds["FeaturePipeline"]}
    training = kinds["TrainingPipeline"][0].spec
    view = training.feature_view
    # Every feature group version the view reads is produced by a FeaturePipeline, online.
    for ref in view.feature_groups:
        assert ref.name in groups and groups[ref.name].feature_group.version == ref.version
        assert groups[ref.name].feature_group.online
    # Every column the view selects exists in what the pipelines produce.
    tx = fraud.aggregate_transactions(fraud.transactions(n_cards=50, days=3))
    produced = {"card_transactions": set(tx.columns), "card_profiles": set(fraud.card_profiles(n_cards=50).columns)}
    for sel in view.features:
        assert set(sel.columns) <= produced[sel.feature_group.name]
    assert view.label.column in produced[view.label.feature_group.name]
    assert training.evaluation.bias.sensitive_column in produced["card_profiles"]
    # The online service can provide every model column: request features + online lookups.
    online = next(r for r in kinds["InferenceService"] if r.spec.mode == "online").spec.online
    assert set(online.request_features) <= set(view.feature_columns)
    # The generator params in the manifests match the training window.
    params = groups["card_transactions"].source.generator.params
    start = pd.Timestamp(params["start"])
    assert training.training_data.start == start.to_pydatetime()
    assert training.training_data.end == (start + pd.Timedelta(days=params["days"])).to_pydatetime()
    assert groups["card_transactions"].transform == "fti_pipelines.examples.fraud:aggregate_transactions"


def test_generator_is_deterministic_and_seed_dependent():
    a = fraud.transactions(n_cards=100, days=5, seed=1)
    pd.testing.assert_frame_equal(a, fraud.transactions(n_cards=100, days=5, seed=1))
    assert not a.equals(fraud.transactions(n_cards=100, days=5, seed=2))
    pd.testing.assert_frame_equal(fraud.card_profiles(n_cards=100, seed=1), fraud.card_profiles(n_cards=100, seed=1))


def test_transactions_have_unique_card_times_labels_and_a_learnable_signal():
    tx = fraud.transactions(n_cards=1000, days=10, seed=7)
    assert not tx.duplicated(["cc_num", "event_time"]).any()
    assert set(tx.is_fraud.unique()) == {0, 1}
    assert set(tx.category.unique()) <= set(fraud.CATEGORIES)
    assert tx.event_time.is_monotonic_increasing and str(tx.event_time.dt.tz) == "UTC"
    assert 0.002 < tx.is_fraud.mean() < 0.05
    assert tx[tx.is_fraud == 1].amount.median() > 3 * tx[tx.is_fraud == 0].amount.median()
    # The sensitive column matters: young card holders see more fraud.
    ages = fraud.card_profiles(n_cards=1000, seed=7).set_index("cc_num").age_group
    rate = tx.assign(age=tx.cc_num.map(ages)).groupby("age").is_fraud.mean()
    assert rate["18-25"] > rate["41-60"]


def test_profiles_cover_every_card_and_precede_the_window():
    tx = fraud.transactions(n_cards=200, days=5, seed=4)
    prof = fraud.card_profiles(n_cards=200, seed=4)
    assert prof.cc_num.is_unique and set(tx.cc_num) <= set(prof.cc_num)
    assert (prof.event_time < tx.event_time.min()).all()
    assert set(prof.age_group) == set(fraud.AGE_GROUPS)


def test_aggregates_are_as_of_each_transaction_and_keep_every_row():
    tx = fraud.transactions(n_cards=60, days=10, seed=5)
    agg = fraud.aggregate_transactions(tx)
    assert len(agg) == len(tx) and agg.is_fraud.sum() == tx.is_fraud.sum()
    rng = np.random.default_rng(0)
    for i in rng.choice(len(agg), 40, replace=False):
        row = agg.iloc[i]
        mine = tx[tx.cc_num == row.cc_num]
        day = mine[(mine.event_time <= row.event_time) & (mine.event_time >= row.event_time - pd.Timedelta(days=1))]
        week = mine[(mine.event_time <= row.event_time) & (mine.event_time >= row.event_time - pd.Timedelta(days=7))]
        assert row.tx_count_1d == len(day)  # never counts a later transaction
        assert row.amount_sum_1d == pytest.approx(day.amount.sum(), abs=0.01)
        assert row.amount_avg_7d == pytest.approx(week.amount.mean(), abs=0.01)
        assert row.amount_max_7d == pytest.approx(week.amount.max(), abs=0.01)


def test_generator_scales_and_rejects_bad_params():
    assert len(fraud.transactions(n_cards=10, days=1, tx_per_day=1.0)) < len(
        fraud.transactions(n_cards=10, days=1, tx_per_day=20.0)
    )
    with pytest.raises(ValueError, match="n_cards"):
        fraud.transactions(n_cards=0)
    with pytest.raises(ValueError, match="noise"):
        fraud.transactions(noise=1.5)
    with pytest.raises(ValueError, match="amount"):
        fraud.aggregate_transactions(pd.DataFrame({"cc_num": [1], "event_time": [pd.Timestamp.now(tz="UTC")]}))
