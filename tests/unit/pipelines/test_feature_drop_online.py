"""`python -m fti_pipelines.feature.drop_online`: a retired version's online data goes, nothing else does.

Run as a pod of the drop Job runs it (tests/unit/operator/test_feature_online_drop.py starts
that Job): a subprocess under the pipeline contract, against a real SQLite file and a real
redis-server, reporting in its termination message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from fti_pipelines.store.online import open_online_store


def rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({"k": range(n), "t": [pd.Timestamp("2026-01-01", tz="UTC")] * n, "x": [1.0] * n})


def drop(tmp: Path, uri: str, version: int, namespace: str = "team") -> tuple[int, dict]:
    spec = {
        "featureGroup": {"name": "g", "version": version, "primaryKey": ["k"], "eventTime": "t", "online": True},
        "source": {"uri": "file:///nowhere/", "format": "parquet"},
    }
    log = tmp / f"result-{version}.json"
    env = {
        "FTI_SPEC": json.dumps(spec),
        "FTI_ARTIFACT_STORE": f"file://{tmp}/store",
        "FTI_ONLINE_STORE": uri,
        "FTI_NAMESPACE": namespace,
        "FTI_TERMINATION_LOG": str(log),
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run([sys.executable, "-m", "fti_pipelines.feature.drop_online"], env=env, capture_output=True, check=False)
    return proc.returncode, json.loads(log.read_text())


def test_drop_online_deletes_the_named_version_only_and_twice_is_harmless(online_store, tmp_path) -> None:
    uri = online_store.uri
    team, other = open_online_store(uri, "team"), open_online_store(uri, "other")
    try:
        team.write("g", 1, ["k"], "t", rows(30))
        team.write("g", 2, ["k"], "t", rows(20))
        other.write("g", 1, ["k"], "t", rows(5))  # the same name in another namespace
        code, result = drop(tmp_path, uri, 1)
        assert code == 0, result
        assert result["ok"] and result["featureGroup"] == "g" and result["version"] == 1
        assert result["onlineDropped"] is True and result["onlineKeysDropped"] == 30
        assert team.version_info("g", 1) is None and team.get("g", 1, (3,)) is None
        assert team.version_info("g", 2)["rows"] == 20 and team.get("g", 2, (3,))["x"] == 1.0
        assert other.version_info("g", 1)["rows"] == 5, "another namespace's g v1 is not touched"
        code, again = drop(tmp_path, uri, 1)
        assert code == 0 and again["onlineDropped"] is False and again["onlineKeysDropped"] == 0
    finally:
        team.close()
        other.close()


def test_drop_online_without_an_online_store_fails_naming_it(tmp_path) -> None:
    code, result = drop(tmp_path, "", 1)
    assert code == 1 and result["reason"] == "MissingOnlineStore"
