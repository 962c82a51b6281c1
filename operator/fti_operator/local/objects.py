"""What the in-memory API server does to one object, as pure functions: JSON merge patch,
the field paths a server-side apply owns, label selectors, plural names, RFC 3339 times.

Kept apart from memkube.py (the store, its locking and its verbs) so each can be read alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..reconcile.kube import ApiError

Path = tuple[str, ...]
# Written by the server only: a client's value is ignored (name and namespace identify the object).
SERVER_FIELDS = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "name",
    "namespace",
    "generateName",
)
NOT_SPEC = frozenset({"apiVersion", "kind", "metadata", "status"})


def plural_of(obj: Mapping[str, Any]) -> str:
    """The resource name of a kind, by the API machinery's default rule (Job -> jobs, Policy -> policies)."""
    kind = str(obj["kind"]).lower()
    if kind.endswith("y") and kind[-2:-1] not in "aeiou":
        return kind[:-1] + "ies"
    return kind + ("es" if kind.endswith(("s", "x", "ch", "sh")) else "s")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null removes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def leaf_paths(obj: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """Paths to every non-map value (lists are atomic, as in a merge patch) and every empty map."""
    out: set[Path] = set()
    for key, value in obj.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            out |= leaf_paths(value, path)
        else:
            out.add(path)
    return out


def remove_path(obj: dict[str, Any], path: Path, keep: set[Path]) -> None:
    """Delete the value at `path`, then every map on the way that became empty and is not in `keep`."""
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth] or path[:depth] in keep:
            break
        parents[depth - 1].pop(path[depth - 1], None)


def owned_paths(obj: Mapping[str, Any]) -> set[Path]:
    """The fields an apply of `obj` sets (what its field manager then owns)."""
    body = {k: v for k, v in obj.items() if k not in NOT_SPEC}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS}
    return leaf_paths(body) | leaf_paths(meta, ("metadata",))


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in NOT_SPEC}


def parse_selector(selector: str | None) -> list[tuple[str, str, str | None]]:
    """`a=b,c!=d,e,!f` -> [(op, key, value)]; set-based selectors are not supported (400)."""
    out: list[tuple[str, str, str | None]] = []
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            out.append(("!=", key.strip(), value.strip()))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            out.append(("=", key.strip(), value.strip()))
        elif term.startswith("!"):
            out.append(("!", term[1:].strip(), None))
        elif " " in term or "(" in term:
            raise ApiError(400, "BadRequest", f"unsupported label selector {selector!r}")
        else:
            out.append(("exists", term, None))
    return out


def matches(labels: Mapping[str, str], terms: Iterable[tuple[str, str, str | None]]) -> bool:
    for op, key, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True
