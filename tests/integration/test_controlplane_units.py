"""Unit tests of the control-plane harness's pure parts (no cluster needed):
image mapping, kubelet-style env/argv resolution, termination messages, polling.
"""

import base64
import sys
import types

import pytest
from kubernetes.client.rest import ApiException

from controlplane import images, pod_env
from controlplane.pod_status import Conditions, exit_code, termination_message
from support.wait import WaitTimeout, wait_until


@pytest.mark.parametrize("image,repo", [
    ("fti-training", "fti-training"),
    ("ghcr.io/acme/fti-training:1.2", "ghcr.io/acme/fti-training"),
    ("localhost:5000/fti-feature", "localhost:5000/fti-feature"),
    ("localhost:5000/fti-feature:v1@sha256:abc", "localhost:5000/fti-feature"),
])
def test_repository_strips_tag_and_digest_but_not_port(image, repo):
    assert images.repository(image) == repo


def _launch(image, command=(), args=(), env=None):
    container = {"name": "main", "image": image, "command": list(command), "args": list(args)}
    return images.Launch(argv=[*command, *args], env=env or {}, image=image, container=container, pod={})


def test_default_map_runs_pipeline_images_with_this_python():
    launch = images.default_image_map().resolve(_launch("ghcr.io/acme/fti-training:1", ["python", "-m", "x"]))
    assert launch.argv == [sys.executable, "-m", "x"]
    with pytest.raises(images.Refused, match="explicit command"):
        images.default_image_map().resolve(_launch("fti-feature:1"))
    # A suffix match is per path segment, not per character.
    assert images.default_image_map().lookup("acme/my-fti-feature") is None


def test_shell_image_wraps_args_in_sh_c_unless_a_command_is_given():
    shell = images.default_image_map()
    assert shell.resolve(_launch(images.SHELL_IMAGE, args=["echo hi"])).argv == ["sh", "-c", "echo hi"]
    assert shell.resolve(_launch(images.SHELL_IMAGE, ["bash", "-c"], ["true"])).argv == ["bash", "-c", "true"]


def test_image_map_latest_mapping_wins_and_can_be_removed():
    mapping = images.default_image_map()
    remove = mapping.add("*/fti-*", lambda launch: launch.with_argv(["custom"]))
    assert mapping.resolve(_launch("ghcr.io/a/fti-training", ["python"])).argv == ["custom"]
    remove()
    assert mapping.resolve(_launch("ghcr.io/a/fti-training", ["python"])).argv == [sys.executable]
    with pytest.raises(images.Refused, match="'busybox:1' is not mapped"):
        mapping.resolve(_launch("busybox:1", ["true"]))


def test_expand_follows_kubelet_rules():
    env = {"A": "1"}
    assert pod_env.expand("$(A)-$$(A)-$(MISSING)-$$", env) == "1-$(A)-$(MISSING)-$"


class _FakeCore:
    """Just the two reads EnvResolver makes."""

    def __init__(self, configmaps, secrets):
        self.configmaps, self.secrets = configmaps, secrets

    @staticmethod
    def _get(store, name):
        if name not in store:
            raise ApiException(status=404)
        return types.SimpleNamespace(data=store[name])

    def read_namespaced_config_map(self, name, namespace):
        return self._get(self.configmaps, name)

    def read_namespaced_secret(self, name, namespace):
        return self._get(self.secrets, name)


def test_env_resolution_order_and_sources():
    core = _FakeCore({"cm": {"URI": "file:///s"}}, {"sec": {"token": base64.b64encode(b"t0k").decode()}})
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}}, "spec": {}, "status": {}}
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CFG_"}, {"secretRef": {"name": "nope", "optional": True}}],
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "absent", "optional": True}}},
            {"name": "BOTH", "value": "$(APP)/$(CFG_URI)"},
        ],
        "command": ["run"], "args": ["--token=$(TOKEN)"],
    }
    env = pod_env.EnvResolver(core).environment(pod, container)
    assert env == {"CFG_URI": "file:///s", "TOKEN": "t0k", "APP": "x", "BOTH": "x/file:///s"}
    assert pod_env.argv(container, env) == ["run", "--token=t0k"]

    missing = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "other"}}}]}
    with pytest.raises(pod_env.ConfigError, match="couldn't find key other"):
        pod_env.EnvResolver(core).environment(pod, missing)


def test_termination_message_is_capped_and_falls_back_to_logs(tmp_path):
    message, log = tmp_path / "msg", tmp_path / "log"
    message.write_bytes(b"x" * 5000)
    assert len(termination_message(message, log, 0, None)) == 4096
    message.unlink()
    log.write_text("\n".join(f"line {i}" for i in range(200)))
    assert termination_message(message, log, 1, "File") == ""
    fallback = termination_message(message, log, 1, "FallbackToLogsOnError")
    assert fallback.endswith("line 199") and "line 119" not in fallback
    assert exit_code(-9) == 137 and exit_code(3) == 3


def test_conditions_keep_transition_time_until_status_flips(monkeypatch):
    from controlplane import pod_status

    times = iter(["t1", "t2", "t3"])
    monkeypatch.setattr(pod_status, "now", lambda: next(times))
    conditions = Conditions()
    conditions.set("Ready", False, "ContainersNotReady")
    conditions.set("Ready", False, "ContainersNotReady")
    assert conditions.as_list()[0]["lastTransitionTime"] == "t1"
    conditions.set("Ready", True)
    assert conditions.as_list()[0] == {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": "t2"}


def test_wait_until_returns_value_and_explains_timeouts():
    calls = iter([None, ApiException(status=404), "done"])

    def predicate():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(predicate, timeout=5, interval=0.01, ignore=(ApiException,)) == "done"
    with pytest.raises(WaitTimeout, match="waiting for the impossible; last: 0"):
        wait_until(lambda: 0, timeout=0.05, interval=0.01, description="the impossible")
