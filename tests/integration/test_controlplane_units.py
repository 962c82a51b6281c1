"""Unit tests of the control-plane harness's pure parts (no cluster needed): the shell
image, Secrets/ConfigMaps read through the API for the product's env resolution
(tests/unit/local covers the resolution itself), pod conditions, polling.
"""

import base64
import sys
import types

import pytest
from kubernetes.client.rest import ApiException

from controlplane.pod_runner import SHELL_IMAGE, ApiSource, default_image_map
from controlplane.pod_status import Conditions
from fti_operator.local.kubelet import Launch
from fti_operator.local.podenv import ContainerConfigError, expand_argv, resolve_env
from support.wait import WaitTimeout, wait_until


def _launch(image, command=(), args=()):
    container = {"name": "main", "image": image, "command": list(command), "args": list(args)}
    return Launch(argv=[*command, *args], env={}, image=image, container=container, pod={})


def test_shell_image_wraps_args_in_sh_c_unless_a_command_is_given():
    images = default_image_map()
    assert images.resolve(_launch(SHELL_IMAGE, args=["echo hi"])).argv == ["sh", "-c", "echo hi"]
    assert images.resolve(_launch(SHELL_IMAGE, ["bash", "-c"], ["true"])).argv == ["bash", "-c", "true"]
    # The product's reference images stay mapped beside it.
    assert images.resolve(_launch("ghcr.io/acme/fti-training:1", ["python", "-m", "x"])).argv == [sys.executable, "-m", "x"]


class _FakeCore:
    """Just the two reads ApiSource makes."""

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


def test_env_resolution_reads_secrets_and_configmaps_through_the_api():
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
        "command": ["run"],
        "args": ["--token=$(TOKEN)"],
    }
    env = resolve_env(container, pod, ApiSource(core))
    assert env == {"CFG_URI": "file:///s", "TOKEN": "t0k", "APP": "x", "BOTH": "x/file:///s"}
    assert expand_argv(container, env) == ["run", "--token=t0k"]

    missing = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "other"}}}]}
    with pytest.raises(ContainerConfigError, match="couldn't find key other in Secret ns/sec"):
        resolve_env(missing, pod, ApiSource(core))


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
