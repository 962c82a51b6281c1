"""Feast 0.67 get_online_features on the same data as bench/inference_lookup.py (run with bench/.venv-feast).

    bench/.venv-feast/bin/python bench/inference_feast_lookup.py WORKDIR TX.parquet PROFILES.parquet

Builds a Feast repo (local provider, SQLite online store) with the two feature views and
writes the same latest rows online, prints `{"ready": true}`, then serves timing blocks
so the caller can interleave them with its own measurements (both see the same machine
load): each stdin line is a JSON list of cc_num keys; for each key it times one
`get_online_features` for one entity (the same four features as our lookup, `to_dict()`
included) and answers one JSON line `{"seconds": [...], "cpu_seconds": total}`. An
empty line ends it.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import pandas as pd
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64, String

from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType

FEATURES = [
    "card_transactions:amount_sum_1d",
    "card_transactions:tx_count_1d",
    "card_profiles:age_group",
    "card_profiles:credit_limit",
]


def build(workdir: str, tx_path: str, prof_path: str) -> FeatureStore:
    config = RepoConfig(
        project="bench",
        registry=f"{workdir}/registry.db",
        provider="local",
        online_store=SqliteOnlineStoreConfig(path=f"{workdir}/online.db"),
    )
    store = FeatureStore(config=config)
    card = Entity(name="cc_num", join_keys=["cc_num"], value_type=ValueType.INT64)
    tx = FeatureView(
        name="card_transactions",
        entities=[card],
        ttl=timedelta(days=3650),
        online=True,
        schema=[Field(name="amount_sum_1d", dtype=Float64), Field(name="tx_count_1d", dtype=Int64)],
        source=FileSource(path=tx_path, timestamp_field="event_time"),
    )
    prof = FeatureView(
        name="card_profiles",
        entities=[card],
        ttl=timedelta(days=3650),
        online=True,
        schema=[Field(name="age_group", dtype=String), Field(name="credit_limit", dtype=Float64)],
        source=FileSource(path=prof_path, timestamp_field="event_time"),
    )
    store.apply([card, tx, prof])
    store.write_to_online_store("card_transactions", pd.read_parquet(tx_path))
    store.write_to_online_store("card_profiles", pd.read_parquet(prof_path))
    return store


def main() -> None:
    workdir, tx_path, prof_path = sys.argv[1], sys.argv[2], sys.argv[3]
    store = build(workdir, tx_path, prof_path)
    first = int(pd.read_parquet(tx_path, columns=["cc_num"])["cc_num"].iloc[0])
    check = store.get_online_features(features=FEATURES, entity_rows=[{"cc_num": first}]).to_dict()
    assert check["amount_sum_1d"][0] is not None, check
    print(json.dumps({"ready": True}), flush=True)
    get = store.get_online_features
    for line in sys.stdin:
        if not line.strip():
            break
        keys = json.loads(line)
        seconds = []
        cpu = time.process_time()
        for k in keys:
            t = time.perf_counter()
            get(features=FEATURES, entity_rows=[{"cc_num": k}]).to_dict()
            seconds.append(time.perf_counter() - t)
        print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu}), flush=True)


if __name__ == "__main__":
    main()
