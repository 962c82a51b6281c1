"""ArtifactStore: paths/URIs, immutable version directories committed atomically, file:// and s3://."""

from __future__ import annotations

import pytest

from fti_pipelines.store.artifacts import COMMIT_MARKER, ArtifactExists, ArtifactStore


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path}/store")


def test_paths_and_urls(store: ArtifactStore, tmp_path) -> None:
    assert store.uri == f"file://{tmp_path}/store"
    assert store.path("models", "fraud", 3) == f"{tmp_path}/store/models/fraud/3"
    assert store.url("models", "fraud", 3) == f"file://{tmp_path}/store/models/fraud/3"
    assert store.local_path("a") == f"{tmp_path}/store/a"


@pytest.mark.parametrize("bad", ["..", "../x", "a/../../b", ""])
def test_path_parts_cannot_escape_the_root(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid artifact path part"):
        store.path("models", bad)


def test_uri_needs_a_scheme() -> None:
    with pytest.raises(ValueError, match="needs a scheme"):
        ArtifactStore("/tmp/no-scheme")


def test_bytes_json_and_listing(store: ArtifactStore) -> None:
    store.write_bytes("a", "b.bin", b"\x00\x01")
    store.write_json("a", "c.json", {"k": [1, 2]})
    assert store.read_bytes("a", "b.bin") == b"\x00\x01"
    assert store.read_json("a", "c.json") == {"k": [1, 2]}
    assert store.list("a") == ["b.bin", "c.json"]
    assert store.list("missing") == []
    assert store.exists("a", "b.bin") and not store.exists("a", "zzz")


def test_commit_dir_publishes_with_marker_last(store: ArtifactStore) -> None:
    with store.commit_dir("models", "m", 1, metadata={"by": "test"}) as staging:
        store.fs.pipe(f"{staging}/model/model.joblib", b"model")
        assert not store.is_committed("models", "m", 1)
        assert store.list("models", "m") == []  # staging is invisible to readers
    assert store.is_committed("models", "m", 1)
    assert store.read_bytes("models", "m", 1, "model", "model.joblib") == b"model"
    info = store.commit_info("models", "m", 1)
    assert info["files"] == ["model/model.joblib"] and info["by"] == "test"
    # the model folder holds only the model (KServe's sklearn runtime loads the only file)
    assert store.list("models", "m", 1, "model") == ["model.joblib"]


def test_committed_directory_is_immutable(store: ArtifactStore) -> None:
    with store.commit_dir("v", 1) as staging:
        store.fs.pipe(f"{staging}/f", b"first")
    with pytest.raises(ArtifactExists, match="immutable"), store.commit_dir("v", 1) as staging:
        store.fs.pipe(f"{staging}/f", b"second")
    assert store.read_bytes("v", 1, "f") == b"first"


def test_writer_dying_half_way_leaves_nothing_visible(store: ArtifactStore) -> None:
    with store.commit_dir("v", 1) as staging:
        store.fs.pipe(f"{staging}/f", b"old")
    # The failure under test is a writer raising inside commit_dir.
    with pytest.raises(RuntimeError, match="died"), store.commit_dir("v", 2) as staging:  # noqa: PT012
        store.fs.pipe(f"{staging}/part-0", b"half")
        raise RuntimeError("writer died")
    assert store.committed("v") == ["1"]
    assert store.list("v") == ["1"]  # no staging debris left behind
    assert store.read_bytes("v", 1, "f") == b"old"


def test_debris_without_marker_is_replaced(store: ArtifactStore) -> None:
    # a writer killed between moving files and writing the marker leaves an unmarked directory
    store.write_bytes("v", 1, "stale", b"x")
    assert not store.is_committed("v", 1) and store.committed("v") == []
    with store.commit_dir("v", 1) as staging:
        store.fs.pipe(f"{staging}/fresh", b"y")
    assert store.list("v", 1) == [COMMIT_MARKER, "fresh"]


def test_s3_works_through_s3fs_without_code_change(s3_bucket_uri: str, s3_store_options: dict) -> None:
    store = ArtifactStore(s3_bucket_uri, storage_options=s3_store_options)
    assert store.uri == s3_bucket_uri and store.url("x") == f"{s3_bucket_uri}/x"
    store.write_json("meta", "a.json", {"ok": True})
    assert store.read_json("meta", "a.json") == {"ok": True}
    with store.commit_dir("models", "m", 1) as staging:
        store.fs.pipe(f"{staging}/model/model.joblib", b"model")
    assert store.is_committed("models", "m", 1)
    assert store.committed("models", "m") == ["1"]
    assert store.read_bytes("models", "m", 1, "model", "model.joblib") == b"model"
    with pytest.raises(ArtifactExists), store.commit_dir("models", "m", 1):
        pass
    with pytest.raises(RuntimeError), store.commit_dir("models", "m", 2) as staging:  # noqa: PT012 - a writer dying inside
        store.fs.pipe(f"{staging}/model/model.joblib", b"half")
        raise RuntimeError("died")
    assert store.committed("models", "m") == ["1"]


def test_racing_writers_on_local_disk_one_wins(store: ArtifactStore, monkeypatch) -> None:
    """Both stage and both pass the early check; the second rename fails and gets ArtifactExists."""
    first = store.commit_dir("v", 1)
    second = store.commit_dir("v", 1)
    staging_a = first.__enter__()
    staging_b = second.__enter__()
    store.fs.pipe(f"{staging_a}/f", b"a")
    store.fs.pipe(f"{staging_b}/f", b"b")
    first.__exit__(None, None, None)
    monkeypatch.setattr(store, "is_committed", lambda *parts: False)  # B checked before A published
    with pytest.raises(ArtifactExists):
        second.__exit__(None, None, None)
    monkeypatch.undo()
    assert store.read_bytes("v", 1, "f") == b"a" and store.list("v") == ["1"]


def test_read_parquet_returns_the_whole_file_in_a_buffer_arrow_owns(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = ArtifactStore(f"file://{tmp_path}")
    table = pa.table({"k": [1, 2, 3], "s": ["a", None, "é"]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    store.write_bytes("q", "rows.parquet", sink.getvalue().to_pybytes())
    assert store.read_parquet("q", "rows.parquet").equals(table)
