"""Feast 0.67 get_online_features on the same data as bench/inference_lookup.py (run with bench/.venv-feast).

    bench/.venv-feast/bin/python bench/inference_feast_lookup.py WORKDIR TX.parquet PROFILES.parquet N SEED

Builds a Feast repo (local provider, SQLite online store) with the two feature views,
writes the same latest rows online, then times `get_online_features` for one entity
(the same four features) N times with random keys. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64, String


def main() -> None:
    workdir, tx_path, prof_path, n, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    config = RepoConfig(project="bench", registry=f"{workdir}/registry.db", provider="local",
                        online_store=SqliteOnlineStoreConfig(path=f"{workdir}/online.db"))
    store = FeatureStore(config=config)
    card = Entity(name="cc_num", join_keys=["cc_num"], value_type=ValueType.INT64)
    tx = FeatureView(name="card_transactions", entities=[card], ttl=timedelta(days=3650), online=True,
                     schema=[Field(name="amount_sum_1d", dtype=Float64), Field(name="tx_count_1d", dtype=Int64)],
                     source=FileSource(path=tx_path, timestamp_field="event_time"))
    prof = FeatureView(name="card_profiles", entities=[card], ttl=timedelta(days=3650), online=True,
                       schema=[Field(name="age_group", dtype=String), Field(name="credit_limit", dtype=Float64)],
                       source=FileSource(path=prof_path, timestamp_field="event_time"))
    store.apply([card, tx, prof])
    store.write_to_online_store("card_transactions", pd.read_parquet(tx_path))
    store.write_to_online_store("card_profiles", pd.read_parquet(prof_path))
    features = ["card_transactions:amount_sum_1d", "card_transactions:tx_count_1d",
                "card_profiles:age_group", "card_profiles:credit_limit"]
    keys = pd.read_parquet(tx_path, columns=["cc_num"])["cc_num"].to_numpy()
    rng = np.random.default_rng(seed)
    picks = rng.choice(keys, size=n + 500).tolist()
    check = store.get_online_features(features=features, entity_rows=[{"cc_num": picks[0]}]).to_dict()
    assert check["amount_sum_1d"][0] is not None, check
    for k in picks[:500]:  # warm-up
        store.get_online_features(features=features, entity_rows=[{"cc_num": k}]).to_dict()
    times = []
    for k in picks[500:]:
        t = time.perf_counter()
        store.get_online_features(features=features, entity_rows=[{"cc_num": k}]).to_dict()
        times.append(time.perf_counter() - t)
    us = np.array(times) * 1e6
    print(json.dumps({"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)), "n": n}))


if __name__ == "__main__":
    main()
