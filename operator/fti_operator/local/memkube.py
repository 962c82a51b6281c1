"""An in-memory Kubernetes API server: the `Kube` that `fti local` hands the reconcilers.

The reconcilers must behave under `fti local` exactly as in a cluster, so this implements the
API-server semantics they depend on (docs/architecture.md, "Two drivers"), and nothing more:

- every object has `uid`, `creationTimestamp`, a `resourceVersion` from one global counter,
  and a `generation` that starts at 1 and grows only when the spec (anything outside
  `metadata` and `status`) changes — through `apply` and `patch` alike;
- every kind behaves as a CRD with the status subresource: `status` is ignored by create,
  apply and plain patches, and `patch(..., subresource="status")` changes nothing else;
- a `metadata.resourceVersion` in a patch (or an apply) that is not the live one is a 409;
- `apply` is server-side apply, simplified: maps are merged, lists and scalars replaced, and
  a field the same field manager applied before but leaves out now is removed; the manager's
  `managedFields` entry records the time of its last apply that changed the object;
- `patch` is an RFC 7386 JSON merge patch; a write that changes nothing changes no
  resourceVersion and tells no subscriber (the API server skips no-op updates too);
- `delete` of an object with finalizers only sets `deletionTimestamp`; it goes when a patch
  removes the last finalizer. Deleting an object deletes, in the background, the objects
  whose `ownerReferences` name it and no other live owner (the garbage collector).

Every request is counted in `calls` by (HTTP verb, plural) as the cluster client counts
them, so a test can assert that a no-change reconcile writes nothing. One lock guards the
state; subscribers get (type, object) for every change, in the order the changes happened.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..reconcile.kube import FIELD_MANAGER, ApiError
from .objects import (
    SERVER_FIELDS,
    Path,
    matches,
    merge_patch,
    owned_paths,
    parse_selector,
    plural_of,
    remove_path,
    rfc3339,
    spec_of,
)

log = logging.getLogger("fti_operator.local")

Key = tuple[str, str, str, str]  # (apiVersion, plural, namespace or "", name)
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DUMP_FORMAT = 1
# Kubernetes' generateName suffix: five characters, no vowels (no words) and no look-alikes.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

Subscriber = Callable[[str, dict[str, Any]], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class MemKube:
    """The `Kube` Protocol (fti_operator.reconcile.kube) on dicts in memory. See the module docstring."""

    def __init__(self, clock: Callable[[], datetime] = utcnow):
        self.clock = clock
        self.calls: Counter[tuple[str, str]] = Counter()
        self._objects: dict[Key, dict[str, Any]] = {}  # insertion order = creation order
        self._applied: dict[Key, dict[str, set[Path]]] = {}  # field manager -> paths it applied
        self._version = 0
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self._pending: deque[tuple[str, dict[str, Any]]] = deque()
        self._delivering = threading.RLock()

    # -- counting and watching -----------------------------------------------------------------
    def writes(self) -> int:
        """Write requests made so far (POST, PUT, PATCH, DELETE), no-op writes included."""
        with self._lock:
            return sum(n for (verb, _), n in self.calls.items() if verb in WRITE_VERBS)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(type, obj)` (ADDED, MODIFIED, DELETED) after every change; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _deliver(self) -> None:
        # Changes queue under the state lock and are drained in order by whoever gets here first,
        # outside that lock: a subscriber may write again (its changes queue behind).
        with self._delivering:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    type_, obj = self._pending.popleft()
                    subscribers = list(self._subscribers)
                for callback in subscribers:
                    try:
                        callback(type_, copy.deepcopy(obj))
                    except Exception:  # a broken watcher must not undo a write that happened
                        log.exception("watcher %r failed on %s %s", callback, type_, obj["metadata"].get("name"))

    def _record(self, type_: str, obj: dict[str, Any]) -> None:
        if self._subscribers:
            self._pending.append((type_, copy.deepcopy(obj)))

    # -- helpers (callers hold the lock) --------------------------------------------------------
    def _count(self, verb: str, plural: str) -> None:
        self.calls[(verb, plural)] += 1

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    @staticmethod
    def _key(api_version: str, plural: str, namespace: str | None, name: str) -> Key:
        return (api_version, plural, namespace or "", name)

    def _key_of(self, obj: Mapping[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        return self._key(obj["apiVersion"], plural_of(obj), meta.get("namespace"), meta["name"])

    def _live(self, key: Key) -> dict[str, Any]:
        live = self._objects.get(key)
        if live is None:
            raise ApiError(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        return live

    @staticmethod
    def _check_version(given: Mapping[str, Any], live: Mapping[str, Any]) -> None:
        wanted = (given.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and str(wanted) != live["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {live['kind']} "
                f'"{live["metadata"]["name"]}": the object has been modified; please apply your '
                "changes to the latest version and try again",
            )

    def _insert(self, key: Key, obj: Mapping[str, Any]) -> dict[str, Any]:
        body = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
        meta = body["metadata"] = {
            k: v
            for k, v in body.get("metadata", {}).items()
            if k not in SERVER_FIELDS or k in ("name", "namespace", "generateName")
        }
        meta.update(
            name=key[3],
            uid=str(uuid.uuid4()),
            creationTimestamp=rfc3339(self.clock()),
            resourceVersion=self._next_version(),
            generation=1,
        )
        if key[2]:
            meta["namespace"] = key[2]
        self._objects[key] = body
        self._record("ADDED", body)
        return body

    def _store(self, key: Key, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Replace `old` with `new` when they differ: new resourceVersion, generation on spec change."""
        if new == old:
            return old
        meta = new["metadata"]
        if spec_of(new) != spec_of(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_version()
        self._objects[key] = new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key)  # the last finalizer went: now the object goes
            return new
        self._record("MODIFIED", new)
        return new

    def _stamp(self, obj: dict[str, Any], field_manager: str) -> None:
        """Record when `field_manager` last changed the object, as the API server's managedFields
        entry does (the time of that manager's last write that changed something): adoption
        reads it as the start of a rollout it finds in flight (docs/rollouts.md)."""
        entries = [e for e in obj["metadata"].get("managedFields") or [] if e.get("manager") != field_manager]
        entries.append({"manager": field_manager, "operation": "Apply", "time": rfc3339(self.clock())})
        obj["metadata"]["managedFields"] = entries

    def _remove(self, key: Key) -> None:
        gone = self._objects.pop(key)
        self._applied.pop(key, None)
        self._record("DELETED", gone)
        self._collect(gone["metadata"]["uid"])

    def _collect(self, uid: str) -> None:
        """The garbage collector: dependents of `uid` with no other live owner are deleted."""
        live_uids = {o["metadata"]["uid"] for o in self._objects.values()}
        for key, obj in list(self._objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            others_live = any(r.get("uid") in live_uids for r in refs if r.get("uid") != uid)
            if key in self._objects and any(r.get("uid") == uid for r in refs) and not others_live:
                self._delete(key)

    def _delete(self, key: Key, propagation: str = "Background") -> None:
        obj = self._objects.get(key)
        if obj is None:
            return
        meta = obj["metadata"]
        if propagation == "Orphan":
            for dep_key, dep in list(self._objects.items()):
                refs = dep["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == meta["uid"] for r in refs):
                    kept = [r for r in refs if r.get("uid") != meta["uid"]]
                    new = copy.deepcopy(dep)
                    new["metadata"]["ownerReferences"] = kept
                    if not kept:
                        del new["metadata"]["ownerReferences"]
                    self._store(dep_key, dep, new)
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(obj)
                new["metadata"].update(deletionTimestamp=rfc3339(self.clock()), deletionGracePeriodSeconds=0)
                self._store(key, obj, new)
            return
        self._remove(key)

    # -- the Kube Protocol -----------------------------------------------------------------------
    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        with self._lock:
            self._count("GET", plural)
            obj = self._objects.get(self._key(api_version, plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def get_metadata(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """As the API server answers a GET asking for PartialObjectMetadata: metadata only."""
        with self._lock:
            self._count("GET", plural)
            obj = self._objects.get(self._key(api_version, plural, namespace, name))
            if obj is None:
                return None
            return {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": copy.deepcopy(obj["metadata"])}

    def list(
        self, api_version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Matching objects in creation order; `namespace=None` lists every namespace."""
        terms = parse_selector(label_selector)
        with self._lock:
            self._count("GET", plural)
            return [
                copy.deepcopy(obj)
                for (api, plu, ns, _), obj in self._objects.items()
                if api == api_version
                and plu == plural
                and (namespace is None or ns == namespace)
                and matches(obj["metadata"].get("labels") or {}, terms)
            ]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        if not obj.get("apiVersion") or not obj.get("kind") or not (meta.get("name") or meta.get("generateName")):
            raise ApiError(422, "Invalid", "apiVersion, kind and metadata.name (or generateName) are required")
        plural = plural_of(obj)
        with self._lock:
            self._count("POST", plural)
            name = meta.get("name")
            if not name:
                for _ in range(100):
                    name = meta["generateName"] + "".join(random.choices(NAME_ALPHABET, k=5))
                    if self._key(obj["apiVersion"], plural, meta.get("namespace"), name) not in self._objects:
                        break
            key = self._key(obj["apiVersion"], plural, meta.get("namespace"), str(name))
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
            created = copy.deepcopy(self._insert(key, {**obj, "metadata": {**meta, "name": name}}))
        self._deliver()
        return created

    def apply(self, obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply (force): create, or merge `obj` in and drop what this manager no longer sets."""
        meta = obj.get("metadata") or {}
        if not obj.get("apiVersion") or not obj.get("kind") or not meta.get("name"):
            raise ApiError(422, "Invalid", "apiVersion, kind and metadata.name are required")
        key = self._key_of(obj)
        given = {k: v for k, v in obj.items() if k != "status"}
        paths = owned_paths(given)
        with self._lock:
            self._count("PATCH", key[1])
            live = self._objects.get(key)
            if live is None:
                result = self._insert(key, given)
                self._stamp(result, field_manager)
            else:
                self._check_version(given, live)
                managers = self._applied.get(key, {})
                others = set().union(*(p for m, p in managers.items() if m != field_manager))
                new = copy.deepcopy(live)
                for path in sorted(managers.get(field_manager, set()) - paths - others, key=len, reverse=True):
                    remove_path(new, path, paths | others)
                client = {k: v for k, v in given.items() if k != "metadata"}
                client["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_FIELDS}
                new = merge_patch(new, client)
                result = self._store(key, live, new)
                if result is not live:
                    self._stamp(result, field_manager)
            if key in self._objects:
                self._applied.setdefault(key, {})[field_manager] = paths
            result = copy.deepcopy(result)
        self._deliver()
        return result

    def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch of the object (status ignored) or, with subresource="status", of its status only."""
        if subresource not in (None, "status"):
            raise ApiError(404, "NotFound", f"no subresource {subresource!r} here")
        key = self._key(api_version, plural, namespace, name)
        with self._lock:
            self._count("PATCH", plural + (f"/{subresource}" if subresource else ""))
            live = self._live(key)
            self._check_version(patch, live)
            if subresource == "status":
                new = {**copy.deepcopy(live), "status": merge_patch(live.get("status"), patch.get("status") or {})}
                if not new["status"]:
                    del new["status"]
            else:
                body = {k: v for k, v in patch.items() if k not in ("status", "apiVersion", "kind")}
                if "metadata" in body:
                    body["metadata"] = {k: v for k, v in (body["metadata"] or {}).items() if k not in SERVER_FIELDS}
                new = merge_patch(live, body)
                added = set(new["metadata"].get("finalizers") or []) - set(live["metadata"].get("finalizers") or [])
                if live["metadata"].get("deletionTimestamp") and added:
                    raise ApiError(422, "Invalid", f"no new finalizers can be added if the object is being deleted: {added}")
            result = copy.deepcopy(self._store(key, live, new))
        self._deliver()
        return result

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str, propagation: str = "Background") -> None:
        """Delete (Foreground is treated as Background; Orphan keeps the dependents); missing is fine."""
        with self._lock:
            self._count("DELETE", plural)
            self._delete(self._key(api_version, plural, namespace, name), propagation)
        self._deliver()

    # -- persistence -------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """Everything as JSON-serialisable data; `MemKube.load` restores it."""
        with self._lock:
            return {
                "format": DUMP_FORMAT,
                "resourceVersion": self._version,
                "objects": [{"plural": key[1], "object": copy.deepcopy(obj)} for key, obj in self._objects.items()],
                "applied": [
                    {
                        "plural": key[1],
                        "namespace": key[2],
                        "name": key[3],
                        "apiVersion": key[0],
                        "managers": {m: sorted(map(list, paths)) for m, paths in managers.items()},
                    }
                    for key, managers in self._applied.items()
                ],
            }

    @classmethod
    def load(cls, data: Mapping[str, Any], clock: Callable[[], datetime] = utcnow) -> MemKube:
        kube = cls(clock)
        if not data:
            return kube
        if data.get("format") != DUMP_FORMAT:
            raise ValueError(f"unknown state format {data.get('format')!r} (expected {DUMP_FORMAT})")
        kube._version = int(data["resourceVersion"])
        for entry in data["objects"]:
            obj = entry["object"]
            meta = obj["metadata"]
            kube._objects[kube._key(obj["apiVersion"], entry["plural"], meta.get("namespace"), meta["name"])] = obj
        for entry in data.get("applied") or []:
            key = kube._key(entry["apiVersion"], entry["plural"], entry["namespace"], entry["name"])
            kube._applied[key] = {m: {tuple(p) for p in paths} for m, paths in entry["managers"].items()}
        return kube
