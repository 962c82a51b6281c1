"""A container's environment and argv, resolved exactly as kubelet resolves them.

Both local runners of pods (`fti local` and the integration tests' stand-in for
kubelet) run the operator's rendered pod templates unchanged, so the environment a
pipeline sees must be the one a real node gives it. The rules, in kubelet's order
(https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/):

1. `envFrom` sources in order (ConfigMap or Secret, every key with `prefix`); a later
   source overrides an earlier one; keys that are not valid variable names are skipped.
2. `env` in order: a `value` may reference variables defined before it as `$(NAME)`;
   `valueFrom` values are taken as they are. An `optional` reference to a missing
   ConfigMap/Secret/key leaves the variable unset; a required one is an error (kubelet
   reports CreateContainerConfigError and retries, so callers may retry too).
3. `command` and `args` are expanded against the final environment.

Expansion: `$(NAME)` becomes the value when NAME is defined and stays as written when
not; `$$` is one literal `$` (so `$$(NAME)` gives `$(NAME)`).

Secrets and ConfigMaps come from a `ConfigSource`: the test bed reads the API server,
`fti local` its in-memory objects (`DictSource`).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol


class ContainerConfigError(Exception):
    """A referenced ConfigMap/Secret/key or field is missing (kubelet: CreateContainerConfigError)."""


class ConfigSource(Protocol):
    """Where Secrets and ConfigMaps are read from; None when the object does not exist."""

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, base64-decoded."""

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's data."""


def decode_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's `data` (base64) as strings; bytes that are not UTF-8 survive as surrogates,
    which os.environ encodes back to the same bytes."""
    return {k: base64.b64decode(v).decode("utf-8", "surrogateescape") for k, v in (data or {}).items()}


@dataclass
class DictSource:
    """Secrets and ConfigMaps held in memory, keyed by `(namespace, name)` or by bare name
    (any namespace); values are decoded strings."""

    secrets: dict[Any, dict[str, str]] = field(default_factory=dict)
    config_maps: dict[Any, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> DictSource:
        """From Kubernetes manifests: Secrets (`data` base64, `stringData` plain) and ConfigMaps."""
        source = cls()
        for obj in objects:
            meta = obj.get("metadata") or {}
            key = (meta.get("namespace") or "default", meta["name"])
            if obj.get("kind") == "Secret":
                source.secrets[key] = {**decode_secret_data(obj.get("data")), **(obj.get("stringData") or {})}
            elif obj.get("kind") == "ConfigMap":
                source.config_maps[key] = dict(obj.get("data") or {})
        return source

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return _lookup(self.secrets, namespace, name)

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        return _lookup(self.config_maps, namespace, name)


def _lookup(store: Mapping[Any, Mapping[str, str]], namespace: str, name: str) -> dict[str, str] | None:
    data = store.get((namespace, name), store.get(name))
    return None if data is None else dict(data)


# ------------------------------------------------------------------ expansion
_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubelet's `$(VAR)` expansion: defined names replaced, `$$` -> `$`, the rest as written."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(sub, value)


def expand_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """`command + args`, each expanded against the container's final environment."""
    return [expand(str(a), env) for a in [*(container.get("command") or []), *(container.get("args") or [])]]


def _valid_name(name: str) -> bool:
    # Kubernetes >= 1.32 accepts any printable ASCII but '=' in variable names.
    return bool(name) and "=" not in name and all(" " <= ch <= "~" for ch in name)


# ----------------------------------------------------------------- downward API
_MAP_ITEM = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


def _format_map(values: Mapping[str, str]) -> str:
    # What kubelet writes for a whole labels/annotations map: sorted `key="value"` lines.
    return "\n".join(f"{k}={json.dumps(values[k])}" for k in sorted(values))


def field_ref(pod: Mapping[str, Any], path: str) -> str:
    """A `fieldRef` value; every local pod lives on 127.0.0.1 unless its status says otherwise."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    match = _MAP_ITEM.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    pod_ip = status.get("podIP") or "127.0.0.1"
    host_ip = status.get("hostIP") or "127.0.0.1"
    simple: dict[str, Callable[[], Any]] = {
        "metadata.name": lambda: meta.get("name"),
        "metadata.namespace": lambda: meta.get("namespace") or "default",
        "metadata.uid": lambda: meta.get("uid"),
        "metadata.labels": lambda: _format_map(meta.get("labels") or {}),
        "metadata.annotations": lambda: _format_map(meta.get("annotations") or {}),
        "spec.nodeName": lambda: spec.get("nodeName"),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName"),
        "status.podIP": lambda: pod_ip,
        "status.podIPs": lambda: ",".join(ip["ip"] for ip in status.get("podIPs") or [{"ip": pod_ip}]),
        "status.hostIP": lambda: host_ip,
        "status.hostIPs": lambda: ",".join(ip["ip"] for ip in status.get("hostIPs") or [{"ip": host_ip}]),
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path]() or "")


_SUFFIXES = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(text: Any) -> Fraction:
    """A Kubernetes resource quantity (`250m`, `1Gi`, `1e3`, `2`) as an exact number."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ContainerConfigError(f"invalid quantity {text!r}")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    return value * Fraction(10) ** int(exponent[1:]) if exponent else value * _SUFFIXES[suffix or ""]


def node_allocatable() -> dict[str, str]:
    """What this machine offers; kubelet uses the node's allocatable for an unset limit."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    return {"cpu": str(os.cpu_count() or 1), "memory": str(memory), "ephemeral-storage": "0"}


def resource_field_ref(container: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, str] | None = None) -> str:
    """A `resourceFieldRef` value: the quantity divided by `divisor`, rounded up, as kubelet does."""
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or not resource:
        raise ContainerConfigError(f"unsupported resourceFieldRef {ref.get('resource')!r}")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)  # the API server's defaulting
    if value is None:
        value = (allocatable or node_allocatable()).get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor <= 0:
        raise ContainerConfigError(f"resourceFieldRef {ref.get('resource')}: divisor must be positive")
    return str(math.ceil(parse_quantity(value) / divisor))


# ------------------------------------------------------------------ resolution
def resolve_env(
    container: Mapping[str, Any], pod: Mapping[str, Any], source: ConfigSource, *, allocatable: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The container's environment (envFrom, then env) as kubelet builds it.

    `pod` is the whole pod (`metadata`, and `spec`/`status` where fieldRefs read them).
    Raises ContainerConfigError naming the variable and the missing object or key.
    """
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    readers = {"Secret": source.secret, "ConfigMap": source.config_map}
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix") or ""
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = item.get(key)
            if not ref:
                continue
            data = readers[kind](namespace, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f"envFrom: {kind} {namespace}/{ref['name']} not found")
            env.update({prefix + k: v for k, v in data.items() if _valid_name(prefix + k)})

    def key_ref(kind: str, var: str, ref: Mapping[str, Any]) -> str | None:
        data = readers[kind](namespace, ref["name"])
        if data is not None and ref["key"] in data:
            return data[ref["key"]]
        if ref.get("optional"):
            return None
        if data is None:
            raise ContainerConfigError(f"env {var}: {kind} {namespace}/{ref['name']} not found")
        raise ContainerConfigError(f"env {var}: couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")

    for var in container.get("env") or []:
        name = var["name"]
        value_from = var.get("valueFrom")
        if not value_from:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        value: str | None
        if "fieldRef" in value_from:
            try:
                value = field_ref(pod, value_from["fieldRef"]["fieldPath"])
            except ContainerConfigError as exc:
                raise ContainerConfigError(f"env {name}: {exc}") from None
        elif "resourceFieldRef" in value_from:
            value = resource_field_ref(container, value_from["resourceFieldRef"], allocatable)
        elif "secretKeyRef" in value_from:
            value = key_ref("Secret", name, value_from["secretKeyRef"])
        elif "configMapKeyRef" in value_from:
            value = key_ref("ConfigMap", name, value_from["configMapKeyRef"])
        else:
            raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
        if value is not None:  # None: an optional reference to something missing
            env[name] = value
    return env
