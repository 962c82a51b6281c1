"""A container's environment and argv, resolved the way kubelet resolves them.

Order and rules follow kubelet: ``envFrom`` first (with prefixes), then ``env``
in order, each value able to reference earlier ones as ``$(NAME)``; ``$$``
escapes a dollar; unknown references stay literal. ``command``/``args`` are
expanded against the final environment.
"""

from __future__ import annotations

import base64
import re
from typing import Callable

from kubernetes.client.rest import ApiException

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class ConfigError(Exception):
    """A referenced ConfigMap/Secret/key is missing (kubelet: CreateContainerConfigError)."""


def expand(value: str, env: dict[str, str]) -> str:
    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REF.sub(sub, value)


def _field_ref(pod: dict, path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP") or "127.0.0.1",
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
    }
    if path in simple:
        return simple[path] or ""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    raise ConfigError(f"unsupported fieldRef {path!r}")


def _resource_ref(container: dict, ref: dict) -> str:
    # Good enough for tests: the quantity as written in the spec (no divisor maths).
    kind, _, resource = ref.get("resource", "").partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    return str(value) if value is not None else "0"


class EnvResolver:
    """Resolves references through the API (``core`` is a CoreV1Api)."""

    def __init__(self, core) -> None:
        self.core = core

    def _read(self, kind: str, namespace: str, name: str) -> dict | None:
        try:
            if kind == "Secret":
                obj = self.core.read_namespaced_secret(name, namespace)
                return {k: base64.b64decode(v).decode() for k, v in (obj.data or {}).items()}
            obj = self.core.read_namespaced_config_map(name, namespace)
            return dict(obj.data or {})
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _key(self, kind: str, namespace: str, ref: dict) -> str | None:
        data = self._read(kind, namespace, ref["name"])
        optional = bool(ref.get("optional"))
        if data is None:
            if optional:
                return None
            raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        if ref["key"] not in data:
            if optional:
                return None
            raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} {namespace}/{ref["name"]}')
        return data[ref["key"]]

    def environment(self, pod: dict, container: dict) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = source.get(key)
                if not ref:
                    continue
                data = self._read(kind, namespace, ref["name"])
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
                env.update({prefix + k: v for k, v in data.items()})
        lookups: dict[str, Callable[[dict], str | None]] = {
            "fieldRef": lambda ref: _field_ref(pod, ref["fieldPath"]),
            "resourceFieldRef": lambda ref: _resource_ref(container, ref),
            "secretKeyRef": lambda ref: self._key("Secret", namespace, ref),
            "configMapKeyRef": lambda ref: self._key("ConfigMap", namespace, ref),
        }
        for var in container.get("env") or []:
            if "valueFrom" in var and var["valueFrom"]:
                (kind, ref), = ((k, v) for k, v in var["valueFrom"].items() if v)
                if kind not in lookups:
                    raise ConfigError(f"unsupported valueFrom {kind!r} for {var['name']}")
                value = lookups[kind](ref)
                if value is None:  # optional and absent: the variable is not set
                    continue
                env[var["name"]] = value
            else:
                env[var["name"]] = expand(var.get("value", ""), env)
        return env


def argv(container: dict, env: dict[str, str]) -> list[str]:
    """``command + args`` with ``$(VAR)`` references expanded."""
    return [expand(str(a), env) for a in (container.get("command") or []) + (container.get("args") or [])]
