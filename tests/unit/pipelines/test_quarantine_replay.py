"""Quarantined batches: listed, shown row by row, and replayed through the run's own ingestion path."""

from __future__ import annotations

import pandas as pd
import pytest

from fti_operator.api import FeaturePipelineSpec
from fti_pipelines.contract import PipelineError
from fti_pipelines.feature.replay import replay, show
from fti_pipelines.store.online import open_online_store
from fti_pipelines.store.quarantine import list_batches
from fti_pipelines.store.tenancy import namespace_store
from support.feature_runs import Env, batch, ts


@pytest.fixture
def env(tmp_path) -> Env:
    return Env(tmp_path)


def _replay(env: Env, ref: str, spec: dict, **kw):
    store = namespace_store(env.store_uri, "default")
    return replay(
        store,
        ref,
        FeaturePipelineSpec.model_validate(spec),
        artifact_store=env.store_uri,
        namespace="default",
        online_store=env.online_uri,
        **kw,
    )


def _bad_batch(env: Env) -> dict:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    batch(
        [(2, ts("2026-01-02"), 5000.0, "grocery"), (3, ts("2026-01-02"), 1.0, "casino"), (4, ts("2026-01-03"), 2.0, "travel")]
    ).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec())
    assert code == 0 and result["rowsRejected"] == 3
    return result


def test_a_failed_batch_is_listed_and_shown_with_the_check_each_row_failed(env: Env) -> None:
    result = _bad_batch(env)
    assert result["rejectedExamples"] == [
        "row 0: between on 'amount' (amount=5000.0)",
        "row 1: in on 'category' (category='casino')",
    ]
    store = namespace_store(env.store_uri, "default")
    [listed] = list_batches(store)
    assert (listed.ref, listed.reason, listed.rows, listed.replay) == ("tx/v1/run-2", "ValidationFailed", 3, None)
    assert listed.uri == result["quarantineUri"] and listed.quarantined_at
    info, rows = show(store, "tx/v1/run-2")
    assert info.ref == "tx/v1/run-2"
    by_key = dict(zip(rows["cc_num"].tolist(), rows["failedChecks"], strict=True))
    assert by_key == {2: "between on 'amount'", 3: "in on 'category'", 4: "-"}


def test_a_batch_failing_again_stays_quarantined_and_a_corrected_one_is_ingested(env: Env) -> None:
    _bad_batch(env)
    before = env.features().snapshot("tx", 1)
    again = _replay(env, "tx/v1/run-2", env.spec())  # as-is, same rules: the same rows fail the same checks
    assert again["rowsWritten"] == 0 and again["rowsRejected"] == 3
    assert again["replay"]["quarantined"] == ["tx/v1/run-2-replay"]
    assert env.features().snapshot("tx", 1) == before  # nothing bypassed validation
    with pytest.raises(PipelineError, match=r"tx/v1/run-2 was replayed at .* quarantined again as") as exc:
        _replay(env, "tx/v1/run-2", env.spec())
    assert exc.value.reason == "AlreadyReplayed"

    fixed = env.tmp / "fixed.csv"
    pd.DataFrame(
        {
            "cc_num": [2, 3, 4],
            "event_time": ["2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"],
            "amount": [500.0, 1.0, 2.0],
            "category": ["grocery", "travel", "travel"],
        }
    ).to_csv(fixed, index=False)
    done = _replay(env, "tx/v1/run-2-replay", env.spec(), rows=fixed)
    assert done["rowsWritten"] == 3 and done["rowsRejected"] == 0 and done["replay"]["quarantined"] == []
    assert sorted(env.features().read("tx", 1)["cc_num"].tolist()) == [1, 2, 3, 4]
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (2,))["amount"] == 500.0
    store = namespace_store(env.store_uri, "default")
    listed = {b.ref: b for b in list_batches(store)}
    assert set(listed) == {"tx/v1/run-2", "tx/v1/run-2-replay"}  # every batch kept, each marked
    assert listed["tx/v1/run-2-replay"].replay["rowsWritten"] == 3
    assert listed["tx/v1/run-2-replay"].replay["rows"] == str(fixed)


def test_late_rows_are_replayed_after_the_allowed_lateness_is_widened(env: Env) -> None:
    batch([(1, ts("2026-01-02"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec(allowedLateness="1h"))
    batch([(2, ts("2026-01-01"), 20.0, "travel")]).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec(allowedLateness="1h"))
    assert code == 0 and result["rowsTooLate"] == 1
    store = namespace_store(env.store_uri, "default")
    info, rows = show(store, "tx/v1/run-2-late")
    assert info.reason == "LateRow" and rows["failedChecks"].iloc[0].startswith("LateRow (event time before the cutoff")
    # Same rules: still too late, quarantined again (nothing lost), the batch marked.
    still = _replay(env, "tx/v1/run-2-late", env.spec(allowedLateness="1h"))
    assert still["rowsTooLate"] == 1 and still["replay"]["quarantined"] == ["tx/v1/run-2-late-replay-late"]
    done = _replay(env, "tx/v1/run-2-late-replay-late", env.spec(allowedLateness="72h"))
    assert done["rowsWritten"] == 1 and "rowsTooLate" not in done
    assert sorted(env.features().read("tx", 1)["cc_num"].tolist()) == [1, 2]


@pytest.mark.parametrize(
    "ref, spec_change, reason, needle",
    [
        ("tx/1/run-2", {}, "InvalidBatch", "expected <group>/v<version>/<name>"),
        ("tx/v1/run-9", {}, "BatchNotFound", "no quarantined batch tx/v1/run-9"),
        ("tx/v1/run-2", {"version": 2}, "WrongPipeline", "belongs to tx v1"),
    ],
)
def test_replay_errors_name_the_batch(env: Env, ref: str, spec_change: dict, reason: str, needle: str) -> None:
    _bad_batch(env)
    spec = env.spec()
    spec["featureGroup"].update(spec_change)
    with pytest.raises(PipelineError, match=needle) as exc:
        _replay(env, ref, spec)
    assert exc.value.reason == reason


def test_a_corrected_file_missing_a_key_column_names_the_batch_and_leaves_it_unreplayed(env: Env) -> None:
    _bad_batch(env)
    fixed = env.tmp / "fixed.jsonl"
    fixed.write_text('{"event_time": "2026-01-02T00:00:00Z", "amount": 1.0, "category": "travel"}\n')
    with pytest.raises(PipelineError, match=r"replay of tx/v1/run-2: .*cc_num") as exc:
        _replay(env, "tx/v1/run-2", env.spec(), rows=fixed)
    assert exc.value.reason == "MissingColumn"
    [listed] = list_batches(namespace_store(env.store_uri, "default"))
    assert listed.replay is None
