"""A feature pipeline run in-process, as its pod would run it: the spec, stores and run id
through the contract's environment, the result read back from the termination log."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fti_pipelines.contract import run_pipeline
from fti_pipelines.feature import run
from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.tenancy import namespace_store


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


class Env:
    """A local run of `python -m fti_pipelines.feature`, in-process."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.raw = tmp / "raw"
        self.raw.mkdir()
        self.store_uri = f"file://{tmp}/store"
        self.online_uri = f"sqlite:///{tmp}/online.db"
        self.runs = 0

    def spec(self, **overrides) -> dict:
        spec = {
            "featureGroup": {"name": "tx", "version": 1, "primaryKey": ["cc_num"], "eventTime": "event_time", "online": True},
            "source": {"uri": f"file://{self.raw}/", "format": "parquet"},
            "ingestion": "incremental",
            "validation": {
                "onFailure": "quarantine",
                "expectations": [
                    {"column": "amount", "between": {"min": 0, "max": 1000}},
                    {"column": "category", "in": ["grocery", "travel"]},
                ],
            },
        }
        spec.update(overrides)
        return spec

    def run(self, spec: dict, online: bool = True) -> tuple[int, dict]:
        self.runs += 1
        log = self.tmp / f"result-{self.runs}.json"
        env = {
            "FTI_SPEC": json.dumps(spec),
            "FTI_ARTIFACT_STORE": self.store_uri,
            "FTI_RUN_ID": f"run-{self.runs}",
            "FTI_TERMINATION_LOG": str(log),
        }
        if online:
            env["FTI_ONLINE_STORE"] = self.online_uri
        code = run_pipeline(run, env)
        return code, json.loads(log.read_text())

    def features(self) -> FeatureStore:
        return FeatureStore(namespace_store(self.store_uri, "default"))


def batch(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["cc_num", "event_time", "amount", "category"])
