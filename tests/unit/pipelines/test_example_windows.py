"""Window features over an incremental source: one run or thirty, the same features.

The fraud example's transform reads the 7 days before each batch from the feature
store (its `history` parameter, fti_pipelines/feature/history.py), so a month of
transactions ingested in one run and the same month ingested day by day in 30 runs
give identical rows offline and identical values online (docs/pipeline-contract.md,
"Transforms that need history").
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fti_pipelines.contract import run_pipeline
from fti_pipelines.examples import fraud
from fti_pipelines.feature import run
from fti_pipelines.feature.history import FeatureHistory
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.online import open_online_store
from fti_pipelines.store.tenancy import namespace_store

NAMESPACE = "fraud"
N_CARDS = 150


class Runs:
    """Feature-pipeline runs of the example's transactions group into one store pair."""

    def __init__(self, root: Path):
        self.root = root
        self.store_uri = f"file://{root}/store"
        self.online_uri = f"sqlite:///{root}/online.db"
        self.count = 0

    def ingest(self, source: Path) -> dict:
        self.count += 1
        spec = {
            "featureGroup": {
                "name": "card_transactions",
                "version": 1,
                "primaryKey": ["cc_num"],
                "eventTime": "event_time",
                "online": True,
            },
            "source": {"uri": f"file://{source}", "format": "parquet"},
            "transform": "fti_pipelines.examples.fraud:aggregate_transactions",
            "ingestion": "incremental",
        }
        log = self.root / f"result-{self.count}.json"
        env = {
            "FTI_SPEC": json.dumps(spec),
            "FTI_ARTIFACT_STORE": self.store_uri,
            "FTI_ONLINE_STORE": self.online_uri,
            "FTI_NAMESPACE": NAMESPACE,
            "FTI_RUN_ID": f"run-{self.count}",
            "FTI_TERMINATION_LOG": str(log),
        }
        assert run_pipeline(run, env) == 0, log.read_text()
        return json.loads(log.read_text())

    def offline(self) -> pd.DataFrame:
        features = FeatureStore(namespace_store(self.store_uri, NAMESPACE))
        return features.read("card_transactions", 1).sort_values(["event_time", "cc_num"], ignore_index=True)

    def online(self) -> list:
        with open_online_store(self.online_uri, NAMESPACE) as online:
            return online.get_many("card_transactions", 1, [(fraud.FIRST_CC_NUM + i,) for i in range(N_CARDS)])


def test_a_month_in_one_run_or_in_thirty_daily_runs_gives_the_same_features(tmp_path) -> None:
    month = fraud.transactions(n_cards=N_CARDS, days=30, seed=11)
    (tmp_path / "src").mkdir()
    month.to_parquet(tmp_path / "src" / "month.parquet", index=False)
    day = (month["event_time"] - month["event_time"].min().normalize()).dt.days
    assert day.nunique() == 30

    once = Runs(tmp_path / "once")
    once.root.mkdir()
    assert once.ingest(tmp_path / "src" / "month.parquet")["rowsWritten"] == len(month)

    daily = Runs(tmp_path / "daily")
    daily.root.mkdir()
    written = 0
    for d in range(30):
        path = tmp_path / "src" / f"day-{d:02d}.parquet"
        month[day == d].to_parquet(path, index=False)
        written += daily.ingest(path)["rowsWritten"]
    assert written == len(month)

    one, thirty = once.offline(), daily.offline()
    pd.testing.assert_frame_equal(one, thirty)
    assert one["tx_count_7d"].max() > 1 and (one["tx_count_7d"] > one["tx_count_1d"]).any()  # the windows span days
    assert once.online() == daily.online() and all(row is not None for row in once.online())


def test_without_history_each_batch_would_cut_the_windows_short(tmp_path) -> None:
    """What the history is for: the same split, each day computed on its own rows only."""
    month = fraud.transactions(n_cards=N_CARDS, days=5, seed=11)
    day = (month["event_time"] - month["event_time"].min().normalize()).dt.days
    alone = pd.concat([fraud.aggregate_transactions(month[day == d]) for d in range(5)], ignore_index=True)
    whole = fraud.aggregate_transactions(month)
    assert (alone["tx_count_7d"].to_numpy() < whole["tx_count_7d"].to_numpy()).any()


def test_history_reads_the_stored_rows_of_its_version_from_a_time_on_and_nothing_on_a_full_run(tmp_path) -> None:
    features = FeatureStore(namespace_store(f"file://{tmp_path}/store", NAMESPACE))
    rows = fraud.transactions(n_cards=5, days=3, seed=2)
    history = FeatureHistory(features, "tx", 1, "event_time")
    assert history.read(columns=["cc_num"]).empty  # nothing written yet
    features.ingest("tx", 1, rows, primary_key=["cc_num"], event_time="event_time")
    since = rows["event_time"].iloc[len(rows) // 2]
    got = history.read(since=since, columns=["cc_num", "event_time"])
    assert len(got) == int((rows["event_time"] >= since).sum()) and list(got.columns) == ["cc_num", "event_time"]
    assert FeatureHistory(features, "tx", 1, "event_time", full=True).read(since=since).empty
