"""Env and argv of a local container, resolved with kubelet's rules."""

from __future__ import annotations

import base64

import pytest

from fti_operator.local.podenv import (
    ContainerConfigError,
    DictSource,
    expand,
    expand_argv,
    parse_quantity,
    resolve_env,
)

POD = {
    "metadata": {
        "name": "p1",
        "namespace": "ns",
        "uid": "u-1",
        "labels": {"batch.kubernetes.io/job-name": "j1", "app": "x"},
        "annotations": {"a": "b"},
    },
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
    "status": {},
}
SOURCE = DictSource(
    secrets={("ns", "store"): {"password": "pw", "user": "u"}},
    config_maps={("ns", "cfg"): {"URI": "file:///s", "MODE": "fast", "bad=name": "skipped"}},
)


def env_of(*env: dict, env_from: list | None = None, source: DictSource = SOURCE, **container) -> dict[str, str]:
    return resolve_env({"env": list(env), "envFrom": env_from or [], **container}, POD, source)


@pytest.mark.parametrize(
    "text,out",
    [
        ("$(A)", "1"),
        ("$(A)-$$(A)-$(MISSING)-$$", "1-$(A)-$(MISSING)-$"),
        ("$$$(A)", "$1"),
        ("a$b $( $(A", "a$b $( $(A"),  # not references: as written
        ("$()", "$()"),
        ("end$", "end$"),
    ],
)
def test_expand_follows_kubelet(text: str, out: str) -> None:
    assert expand(text, {"A": "1"}) == out


def test_value_references_only_earlier_variables() -> None:
    env = env_of({"name": "A", "value": "$(B)"}, {"name": "B", "value": "2"}, {"name": "C", "value": "$(B)$(A)"})
    assert env == {"A": "$(B)", "B": "2", "C": "2$(B)"}


def test_value_from_is_not_expanded() -> None:
    source = DictSource(secrets={"s": {"k": "$(A)"}})
    assert (
        env_of(
            {"name": "A", "value": "1"}, {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, source=source
        )["S"]
        == "$(A)"
    )


def test_command_and_args_see_the_final_environment() -> None:
    container = {"command": ["run", "$(LATE)"], "args": ["--pw=$(PW)", "$$(PW)", "$(NOPE)"]}
    env = env_of(
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "store", "key": "password"}}},
        {"name": "LATE", "value": "late"},
        **container,
    )
    assert expand_argv(container, env) == ["run", "late", "--pw=pw", "$(PW)", "$(NOPE)"]


@pytest.mark.parametrize(
    "path,value",
    [
        ("metadata.name", "p1"),
        ("metadata.namespace", "ns"),
        ("metadata.uid", "u-1"),
        ("metadata.labels['batch.kubernetes.io/job-name']", "j1"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['a']", "b"),
        ("metadata.labels", 'app="x"\nbatch.kubernetes.io/job-name="j1"'),
        ("spec.nodeName", "n1"),
        ("spec.serviceAccountName", "sa"),
        ("status.podIP", "127.0.0.1"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_refs(path: str, value: str) -> None:
    assert env_of({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}) == {"V": value}


def test_unsupported_field_ref_names_the_variable() -> None:
    with pytest.raises(ContainerConfigError, match=r"env V: unsupported fieldRef 'spec\.nope'"):
        env_of({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}})


@pytest.mark.parametrize(
    "resource,divisor,value",
    [
        ("limits.cpu", None, "2"),  # 1500m rounds up to whole cores
        ("limits.cpu", "1m", "1500"),
        ("requests.cpu", "1m", "250"),
        ("limits.memory", "1Mi", "512"),
        ("requests.memory", None, str(512 * 2**20)),  # unset request defaults to the limit
        ("requests.ephemeral-storage", None, "0"),
    ],
)
def test_resource_field_refs(resource: str, divisor: str | None, value: str) -> None:
    ref = {"resource": resource, **({"divisor": divisor} if divisor else {})}
    container = {"resources": {"limits": {"cpu": "1500m", "memory": "512Mi"}, "requests": {"cpu": "250m"}}}
    assert env_of({"name": "R", "valueFrom": {"resourceFieldRef": ref}}, **container) == {"R": value}


def test_unset_limit_is_the_node_allocatable() -> None:
    env = resolve_env(
        {"env": [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]},
        POD,
        SOURCE,
        allocatable={"cpu": "64"},
    )
    assert env == {"C": "64"}


def test_parse_quantity() -> None:
    assert parse_quantity("1Gi") == 2**30 and parse_quantity("1e3") == 1000 and parse_quantity("1E") == 10**18
    assert parse_quantity("100m") * 10 == 1
    with pytest.raises(ContainerConfigError):
        parse_quantity("lots")


def test_key_refs_and_optional() -> None:
    env = env_of(
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "store", "key": "password"}}},
        {"name": "URI", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "URI"}}},
        {"name": "OPT_KEY", "valueFrom": {"secretKeyRef": {"name": "store", "key": "nope", "optional": True}}},
        {"name": "OPT_OBJ", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}},
        {"name": "AFTER", "value": "$(OPT_KEY)"},
    )
    assert env == {"PW": "pw", "URI": "file:///s", "AFTER": "$(OPT_KEY)"}


@pytest.mark.parametrize(
    "ref,message",
    [
        ({"secretKeyRef": {"name": "store", "key": "nope"}}, "env X: couldn't find key nope in Secret ns/store"),
        ({"secretKeyRef": {"name": "gone", "key": "password"}}, "env X: Secret ns/gone not found"),
        ({"configMapKeyRef": {"name": "cfg", "key": "nope"}}, "env X: couldn't find key nope in ConfigMap ns/cfg"),
        ({"configMapKeyRef": {"name": "gone", "key": "k"}}, "env X: ConfigMap ns/gone not found"),
    ],
)
def test_missing_reference_names_object_and_key(ref: dict, message: str) -> None:
    with pytest.raises(ContainerConfigError) as exc:
        env_of({"name": "X", "valueFrom": ref})
    assert str(exc.value) == message


def test_env_from_with_prefix_order_and_optional() -> None:
    env = env_of(
        {"name": "MODE", "value": "slow"},  # env wins over envFrom
        {"name": "BOTH", "value": "$(CFG_URI)/$(S_user)"},
        env_from=[
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "store"}, "prefix": "S_"},
            {"secretRef": {"name": "gone", "optional": True}},
        ],
    )
    assert env == {
        "CFG_URI": "file:///s",
        "CFG_MODE": "fast",
        "URI": "file:///s",
        "MODE": "slow",
        "S_password": "pw",
        "S_user": "u",
        "BOTH": "file:///s/u",
    }


def test_env_from_missing_required_source_names_it() -> None:
    with pytest.raises(ContainerConfigError, match="envFrom: Secret ns/gone not found"):
        env_of(env_from=[{"secretRef": {"name": "gone"}}])


def test_dict_source_from_manifests_decodes_secrets() -> None:
    source = DictSource.from_objects(
        [
            {
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "ns"},
                "data": {"a": base64.b64encode(b"1").decode()},
                "stringData": {"b": "2"},
            },
            {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
        ]
    )
    assert source.secret("ns", "s") == {"a": "1", "b": "2"} and source.secret("other", "s") is None
    assert source.config_map("default", "c") == {"k": "v"}
