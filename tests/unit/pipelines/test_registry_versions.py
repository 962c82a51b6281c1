"""Registry-owned model versions: atomic claims, idempotent retries, no run gets another's model.

The registry allocates a version by creating its claim file exclusively (docs/store-layout.md,
"Models"); these tests race threads and processes for numbers on file:// and check the
conditional PUT on s3://.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from fti_pipelines.registry import ModelRegistry, RunOwner
from fti_pipelines.store.artifacts import ArtifactStore


def owner(uid: str | None = "uid-a", job: str = "fraud-v1") -> RunOwner:
    return RunOwner("team-a", "fraud", uid, "sha256:spec", job)


def test_exclusive_create_is_refused_when_the_file_exists(tmp_path):
    store = ArtifactStore(f"file://{tmp_path}/s")
    assert store.create_exclusive("a", "claim.json", b"first") is True
    assert store.create_exclusive("a", "claim.json", b"second") is False
    assert store.read_bytes("a", "claim.json") == b"first"
    assert store.list("a") == ["claim.json"]  # no temporary file left beside it


def test_a_run_is_recorded_with_its_version_and_a_retry_gets_it_back(tmp_path):
    registry = ModelRegistry(ArtifactStore(f"file://{tmp_path}/s"))
    assert registry.allocate("fraud", owner(), requested=1) == 1
    assert registry.allocate("fraud", owner(), requested=1) == 1  # the same run, retried
    claim = registry.claim("fraud", 1)
    assert claim["run"] == {
        "namespace": "team-a",
        "resource": "fraud",
        "resourceUid": "uid-a",
        "specHash": "sha256:spec",
        "job": "fraud-v1",
    }
    # A re-created TrainingPipeline: same name, same Job name, new uid -> the next free number.
    assert registry.allocate("fraud", owner(uid="uid-b"), requested=1) == 2
    # A run asking for a number above every claim gets it (the operator's expectation holds).
    assert registry.allocate("fraud", owner(job="fraud-v5"), requested=5) == 5
    assert registry.allocate("fraud", owner(uid="uid-b", job="fraud-v2"), requested=2) == 6  # numbering continues
    assert sorted(registry.claims("fraud")) == [1, 2, 5, 6]


def test_versions_registered_before_claims_are_never_handed_out(tmp_path):
    store = ArtifactStore(f"file://{tmp_path}/s")
    with store.commit_dir("models", "fraud", 3):
        pass  # a version an older operator assigned (no claim)
    assert ModelRegistry(store).allocate("fraud", owner(), requested=1) == 4


def test_racing_threads_each_get_their_own_version(tmp_path):
    uri = f"file://{tmp_path}/s"
    got: list[int] = []
    barrier = threading.Barrier(8)

    def run(i: int) -> None:
        registry = ModelRegistry(ArtifactStore(uri))
        barrier.wait()
        got.append(registry.allocate("fraud", owner(uid=f"uid-{i}"), requested=1))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))
    claims = ModelRegistry(ArtifactStore(uri)).claims("fraud")
    assert {claims[v]["run"]["resourceUid"] for v in got} == {f"uid-{i}" for i in range(8)}


def test_the_same_run_racing_itself_gets_one_version(tmp_path):
    uri = f"file://{tmp_path}/s"
    got: list[int] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        registry = ModelRegistry(ArtifactStore(uri))
        barrier.wait()
        got.append(registry.allocate("fraud", owner(), requested=1))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [1] * 6 and sorted(ModelRegistry(ArtifactStore(uri)).claims("fraud")) == [1]


# Each process allocates three versions for runs of its own; run as `python -c`.
ALLOCATE = """
import json, sys
from fti_pipelines.registry import ModelRegistry, RunOwner
from fti_pipelines.store.artifacts import ArtifactStore
uri, worker = sys.argv[1], sys.argv[2]
registry = ModelRegistry(ArtifactStore(uri))
sys.stdin.read()  # start together
print(json.dumps([registry.allocate("fraud", RunOwner("team-a", "fraud", "p" + worker, "h", f"job-{i}"), 1) for i in range(3)]))
"""


def test_racing_processes_each_get_their_own_versions(tmp_path):
    uri = f"file://{tmp_path}/s"
    procs = [
        subprocess.Popen([sys.executable, "-c", ALLOCATE, uri, str(w)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    outs = [p.communicate("", timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    got = sorted(v for out in outs for v in json.loads(out))
    assert got == list(range(1, 13))


def test_s3_claims_are_conditional_puts(s3_bucket_uri, s3_store_options):
    store = ArtifactStore(s3_bucket_uri, storage_options=s3_store_options)
    assert store.create_exclusive("a", "claim.json", b"first") is True
    assert store.create_exclusive("a", "claim.json", b"second") is False
    assert store.read_bytes("a", "claim.json") == b"first"
    registry = ModelRegistry(store)
    assert registry.allocate("fraud", owner(), requested=1) == 1
    assert registry.allocate("fraud", owner(uid="uid-b"), requested=1) == 2
    assert registry.allocate("fraud", owner(), requested=1) == 1


def test_a_store_without_an_exclusive_create_is_refused(tmp_path):
    store = ArtifactStore("memory://fti-claims-test")
    with pytest.raises(ValueError, match="exclusive create needs file:// or s3://"):
        store.create_exclusive("a", "claim.json", b"x")
