"""The feature pipeline end to end under the contract: source -> transform -> validate -> stores."""

from __future__ import annotations

import json
import sys
import textwrap

import pandas as pd
import pytest

from fti_pipelines.store.offline import FeatureStore
from fti_pipelines.store.online import open_online_store
from fti_pipelines.store.quarantine import list_quarantined, read_quarantined
from fti_pipelines.store.tenancy import namespace_store
from support.feature_runs import Env, batch, ts


@pytest.fixture
def env(tmp_path) -> Env:
    return Env(tmp_path)


def test_incremental_runs_ingest_offline_and_online(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery"), (2, ts("2026-01-02"), 20.0, "travel")]).to_parquet(env.raw / "a.parquet")
    code, result = env.run(env.spec())
    assert code == 0 and result["ok"]
    assert (result["rowsRead"], result["rowsWritten"], result["rowsRejected"]) == (2, 2, 0)
    assert result["watermark"] == "2026-01-02T00:00:00Z" and result["onlineRowsWritten"] == 2
    # the directory grows: an old row, a duplicate of the watermark row, a new row, a row at the watermark
    batch(
        [
            (2, ts("2026-01-02"), 20.0, "travel"),
            (1, ts("2025-12-31"), 5.0, "grocery"),
            (1, ts("2026-01-03"), 30.0, "travel"),
            (3, ts("2026-01-02"), 7.0, "grocery"),
            (1, ts("2026-01-03"), 31.0, "travel"),
        ]
    ).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec())
    assert code == 0, result
    assert result["rowsRead"] == 7 and result["rowsWritten"] == 3
    # a.parquet's two rows again and (2, 01-02) from b.parquet against the store; (2, 01-02)
    # and (1, 01-03) within the batch
    assert result["rowsDuplicate"] == 4
    assert result["rowsLate"] == 1  # (1, 12-31): before the watermark, a row all the same
    assert "rowsTooLate" not in result  # no allowedLateness: every late row is ingested
    data = env.features().read("tx", 1).sort_values(["event_time", "cc_num"])
    assert data[["cc_num", "amount"]].values.tolist() == [[1, 5.0], [1, 10.0], [2, 20.0], [3, 7.0], [1, 31.0]]
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (1,))["amount"] == 31.0  # the late row is older: the newer value stays
        assert online.get("tx", 1, (3,))["amount"] == 7.0
        assert online.version_info("tx", 1)["rows"] == 3
    # a third run with nothing new writes nothing and keeps the snapshot
    code, result = env.run(env.spec())
    assert code == 0 and result["rowsWritten"] == 0 and result["snapshot"] == 2


def test_rows_beyond_the_allowed_lateness_are_quarantined_the_rest_ingested(env: Env) -> None:
    batch([(1, ts("2026-01-02"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec(allowedLateness="24h"))
    (env.raw / "a.parquet").unlink()
    batch(
        [
            (2, ts("2026-01-01T12:00"), 20.0, "travel"),  # 12 h late: within 24 h, ingested
            (3, ts("2025-12-31T23:00"), 30.0, "travel"),  # 25 h late: quarantined
            (1, ts("2025-12-30"), 40.0, "grocery"),  # 3 days late: quarantined
            (4, ts("2026-01-03"), 50.0, "grocery"),  # on time
        ]
    ).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec(allowedLateness="24h"))
    assert code == 0 and result["ok"], result
    assert (result["rowsWritten"], result["rowsLate"], result["rowsTooLate"]) == (2, 1, 2)
    assert result["lateQuarantineUri"].endswith("/quarantine/tx/v1/run-2-late")
    rows, report = read_quarantined(namespace_store(env.store_uri, "default"), result["lateQuarantineUri"])
    assert sorted(rows.column("cc_num").to_pylist()) == [1, 3] and rows.column("amount").to_pylist() == [30.0, 40.0]
    assert report["reason"] == "LateRow" and report["allowedLateness"] == "24h"
    assert (report["cutoff"], report["watermark"]) == ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    assert "allowedLateness 24h" in report["message"]
    assert sorted(env.features().read("tx", 1)["cc_num"]) == [1, 2, 4]
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (2,))["amount"] == 20.0  # a late row of a new key reaches the online store
        assert online.get("tx", 1, (1,))["amount"] == 10.0  # nothing quarantined reaches it


def test_a_late_batch_re_sent_writes_nothing_twice(env: Env) -> None:
    batch([(1, ts("2026-01-05"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    (env.raw / "a.parquet").unlink()
    late = [(i, ts("2026-01-01") + pd.Timedelta(hours=i), float(i), "travel") for i in range(2, 6)]
    batch(late).to_parquet(env.raw / "b.parquet")
    code, first = env.run(env.spec())
    code2, again = env.run(env.spec())  # the source delivers the same late batch again
    assert code == code2 == 0
    assert (first["rowsWritten"], first["rowsLate"]) == (4, 4)
    assert (again["rowsWritten"], again["rowsLate"], again["rowsDuplicate"]) == (0, 0, 4)
    assert again["snapshot"] == first["snapshot"] and len(env.features().read("tx", 1)) == 5


def test_full_ingestion_replaces_the_version(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery"), (2, ts("2026-01-02"), 20.0, "travel")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec(ingestion="full"))
    (env.raw / "a.parquet").unlink()
    batch([(1, ts("2026-01-01"), 11.0, "grocery")]).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec(ingestion="full"))
    assert code == 0 and result["rowsWritten"] == 1 and result["rows"] == 1
    assert env.features().read("tx", 1)["amount"].tolist() == [11.0]
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (1,))["amount"] == 11.0  # same event time: the correction wins


def test_failing_batch_is_quarantined_whole_and_written_nowhere(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    before = env.features().snapshot("tx", 1)
    batch(
        [(2, ts("2026-01-02"), 5000.0, "grocery"), (3, ts("2026-01-02"), 1.0, "casino"), (4, ts("2026-01-03"), 2.0, "travel")]
    ).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec())
    assert code == 0 and result["ok"]  # onFailure=quarantine: the run succeeds and says so
    assert result["rowsWritten"] == 0 and result["rowsRejected"] == 3
    assert result["quarantineUri"].endswith("/quarantine/tx/v1/run-2")
    assert env.features().snapshot("tx", 1) == before
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (4,)) is None and online.version_info("tx", 1)["rows"] == 1
    rows, report = read_quarantined(namespace_store(env.store_uri, "default"), result["quarantineUri"])
    assert sorted(rows.column("cc_num").to_pylist()) == [2, 3, 4]  # every row, good ones included
    failed = {(c["check"], c["column"]): c for c in report["checks"] if not c["passed"]}
    assert set(failed) == {("between", "amount"), ("in", "category")}
    assert failed[("between", "amount")]["failedRows"] == 1
    assert failed[("between", "amount")]["examples"][0]["amount"] == 5000.0
    assert failed[("in", "category")]["examples"][0]["category"] == "casino"


def test_on_failure_fail_fails_the_run_after_quarantining(env: Env) -> None:
    batch([(1, ts("2026-01-01"), -1.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    spec = env.spec()
    spec["validation"]["onFailure"] = "fail"
    code, result = env.run(spec)
    assert code == 1 and not result["ok"] and result["reason"] == "ValidationFailed"
    assert "between on 'amount'" in result["error"] and result["rowsRejected"] == 1
    assert list_quarantined(namespace_store(env.store_uri, "default"), "tx", 1) == [result["quarantineUri"]]
    assert env.features().versions("tx") == []
    assert open_online_store(env.online_uri, "default").version_info("tx", 1) is None


def test_mostly_lets_a_few_bad_rows_through_and_warns(env: Env) -> None:
    rows = [(i, ts("2026-01-01") + pd.Timedelta(minutes=i), 1.0, "grocery") for i in range(99)]
    batch([*rows, (99, ts("2026-01-02"), 5000.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    spec = env.spec()
    spec["validation"]["expectations"][0]["mostly"] = 0.99
    code, result = env.run(spec)
    assert code == 0 and result["rowsWritten"] == 100
    assert result["validation"]["warnings"] == ["between on 'amount': 1 rows"]


def test_null_key_or_event_time_is_rejected_not_dropped(env: Env) -> None:
    df = pd.DataFrame(
        {
            "cc_num": [1.0, None],
            "event_time": [ts("2026-01-01"), ts("2026-01-01")],
            "amount": [1.0, 2.0],
            "category": ["grocery", "grocery"],
        }
    )
    df.to_parquet(env.raw / "a.parquet")
    code, result = env.run(env.spec())
    assert code == 0 and result["rowsRejected"] == 2 and result["rowsWritten"] == 0


@pytest.mark.parametrize(
    "fmt,writer",
    [
        ("csv", lambda df, p: df.to_csv(p / "a.csv", index=False)),
        ("jsonl", lambda df, p: df.to_json(p / "a.jsonl", orient="records", lines=True, date_format="iso")),
    ],
)
def test_csv_and_jsonl_sources(env: Env, fmt: str, writer) -> None:
    writer(batch([(1, ts("2026-01-01T10:00:00"), 10.0, "grocery"), (2, ts("2026-01-02"), 20.0, "travel")]), env.raw)
    code, result = env.run(env.spec(source={"uri": f"file://{env.raw}", "format": fmt}))
    assert code == 0, result
    assert result["rowsWritten"] == 2 and result["watermark"] == "2026-01-02T00:00:00Z"
    assert env.features().schema("tx", 1)["columns"][1] == {"name": "event_time", "dtype": "timestamp[ns, tz=UTC]"}


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "fraud_feats.py").write_text(
        textwrap.dedent("""
        import pandas as pd

        def generate(n, start):
            return pd.DataFrame({"cc_num": list(range(n)), "event_time": pd.date_range(start, periods=n, freq="h", tz="UTC"),
                                 "amount": [float(i) for i in range(n)], "category": ["grocery"] * n})

        def double(df):
            return df.assign(amount=df["amount"] * 2, amount_is_big=df["amount"] > 2)

        def broken(df):
            raise KeyError("amount_sum_1d")
    """)
    )
    monkeypatch.syspath_prepend(str(pkg))
    yield "fraud_feats"
    sys.modules.pop("fraud_feats", None)


def test_generator_and_transform(env: Env, user_module: str) -> None:
    spec = env.spec(
        source={"generator": {"function": f"{user_module}:generate", "params": {"n": 4, "start": "2026-01-01"}}},
        transform=f"{user_module}:double",
    )
    code, result = env.run(spec)
    assert code == 0, result
    data = env.features().read("tx", 1)
    assert data["amount"].tolist() == [0.0, 2.0, 4.0, 6.0] and data["amount_is_big"].tolist() == [False, False, False, True]


@pytest.mark.parametrize(
    "transform,reason,needle",
    [
        ("no_such_module:f", "CallableNotImportable", "'no_such_module:f'"),
        ("fraud_feats:missing", "CallableNotImportable", "no callable 'missing'"),
        ("fraud_feats:broken", "TransformFailed", "KeyError"),
    ],
)
def test_bad_transform_is_one_clear_error_and_stores_untouched(env: Env, user_module: str, transform, reason, needle) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    code, result = env.run(env.spec(transform=transform))
    assert code == 1 and result["reason"] == reason and needle in result["error"]
    assert not (env.tmp / "store" / "features").exists()
    assert not (env.tmp / "store" / "quarantine").exists()


def test_missing_column_and_wrong_type_name_the_column(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).drop(columns=["category"]).to_parquet(env.raw / "a.parquet")
    code, result = env.run(env.spec())
    assert code == 1 and result["reason"] == "MissingColumn" and "'category'" in result["error"]
    (env.raw / "a.parquet").unlink()
    pd.DataFrame({"cc_num": [1], "event_time": ["yesterday"], "amount": [1.0], "category": ["grocery"]}).to_parquet(
        env.raw / "b.parquet"
    )
    code, result = env.run(env.spec())
    assert code == 1 and result["reason"] == "InvalidColumnType"
    assert "'event_time'" in result["error"] and "'yesterday'" in result["error"]
    assert not (env.tmp / "store" / "features").exists()


def test_breaking_schema_change_is_refused_until_the_version_is_bumped(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    (env.raw / "a.parquet").unlink()
    changed = pd.DataFrame({"cc_num": [1], "event_time": [ts("2026-01-02")], "amount": ["ten"], "category": ["grocery"]})
    changed.to_parquet(env.raw / "b.parquet")
    spec = env.spec()
    spec["validation"]["expectations"] = []
    code, result = env.run(spec)
    assert code == 1 and result["reason"] == "SchemaChange"
    assert (
        "column 'amount' changed dtype from double to string" in result["error"]
        and "Bump featureGroup.version" in result["error"]
    )
    assert env.features().snapshot("tx", 1)["snapshot"] == 1
    spec["featureGroup"]["version"] = 2
    code, result = env.run(spec)
    assert code == 0 and result["version"] == 2
    assert env.features().versions("tx") == [1, 2]
    with open_online_store(env.online_uri, "default") as online:  # both versions served side by side
        assert online.get("tx", 1, (1,))["amount"] == 10.0 and online.get("tx", 2, (1,))["amount"] == "ten"


def test_additive_column_is_accepted_and_old_rows_read_null(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    batch([(2, ts("2026-01-02"), 20.0, "travel")]).assign(tx_count=[3]).to_parquet(env.raw / "b.parquet")
    spec = env.spec(source={"uri": f"file://{env.raw}/b.parquet", "format": "parquet"})
    code, result = env.run(spec)
    assert code == 0 and result["addedColumns"] == ["tx_count"]
    data = env.features().read("tx", 1).sort_values("cc_num")
    assert data["tx_count"].isna().tolist() == [True, False]
    assert len(env.features().parquet_files("tx", 1)) == 2  # the old data was rewritten with the new column


def test_online_true_without_online_store_fails_before_writing(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    code, result = env.run(env.spec(), online=False)
    assert code == 1 and result["reason"] == "MissingOnlineStore"
    assert not (env.tmp / "store" / "features").exists()


def test_invalid_spec_names_the_field(env: Env) -> None:
    spec = env.spec()
    spec["featureGroup"]["primaryKey"] = []
    code, result = env.run(spec)
    assert code == 1 and result["reason"] == "InvalidSpec" and "spec.featureGroup.primaryKey" in result["error"]


def test_online_store_catches_up_after_a_run_died_between_the_writes(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    spec = env.spec()
    spec["featureGroup"]["online"] = False
    env.run(spec, online=False)  # offline only: the online store never saw snapshot 1
    batch([(2, ts("2026-01-02"), 20.0, "travel")]).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec())
    assert code == 0 and result["onlineRowsWritten"] == 2  # the whole version, not just the batch
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (1,))["amount"] == 10.0 and online.version_info("tx", 1)["snapshot"] == 2


def test_module_entry_point_writes_the_termination_log(env: Env, tmp_path) -> None:
    import subprocess

    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    log = tmp_path / "termination-log"
    proc = subprocess.run(
        [sys.executable, "-m", "fti_pipelines.feature"],
        env={
            "FTI_SPEC": json.dumps(env.spec()),
            "FTI_ARTIFACT_STORE": env.store_uri,
            "FTI_ONLINE_STORE": env.online_uri,
            "FTI_TERMINATION_LOG": str(log),
            "FTI_RUN_ID": "job-1",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(log.read_text())
    assert result["ok"] and result["rowsWritten"] == 1 and result["featureGroup"] == "tx"


def test_s3_artifact_store_and_source_through_environment_only(tmp_path, s3_bucket_uri: str, s3_endpoint: str) -> None:
    """`python -m fti_pipelines.feature` against S3: configured by the standard AWS variables, no code change."""
    import subprocess

    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3_endpoint})
    with fs.open(f"{s3_bucket_uri}/raw/a.parquet", "wb") as fh:
        batch([(1, ts("2026-01-01"), 10.0, "grocery"), (2, ts("2026-01-02"), 20.0, "travel")]).to_parquet(fh)
    spec = Env(tmp_path).spec(source={"uri": f"{s3_bucket_uri}/raw/", "format": "parquet"})
    log = tmp_path / "termination-log"
    proc = subprocess.run(
        [sys.executable, "-m", "fti_pipelines.feature"],
        env={
            "FTI_SPEC": json.dumps(spec),
            "FTI_ARTIFACT_STORE": f"{s3_bucket_uri}/store",
            "FTI_ONLINE_STORE": f"sqlite:///{tmp_path}/online.db",
            "FTI_TERMINATION_LOG": str(log),
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(log.read_text())
    assert result["rowsWritten"] == 2
    store = FeatureStore(
        namespace_store(
            f"{s3_bucket_uri}/store",
            "default",
            storage_options={"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_endpoint}},
        )
    )
    assert sorted(store.read("tx", 1)["cc_num"]) == [1, 2]
    assert store.parquet_files("tx", 1)[0].startswith(f"{s3_bucket_uri}/store/namespaces/default/features/tx/v1/")


def test_full_ingestion_removes_online_keys_absent_from_the_new_data(env: Env) -> None:
    batch([(1, ts("2026-01-01"), 10.0, "grocery"), (2, ts("2026-01-02"), 20.0, "travel")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    (env.raw / "a.parquet").unlink()
    batch([(2, ts("2026-01-01"), 21.0, "travel")]).to_parquet(env.raw / "b.parquet")
    code, result = env.run(env.spec(ingestion="full"))
    assert code == 0 and result["onlineRowsWritten"] == 1
    with open_online_store(env.online_uri, "default") as online:
        assert online.get("tx", 1, (1,)) is None  # not in the new data: gone, as offline
        assert online.get("tx", 1, (2,))["amount"] == 21.0  # the full data wins even with an older event time
        assert online.version_info("tx", 1)["rows"] == 1 and online.version_info("tx", 1)["snapshot"] == 2


def test_online_rows_are_published_only_after_the_offline_commit(env: Env, monkeypatch) -> None:
    from fti_pipelines.store.offline import ConcurrentWrite

    batch([(1, ts("2026-01-01"), 10.0, "grocery")]).to_parquet(env.raw / "a.parquet")
    env.run(env.spec())
    batch([(2, ts("2026-01-02"), 20.0, "travel")]).to_parquet(env.raw / "b.parquet")
    seen: list = []

    def losing_commit(self, b, *, run_id=None, gate=None):
        assert gate is not None and gate()  # validation passed, the online rows are being prepared meanwhile
        with open_online_store(env.online_uri, "default") as online:
            seen.append(online.get("tx", 1, (2,)))
        raise ConcurrentWrite(b.group, b.version, b.snapshot_id)  # another run published first

    monkeypatch.setattr(FeatureStore, "commit", losing_commit)
    code, result = env.run(env.spec())
    assert code != 0 and result["reason"] == "ConcurrentWrite"
    monkeypatch.undo()
    assert seen == [None]  # not visible while the offline snapshot was not committed
    with open_online_store(env.online_uri, "default") as online:  # and discarded when it never was
        assert online.get("tx", 1, (2,)) is None
        assert online.version_info("tx", 1)["rows"] == 1 and online.version_info("tx", 1)["snapshot"] == 1
