"""The local kubelet: which images run, what a container is started with, how results come back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fti_operator.local.kubelet import (
    ContainerConfigError,
    DictSource,
    ImageMap,
    Launch,
    LocalNode,
    UnsupportedImage,
    container_launch,
    exit_code,
    image_repository,
    mount_paths,
    termination_message,
)
from support.wait import wait_until

POD = {"metadata": {"name": "p", "namespace": "ns"}}


@pytest.mark.parametrize(
    "image,repo",
    [
        ("ghcr.io/fti-dev/fti-feature:0.1.0", "ghcr.io/fti-dev/fti-feature"),
        ("localhost:5000/fti-training", "localhost:5000/fti-training"),
        ("localhost:5000/fti-training:v2@sha256:abc", "localhost:5000/fti-training"),
        ("fti-inference", "fti-inference"),
    ],
)
def test_image_repository_strips_tag_and_digest_but_not_port(image: str, repo: str) -> None:
    assert image_repository(image) == repo


def _launch(image: str, command: list[str] | None = None, args: list[str] | None = None) -> Launch:
    container = {"name": "main", "image": image, "command": command or [], "args": args or []}
    return Launch([*(command or []), *(args or [])], {}, image, container, POD)


@pytest.mark.parametrize(
    "image", ["ghcr.io/fti-dev/fti-feature:1", "fti-training", "localhost:5000/fti-inference", "ghcr.io/fti-dev/fti-operator:0.3"]
)
def test_reference_images_run_with_this_interpreter(image: str) -> None:
    launch = ImageMap().resolve(_launch(image, ["python", "-m", "x"]))
    assert launch.argv == [sys.executable, "-m", "x"] and launch.env["PYTHONUNBUFFERED"] == "1"


def test_unknown_image_is_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedImage, match=r"'busybox:1.36' is not mapped to a local program \(mapped: .*fti-feature"):
        ImageMap().resolve(_launch("busybox:1.36", ["sh"]))
    # A name matches whole path segments, not a suffix of one.
    assert ImageMap().lookup("acme/my-fti-feature") is None


def test_reference_image_without_command_is_refused() -> None:
    with pytest.raises(UnsupportedImage, match="explicit command"):
        ImageMap().resolve(_launch("fti-feature:1"))


def test_added_patterns_win_and_can_be_removed() -> None:
    images = ImageMap()
    remove = images.add("*/fti-*", lambda launch: launch.with_argv(["custom"]))
    images.add("test/python")  # no handler: argv as written
    assert images.resolve(_launch("ghcr.io/a/fti-training", ["python"])).argv == ["custom"]
    assert images.resolve(_launch("test/python:3", ["py", "x"])).argv == ["py", "x"]
    remove()
    assert images.resolve(_launch("ghcr.io/a/fti-training", ["python"])).argv == [sys.executable]
    images.add("refuse/*", lambda launch: None)
    with pytest.raises(UnsupportedImage, match="refused this container"):
        images.resolve(_launch("refuse/me", ["x"]))
    assert ImageMap(reference=False).lookup("fti-feature") is None


def test_container_launch_resolves_env_and_argv_then_maps_the_image(tmp_path: Path) -> None:
    container = {
        "name": "main",
        "image": "ghcr.io/fti-dev/fti-training:1",
        "command": ["python", "-m", "train"],
        "args": ["--in=$(DATA)", "$(POD)"],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DATA", "value": "file:///var/lib/fti/in/"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "store", "key": "password"}}},
        ],
    }
    source = DictSource(secrets={("ns", "store"): {"password": "pw"}})
    launch = container_launch(
        container, POD, source, ImageMap(), base_env={"PATH": "/bin", "PW": "image"}, mounts={"/var/lib/fti": tmp_path}
    )
    assert launch.argv == [sys.executable, "-m", "train", f"--in=file://{tmp_path}/in/", "p"]
    assert launch.env["PW"] == "pw" and launch.env["PATH"] == "/bin" and launch.env["DATA"] == f"file://{tmp_path}/in/"


def test_container_launch_names_a_missing_secret() -> None:
    container = {
        "name": "main",
        "image": "fti-feature",
        "command": ["python"],
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "store", "key": "password"}}}],
    }
    with pytest.raises(ContainerConfigError, match="env PW: Secret ns/store not found"):
        container_launch(container, POD, DictSource(), ImageMap(), base_env={})


def test_mounts_rewrite_only_the_mounted_prefix(tmp_path: Path) -> None:
    env = {"FTI_SPEC": '{"input": "file:///var/lib/fti/in/", "other": "file:///var/lib/ftix/"}'}
    out = mount_paths(env, {"/var/lib/fti": tmp_path})
    assert f"file://{tmp_path}/in/" in out["FTI_SPEC"]
    assert "file:///var/lib/ftix/" in out["FTI_SPEC"]


def test_termination_message_is_capped_and_falls_back_to_logs_on_error(tmp_path: Path) -> None:
    message, log = tmp_path / "msg", tmp_path / "log"
    message.write_bytes(b"x" * 5000)
    assert len(termination_message(message, log, 0, None)) == 4096
    message.unlink()
    log.write_text("\n".join(f"line {i}" for i in range(200)))
    assert termination_message(message, log, 1, "File") == ""
    assert termination_message(message, log, 0, "FallbackToLogsOnError") == ""  # only on error
    fallback = termination_message(message, log, 1, "FallbackToLogsOnError")
    assert fallback.endswith("line 199") and "line 119" not in fallback and "line 120" in fallback
    log.write_text("y" * 5000)
    assert termination_message(message, log, 1, "FallbackToLogsOnError") == "y" * 2048
    message.write_text("kept")
    assert termination_message(message, log, 1, "FallbackToLogsOnError") == "kept"
    assert exit_code(-9) == 137 and exit_code(3) == 3


def _node(tmp_path: Path) -> LocalNode:
    images = ImageMap()
    images.add("test/python")
    return LocalNode(tmp_path, images)


def test_run_reads_the_termination_message_from_fti_termination_log(tmp_path: Path) -> None:
    script = (
        "import os; open(os.environ['FTI_TERMINATION_LOG'], 'w').write('{\"ok\": true, \"rows\": 3}'); "
        "print('hello', os.environ['POD'])"
    )
    container = {
        "name": "main",
        "image": "test/python:1",
        "command": [sys.executable, "-c", script],
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    run = _node(tmp_path).run(container, {"name": "p1"})  # bare metadata is accepted too
    assert run.succeeded and run.reason == "Completed" and run.termination_message == '{"ok": true, "rows": 3}'
    assert "hello p1" in run.log_path.read_text()


def test_failed_run_falls_back_to_its_log_only_if_the_policy_says_so(tmp_path: Path) -> None:
    container = {"name": "main", "image": "test/python", "command": [sys.executable, "-c", "raise SystemExit('boom')"]}
    run = _node(tmp_path).run({**container, "terminationMessagePolicy": "FallbackToLogsOnError"}, POD)
    assert run.exit_code == 1 and run.reason == "Error" and "boom" in run.termination_message
    assert _node(tmp_path).run(container, POD).termination_message == ""


def test_run_of_a_missing_executable_is_a_start_error(tmp_path: Path) -> None:
    run = _node(tmp_path).run({"name": "main", "image": "test/python", "command": [str(tmp_path / "nope")]}, POD)
    assert run.exit_code == 128 and "StartError" in run.termination_message


def test_run_is_killed_after_its_timeout(tmp_path: Path) -> None:
    run = _node(tmp_path).run(
        {"name": "main", "image": "test/python", "command": [sys.executable, "-c", "import time; time.sleep(60)"]},
        POD,
        timeout=0.5,
    )
    assert run.exit_code == 137


def test_started_container_runs_until_stopped(tmp_path: Path) -> None:
    script = "import sys, time; print('serving', sys.argv[1:], flush=True); time.sleep(60)"
    running = _node(tmp_path).start(
        {"name": "srv", "image": "test/python", "command": [sys.executable, "-c", script]}, POD, extra_args=["--port", "1"]
    )
    wait_until(lambda: "serving" in running.log_path.read_text(), timeout=30, description="the server's output")
    assert running.poll() is None
    result = running.stop(grace=5)
    assert result.exit_code == 128 + 15 and running.poll() is not None
    assert "serving ['--port', '1']" in running.log_path.read_text()


def _py(name: str, code: str, **extra) -> dict:
    return {"name": name, "image": "test/python", "command": [sys.executable, "-c", code], **extra}


WRITE_RESULT = "import os; open(os.environ['FTI_TERMINATION_LOG'], 'w').write('{\"ok\": true}')"


def test_run_pod_runs_init_containers_first_and_reports_kubelet_status(tmp_path: Path) -> None:
    marker = tmp_path / "init-ran"
    pod = {
        **POD,
        "spec": {
            "initContainers": [_py("init", f"open({str(marker)!r}, 'w').write('x')")],
            "containers": [_py("main", f"import os; assert os.path.exists({str(marker)!r}); {WRITE_RESULT}")],
        },
    }
    run = _node(tmp_path).run_pod(pod)
    assert run.succeeded, run.runs["main"].log_path.read_text()
    status = run.status()
    assert status["phase"] == "Succeeded"
    [main] = status["containerStatuses"]
    assert main["name"] == "main" and main["state"]["terminated"]["exitCode"] == 0
    assert main["state"]["terminated"]["reason"] == "Completed" and main["state"]["terminated"]["message"] == '{"ok": true}'
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_run_pod_stops_at_a_failed_init_container(tmp_path: Path) -> None:
    pod = {**POD, "spec": {"initContainers": [_py("init", "raise SystemExit(3)")], "containers": [_py("main", WRITE_RESULT)]}}
    run = _node(tmp_path).run_pod(pod)
    assert run.phase == "Failed" and "main" not in run.runs
    status = run.status()
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "waiting" in status["containerStatuses"][0]["state"]


def test_run_pod_runs_several_containers_at_once(tmp_path: Path) -> None:
    # Each waits for the other's file: only concurrent containers finish.
    a, b = tmp_path / "a", tmp_path / "b"
    wait_for = (
        "import pathlib, time, sys; pathlib.Path({mine!r}).touch(); deadline = time.time() + 30\n"
        "while not pathlib.Path({other!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "    if time.time() > deadline: sys.exit(1)\n"
    )
    pod = {
        **POD,
        "spec": {
            "containers": [
                _py("a", wait_for.format(mine=str(a), other=str(b))),
                _py("b", wait_for.format(mine=str(b), other=str(a))),
            ]
        },
    }
    run = _node(tmp_path).run_pod(pod)
    assert run.succeeded and set(run.runs) == {"a", "b"}


def test_run_pod_refuses_before_running_anything(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    secret_env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "store", "key": "password"}}}]
    pending = _node(tmp_path).run_pod(
        {**POD, "spec": {"containers": [_py("first", f"open({str(marker)!r}, 'w')"), _py("second", "pass", env=secret_env)]}}
    )
    assert pending.phase == "Pending" and pending.reason == "CreateContainerConfigError" and not marker.exists()
    waiting = pending.status()["containerStatuses"][1]["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError", "message": "env PW: Secret ns/store not found"}

    refused = _node(tmp_path).run_pod({**POD, "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh"]}]}})
    assert refused.phase == "Failed" and refused.reason == "UnsupportedImage" and "busybox" in refused.message
