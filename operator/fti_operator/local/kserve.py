"""A local stand-in for KServe's controller: InferenceServices -> local model servers + status.

The operator only sees KServe through the `serving.kserve.io/v1beta1` InferenceService it
applies and the status KServe writes back (Ready, url, per-component revisions and traffic),
so under `fti local` this writes that status in KServe's shapes — the same ones the test bed
writes in a cluster without KServe (tests/controlplane/kserve.py) — around servers started
by a `start_server(isvc, component, container) -> url` callable (the local driver's processes):

- A revision (`<isvc>-predictor-00001`, `<isvc>-transformer-00001`) per change of the
  components' template, as Knative makes them; `canaryTrafficPercent` alone only moves
  traffic. The predictor starts first; a transformer gets `--model_name <isvc>
  --predictor_host host:port` appended to its args, as KServe's controller passes them.
  Without `containers` the predictor's `model` spec (modelFormat, storageUri) is the container.
- Traffic: a ready new revision takes 100 % and becomes `latestRolledoutRevision` (the one it
  replaced becomes `previousRolledoutRevision`), or `canaryTrafficPercent` % beside the
  rolled-out one. A revision whose server fails (`start_server` raises `ServerFailed` or
  OSError) makes Ready False with the message; the last good revision keeps serving.
- `serving.kserve.io/deploymentMode: RawDeployment` (annotation) is honoured as KServe does:
  no traffic split, a canary percentage is ignored, no `traffic[]` in status (KServe reports
  the Knative route's table only in Serverless mode); `status.deploymentMode` says which mode.
- Servers of revisions that no longer take traffic are stopped (`stop_server(url)`), all of
  them when the InferenceService goes. Locally there is no ingress: `status.url` is the
  entry server (transformer, else predictor) of the revision with the largest traffic share.

State lives in memory; a new process derives revision numbers from the stored status and
starts the servers again (a previous revision's spec is gone then, so only the latest runs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..reconcile.kube import ApiError, Kube
from .memkube import utcnow
from .objects import rfc3339

API_VERSION, PLURAL = "serving.kserve.io/v1beta1", "inferenceservices"
COMPONENTS = ("predictor", "transformer")
FAILED_REASON = "RevisionFailed"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
RAW_DEPLOYMENT, SERVERLESS = "RawDeployment", "Serverless"

# start_server(isvc, "predictor"|"transformer", container) -> url: returns once the server is
# ready (or raises ServerFailed); stop_server(url) ends the server start_server returned it for.
StartServer = Callable[[dict[str, Any], str, dict[str, Any]], str]
StopServer = Callable[[str], None]


class ServerFailed(Exception):
    """Raised by `start_server` for a server that did not come up; the message goes to status."""


def revision_name(name: str, number: int, component: str = "predictor") -> str:
    return f"{name}-{component}-{number:05d}"


def revision_number(revision: str | None) -> int | None:
    tail = (revision or "").rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def template_hash(spec: Mapping[str, Any]) -> str:
    """What makes a new revision: the components' specs, traffic split aside."""
    parts = {c: {k: v for k, v in (spec.get(c) or {}).items() if k != "canaryTrafficPercent"} for c in COMPONENTS if spec.get(c)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def mode_of(isvc: Mapping[str, Any]) -> str:
    annotations = isvc["metadata"].get("annotations") or {}
    return RAW_DEPLOYMENT if annotations.get(DEPLOYMENT_MODE_ANNOTATION) == RAW_DEPLOYMENT else SERVERLESS


def replace_patch(old: Any, new: Any) -> Any:
    """The merge patch turning `old` into `new` (null for every key `new` drops)."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    patch = {k: None for k in old if k not in new}
    patch.update({k: replace_patch(old.get(k), v) for k, v in new.items() if old.get(k) != v})
    return patch


@dataclass
class Revision:
    number: int
    template: str
    urls: dict[str, str] = field(default_factory=dict)  # component -> url
    message: str | None = None  # why it failed; None = ready


@dataclass
class Serving:
    revisions: dict[int, Revision] = field(default_factory=dict)
    rolled: int | None = None
    previous: int | None = None


class LocalKServe:
    """KServe's controller, locally: see the module docstring."""

    def __init__(self, kube: Kube, start_server: StartServer, stop_server: StopServer, clock: Callable[[], datetime] = utcnow):
        self.kube, self.start_server, self.stop_server, self.clock = kube, start_server, stop_server, clock
        self._serving: dict[tuple[str, str], Serving] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def step(self) -> int:
        """Reconcile every InferenceService and stop the servers of those gone; returns how many changed."""
        live = self.kube.list(API_VERSION, PLURAL, None)
        keys = {(o["metadata"].get("namespace") or "", o["metadata"]["name"]) for o in live}
        changed = sum(self.forget(ns, name) for ns, name in list(self._serving) if (ns, name) not in keys)
        return changed + sum(self.reconcile(isvc) for isvc in live)

    def forget(self, namespace: str | None, name: str) -> bool:
        """Stop every server of an InferenceService that went; False when it had none."""
        serving = self._serving.pop((namespace or "", name), None)
        if serving is None:
            return False
        for rev in serving.revisions.values():
            self._stop(rev)
        return True

    def stop_all(self) -> None:
        for ns, name in list(self._serving):
            self.forget(ns, name)

    def servers(self) -> dict[str, dict[str, dict[str, str]]]:
        """'namespace/name' -> revision name -> component -> url, of every running server."""
        return {
            f"{ns}/{name}": {revision_name(name, n): dict(r.urls) for n, r in s.revisions.items() if r.urls}
            for (ns, name), s in self._serving.items()
        }

    def _stop(self, rev: Revision) -> None:
        for url in rev.urls.values():
            self.stop_server(url)
        rev.urls.clear()

    # -- one InferenceService --------------------------------------------------------------------
    def reconcile(self, isvc: Mapping[str, Any]) -> bool:
        """Bring servers and status in line with `isvc`; True when something was started, stopped or written."""
        meta, spec = isvc["metadata"], isvc.get("spec") or {}
        key = (meta.get("namespace") or "", meta["name"])
        if meta.get("deletionTimestamp"):
            return self.forget(*key)
        status = isvc.get("status") or {}
        template = template_hash(spec)
        serving = self._serving.get(key) or self._recover(status, meta.get("generation", 1), template)
        self._serving[key] = serving
        latest = serving.revisions[max(serving.revisions)] if serving.revisions else None
        acted = False
        if latest is None or latest.template != template or (not latest.urls and latest.message is None):
            if latest is None or latest.template != template:
                latest = Revision((latest.number + 1) if latest else 1, template)
                serving.revisions[latest.number] = latest
            self._start(isvc, latest)
            acted = True
        canary = (spec.get("predictor") or {}).get("canaryTrafficPercent") if mode_of(isvc) == SERVERLESS else None
        traffic = self._route(serving, latest, canary)
        for number, rev in serving.revisions.items():
            if number not in traffic and number != latest.number and rev.urls:
                self._stop(rev)
                acted = True
        serving.revisions = {n: r for n, r in serving.revisions.items() if n in traffic or n == latest.number}
        new = self._status(isvc, serving, latest, traffic)
        if new == status:
            return acted
        try:
            self.kube.patch(
                API_VERSION,
                PLURAL,
                key[0] or None,
                key[1],
                {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": replace_patch(status, new)},
                subresource="status",
            )
        except ApiError as exc:
            if not (exc.conflict or exc.not_found):  # changed meanwhile: the next step sees the new object
                raise
        return True

    @staticmethod
    def _recover(status: Mapping[str, Any], generation: int, template: str) -> Serving:
        """Revision numbers from the status written before this process (whose servers are gone)."""
        predictor = (status.get("components") or {}).get("predictor") or {}
        serving = Serving(
            rolled=revision_number(predictor.get("latestRolledoutRevision")),
            previous=revision_number(predictor.get("previousRolledoutRevision")),
        )
        created = revision_number(predictor.get("latestCreatedRevision"))
        if created is not None:
            # Reported for this generation: the same revision, to be started again; else the spec
            # changed since, and the next revision is due (an unknown template never matches).
            same = status.get("observedGeneration") == generation
            serving.revisions[created] = Revision(created, template if same else "")
        return serving

    def _start(self, isvc: Mapping[str, Any], rev: Revision) -> None:
        spec, name = isvc.get("spec") or {}, isvc["metadata"]["name"]
        try:
            predictor = spec.get("predictor") or {}
            container = (predictor.get("containers") or [None])[0] or predictor.get("model")
            if not container:
                raise ServerFailed("spec.predictor has neither containers nor model")
            rev.urls["predictor"] = self.start_server(dict(isvc), "predictor", dict(container))
            transformer = (spec.get("transformer") or {}).get("containers") or []
            if transformer:
                host = urlsplit(rev.urls["predictor"]).netloc
                args = [*(transformer[0].get("args") or []), "--model_name", name, "--predictor_host", host]
                rev.urls["transformer"] = self.start_server(dict(isvc), "transformer", {**transformer[0], "args": args})
            rev.message = None
        except (ServerFailed, OSError) as exc:
            self._stop(rev)
            rev.message = f'Revision "{revision_name(name, rev.number)}" failed with message: {exc}'

    @staticmethod
    def _route(serving: Serving, latest: Revision, canary: int | None) -> dict[int, int]:
        """Revision number -> percent; moves `rolled`/`previous` as KServe does."""
        old = serving.rolled if serving.rolled in serving.revisions else None
        if latest.message is not None:  # a failed revision takes no traffic: the last good one keeps it
            return {old: 100} if old is not None else {}
        if canary is not None and canary < 100 and old is not None and old != latest.number:
            return {latest.number: int(canary), old: 100 - int(canary)}
        if serving.rolled != latest.number:
            serving.previous, serving.rolled = serving.rolled, latest.number
        return {latest.number: 100}

    def _status(self, isvc: Mapping[str, Any], serving: Serving, latest: Revision, traffic: Mapping[int, int]) -> dict[str, Any]:
        meta, spec = isvc["metadata"], isvc.get("spec") or {}
        name, old = meta["name"], isvc.get("status") or {}
        old_conds = {c["type"]: c for c in old.get("conditions") or []}
        ready = latest.message is None
        components = [c for c in COMPONENTS if spec.get(c)]
        out: dict[str, Any] = {}
        main = max(traffic, key=lambda n: (traffic[n], n)) if traffic else None
        urls = serving.revisions[main].urls if main is not None else {}
        for comp in components:
            part: dict[str, Any] = {"latestCreatedRevision": revision_name(name, latest.number, comp)}
            if ready:
                part["latestReadyRevision"] = part["latestCreatedRevision"]
            else:
                good = [n for n, r in serving.revisions.items() if r.message is None and n != latest.number]
                if good:
                    part["latestReadyRevision"] = revision_name(name, max(good), comp)
            if comp in urls:
                part["url"] = urls[comp]
                part["address"] = {"url": urls[comp]}
            if traffic and mode_of(isvc) == SERVERLESS:
                # Knative's traffic table, as KServe copies it from the Knative Service
                # (TrafficTarget: tag, revisionName, latestRevision, percent); RawDeployment
                # has no Knative route and KServe reports no traffic there.
                # Knative's `latestRevision` routes to the latest *ready* revision.
                head = max(traffic)
                part["traffic"] = [
                    {
                        "tag": "latest" if n == head else "prev",
                        "revisionName": revision_name(name, n, comp),
                        "latestRevision": n == head,
                        "percent": p,
                    }
                    for n, p in sorted(traffic.items(), key=lambda t: -t[0])
                ]
            if serving.rolled is not None:
                part["latestRolledoutRevision"] = revision_name(name, serving.rolled, comp)
            if serving.previous is not None and serving.previous != serving.rolled:
                part["previousRolledoutRevision"] = revision_name(name, serving.previous, comp)
            out[comp] = part
        now = rfc3339(self.clock())

        def condition(type_: str) -> dict[str, Any]:
            prev = old_conds.get(type_) or {}
            value = "True" if ready else "False"
            cond = {
                "type": type_,
                "status": value,
                "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == value else now,
            }
            if not ready:
                cond.update(reason=FAILED_REASON, message=latest.message)
            return cond

        types = ["IngressReady", "PredictorReady", "Ready"] + (["TransformerReady"] if "transformer" in components else [])
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "deploymentMode": mode_of(isvc),
            "conditions": [condition(t) for t in sorted(types)],
            "components": out,
            "modelStatus": {
                "transitionStatus": "UpToDate" if ready else "BlockedByFailedLoad",
                "modelRevisionStates": {
                    "activeModelState": "Loaded" if ready else "FailedToLoad",
                    "targetModelState": "Loaded" if ready else "FailedToLoad",
                },
            },
        }
        entry = urls.get("transformer") or urls.get("predictor")
        if entry:
            status["url"] = entry
            status["address"] = {"url": entry}
        return status
