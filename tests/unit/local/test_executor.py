"""The local executor: which images run, how env is resolved, how results come back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fti_operator.local.executor import (
    ImageMap,
    LocalNode,
    UnresolvableEnv,
    UnsupportedImage,
    image_repository,
    mount_paths,
    resolve_env,
)


@pytest.mark.parametrize("image,repo", [
    ("ghcr.io/fti-dev/fti-feature:0.1.0", "ghcr.io/fti-dev/fti-feature"),
    ("localhost:5000/fti-training", "localhost:5000/fti-training"),
    ("localhost:5000/fti-training:v2@sha256:abc", "localhost:5000/fti-training"),
    ("fti-inference", "fti-inference"),
])
def test_image_repository(image: str, repo: str) -> None:
    assert image_repository(image) == repo


def test_reference_images_run_with_this_interpreter() -> None:
    argv = ImageMap().argv({"name": "c", "image": "ghcr.io/fti-dev/fti-feature:1", "command": ["python", "-m", "x"]})
    assert argv == [sys.executable, "-m", "x"]


def test_unknown_image_is_refused_with_its_name() -> None:
    with pytest.raises(UnsupportedImage, match=r"busybox:1\.36"):
        ImageMap().argv({"name": "c", "image": "busybox:1.36", "command": ["sh"]})


def test_env_resolution() -> None:
    container = {"env": [
        {"name": "A", "value": "1"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "JOB", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
    ]}
    env = resolve_env(container, {"name": "p1", "labels": {"batch.kubernetes.io/job-name": "j1"}}, {"s": {"password": "pw"}})
    assert env == {"A": "1", "POD": "p1", "JOB": "j1", "PW": "pw"}


def test_missing_secret_names_it() -> None:
    container = {"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "store", "key": "password"}}}]}
    with pytest.raises(UnresolvableEnv, match="store/password"):
        resolve_env(container, {"name": "p"})


def test_mounts_rewrite_only_the_mounted_prefix(tmp_path: Path) -> None:
    env = {"FTI_SPEC": '{"input": "file:///var/lib/fti/in/", "other": "file:///var/lib/ftix/"}'}
    out = mount_paths(env, {"/var/lib/fti": tmp_path})
    assert f"file://{tmp_path}/in/" in out["FTI_SPEC"]
    assert "file:///var/lib/ftix/" in out["FTI_SPEC"]


def test_run_container_reads_termination_message(tmp_path: Path) -> None:
    image_map = ImageMap()
    image_map.add("test/python")
    script = "import os; open(os.environ['FTI_TERMINATION_LOG'], 'w').write('{\"ok\": true, \"rows\": 3}'); print('hello')"
    run = LocalNode(tmp_path, image_map).run({"name": "main", "image": "test/python:1", "command": [sys.executable, "-c", script]},
                                             {"name": "p"})
    assert run.succeeded and run.termination_message == '{"ok": true, "rows": 3}'
    assert "hello" in run.log_path.read_text()


def test_failed_container_without_message_falls_back_to_log(tmp_path: Path) -> None:
    image_map = ImageMap()
    image_map.add("test/python")
    run = LocalNode(tmp_path, image_map).run(
        {"name": "main", "image": "test/python", "command": [sys.executable, "-c", "raise SystemExit('boom')"]}, {"name": "p"})
    assert run.exit_code == 1 and "boom" in run.termination_message
