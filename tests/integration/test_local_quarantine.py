"""`fti local apply` with rows that fail validation, then `fti quarantine list|show|replay` on its store.

The same commands a user runs after a run quarantined rows (docs/data-quality.md): the status
says DataQuarantined and where, the batch is listed and shown row by row, a corrected file is
replayed through the pipeline's validation and ingestion, and a second replay is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

FTI = [sys.executable, "-m", "fti_operator.cli"]

pytestmark = pytest.mark.slow

PIPELINE = {
    "apiVersion": "fti.dev/v1alpha1",
    "kind": "FeaturePipeline",
    "metadata": {"name": "tx", "namespace": "default"},
    "spec": {
        "featureGroup": {"name": "tx", "version": 1, "primaryKey": ["cc_num"], "eventTime": "event_time"},
        "source": {"uri": "file:///var/lib/fti/raw/tx/", "format": "parquet"},
        "validation": {"expectations": [{"column": "amount", "between": {"min": 0, "max": 1000}}]},
    },
}


# What a shell gives a user's `fti`; nothing else of the pytest session's environment.
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def _fti(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`fti ARGS` as a user types it in a fresh shell, in the directory that holds the state.

    Nothing the session accumulated reaches the command, whatever ran before this test: not the
    session's working directory (`python -m` puts it first on sys.path, and relative paths
    resolve there), not the variables fixtures and earlier tests set (KUBECONFIG, AWS_*,
    FTI_*), not terminal or colour settings that change what rich prints."""
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.update(COLUMNS="200", FTI_STATE_DIR=str(state))
    proc = subprocess.run([*FTI, *args], cwd=state.parent, capture_output=True, text=True, timeout=600, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"fti {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The command's stdout as JSON; a failure shows everything the command printed."""
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{' '.join(proc.args[3:])}: stdout is not JSON ({exc})\n{proc.stdout}\n{proc.stderr}") from None


def test_quarantined_rows_are_visible_and_a_corrected_batch_is_replayed(tmp_path: Path) -> None:
    state, manifest = tmp_path / "state", tmp_path / "tx.yaml"
    raw = state / "volume" / "raw" / "tx"
    raw.mkdir(parents=True)
    manifest.write_text(yaml.safe_dump(PIPELINE))
    ts = pd.Timestamp("2026-01-01", tz="UTC")
    pd.DataFrame(
        {"cc_num": [1, 2, 3], "event_time": [ts, ts, ts + pd.Timedelta(hours=1)], "amount": [10.0, -5.0, 20.0]}
    ).to_parquet(raw / "a.parquet")

    applied = _fti(state, "local", "apply", "-f", str(manifest))
    [fp] = _json(_fti(state, "local", "status", "-o", "json"))["items"]
    conditions = {c["type"]: c for c in fp["status"]["conditions"]}
    [run] = [v["lastRun"] for v in fp["status"]["versions"] if v["version"] == 1]
    assert conditions["DataQuarantined"]["status"] == "True", (conditions, applied.stdout, applied.stderr)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "DataQuarantined")
    assert "3 rows quarantined" in conditions["DataQuarantined"]["message"]
    assert "row 1: between on 'amount' (amount=-5.0)" in conditions["DataQuarantined"]["message"]
    assert f"at {run['quarantineUri']} (" in conditions["DataQuarantined"]["message"], (run, conditions)

    # (fti local runs a schedule-less pipeline's Job and a run-now Job: two runs, two batches;
    # the condition names the last run's)
    batches = _json(_fti(state, "quarantine", "list", "-o", "json"))
    matching = [b for b in batches if b["uri"] == run["quarantineUri"]]
    assert len(matching) == 1, (run["quarantineUri"], batches)
    listed = matching[0]
    ref = listed["batch"]
    assert ref.startswith("tx/v1/") and listed["reason"] == "ValidationFailed" and listed["rows"] == 3, listed
    assert listed["replay"] is None
    rows = _json(_fti(state, "quarantine", "show", ref, "-o", "json"))
    assert {r["cc_num"]: r["failedChecks"] for r in rows} == {1: "-", 2: "between on 'amount'", 3: "-"}

    fixed = tmp_path / "fixed.csv"
    fixed.write_text(
        "cc_num,event_time,amount\n1,2026-01-01T00:00:00Z,10.0\n2,2026-01-01T00:00:00Z,5.0\n3,2026-01-01T01:00:00Z,20.0\n"
    )
    done = _fti(state, "quarantine", "replay", ref, "-f", str(manifest), "--rows", str(fixed))
    assert f"replayed {ref}: 3 rows read, 3 written, 0 already stored, 0 quarantined again" in done.stderr
    replays = {b["batch"]: b["replay"] for b in _json(_fti(state, "quarantine", "list", "-o", "json"))}
    assert replays[ref]["rowsWritten"] == 3 and len(replays) == len(batches)  # every batch kept
    again = _fti(state, "quarantine", "replay", ref, "-f", str(manifest), check=False)
    assert again.returncode == 1 and f"AlreadyReplayed: batch {ref} was replayed at" in again.stderr
    missing = _fti(state, "quarantine", "show", "tx/v1/nope", check=False)
    assert missing.returncode == 1 and "BatchNotFound: no quarantined batch tx/v1/nope" in missing.stderr
