"""Store access: the Secrets and the data-volume PVC every pipeline pod of a namespace needs.

The operator injects the chart's store settings into the pods it creates in the namespace of
each FeaturePipeline, TrainingPipeline and InferenceService: the Secret
`stores.credentialsSecret` (envFrom), the key of `stores.onlineStoreSecret` (valueFrom) and
the PVC `stores.volumeClaim`. Kubernetes takes them from the pod's own namespace only, and a
pod whose Secret or claim is missing waits in CreateContainerConfigError or Pending with no
word in our status. So before a reconciler renders a child it checks, in the object's
namespace, that each configured object exists (docs/install.md, "Stores"):

- the credentials Secret and the PVC by a metadata-only GET (`Kube.get_metadata`): no Secret
  value is read for them;
- the online-store Secret by a full GET, because only the object says whether it has the key.
  Its values are looked at for the key names only and never kept or logged; the trade-off is
  written down in docs/security.md.

Missing → `StoreAccess=False` (reason `SecretNotFound`, `SecretKeyNotFound` or
`VolumeClaimNotFound`; the message names each missing object, the namespace and the chart
value), `Ready=False` with the same reason, one Warning Event per transition, and no child is
written or removed: children that exist stay as they are (a serving model keeps serving, data
already written stays), and nothing new is created that could only hang. The reconciler asks
to be run again after `config.store_recheck_seconds`, so creating the object is enough for the
resource to proceed; no spec change is needed. Present → `StoreAccess=True`. With nothing
configured there is nothing to check and no condition. A check the API server refuses (the
chart's RBAC not installed) reports `StoreAccess=Unknown` and goes on: the pods will tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import OperatorConfig
from .conditions import condition, merge_conditions
from .context import Context
from .kube import ApiError
from .writes import emit_event, update_status

TYPE = "StoreAccess"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
VOLUME_CLAIM_NOT_FOUND = "VolumeClaimNotFound"
FOUND = "StoreObjectsFound"
FORBIDDEN = "CheckForbidden"
RESTORED = "StoreAccessRestored"


@dataclass(frozen=True)
class Needed:
    """One object pipeline pods reference: `plural` secrets or persistentvolumeclaims; `key` for
    a Secret key reference; `value` the chart value (and environment variable) that names it."""

    plural: str
    name: str
    value: str
    key: str | None = None

    def describe(self) -> str:
        kind = "Secret" if self.plural == "secrets" else "PersistentVolumeClaim"
        return f"{kind} {self.name}" + (f" (key {self.key})" if self.key else "")


@dataclass(frozen=True)
class Missing:
    needed: Needed
    reason: str  # SecretNotFound | SecretKeyNotFound | VolumeClaimNotFound


def needed(config: OperatorConfig) -> list[Needed]:
    """What the configuration makes every pipeline pod reference (pure), in the order checked."""
    out = []
    if config.store_credentials_secret:
        out.append(Needed("secrets", config.store_credentials_secret, "stores.credentialsSecret (FTI_STORE_CREDENTIALS_SECRET)"))
    if config.online_store_secret is not None:
        ref = config.online_store_secret
        out.append(Needed("secrets", ref.name, "stores.onlineStoreSecret (FTI_ONLINE_STORE_SECRET)", ref.key))
    if config.store_volume_claim:
        out.append(Needed("persistentvolumeclaims", config.store_volume_claim, "stores.volumeClaim (FTI_STORE_VOLUME_CLAIM)"))
    return out


def has_key(secret: Mapping[str, Any], key: str) -> bool:
    """Whether a Secret (as the API server returns it: `data`; MemKube may hold `stringData`) has `key`."""
    return key in (secret.get("data") or {}) or key in (secret.get("stringData") or {})


def access_condition(namespace: str, checked: Sequence[Needed], missing: Sequence[Missing]) -> dict[str, Any]:
    """StoreAccess from what was checked and what is missing (pure)."""
    if not missing:
        what = ", ".join(n.describe() for n in checked)
        return condition(TYPE, True, FOUND, f"{what} exist in namespace {namespace}")
    parts = []
    for m in missing:
        n = m.needed
        if m.reason == SECRET_KEY_NOT_FOUND:
            parts.append(f"Secret {n.name} in namespace {namespace} has no key {n.key} (chart value {n.value})")
        else:
            parts.append(f"{n.describe()} not found in namespace {namespace} (chart value {n.value})")
    message = (
        "; ".join(parts) + ": pipeline pods of this namespace reference it; create it here (docs/install.md) — "
        "nothing is started until it exists"
    )
    return condition(TYPE, False, missing[0].reason, message[:1024])


def blocked_status(body: Mapping[str, Any], access: Mapping[str, Any]) -> dict[str, Any]:
    """Ready=False and StoreAccess=False for this generation; the other conditions stay (pure)."""
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    others = [c for c in old.get("conditions") or [] if c.get("type") not in ("Ready", TYPE)]
    ready = condition("Ready", False, access["reason"], access["message"])
    conditions = merge_conditions(old.get("conditions"), [ready, access], generation)
    return {"observedGeneration": generation, "conditions": conditions + others}


def with_access(status: dict[str, Any], access: Mapping[str, Any] | None, body: Mapping[str, Any]) -> dict[str, Any]:
    """A status computed for `body` with the StoreAccess condition added (dropped when nothing is
    checked), its lastTransitionTime kept from `body`; the reconcilers' compute_status run
    through this so the condition is never lost (pure)."""
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != TYPE]
    if access is not None:
        old = (body.get("status") or {}).get("conditions")
        conditions += merge_conditions(old, [access], body["metadata"].get("generation"))
    return {**status, "conditions": conditions}


def _missing(ctx: Context, namespace: str, n: Needed) -> Missing | None:
    if n.key is None:
        found = ctx.kube.get_metadata("v1", n.plural, namespace, n.name)
        if found is None:
            return Missing(n, SECRET_NOT_FOUND if n.plural == "secrets" else VOLUME_CLAIM_NOT_FOUND)
        return None
    secret = ctx.kube.get("v1", n.plural, namespace, n.name)
    if secret is None:
        return Missing(n, SECRET_NOT_FOUND)
    return None if has_key(secret, n.key) else Missing(n, SECRET_KEY_NOT_FOUND)


def check(ctx: Context, namespace: str) -> dict[str, Any] | None:
    """The StoreAccess condition for `namespace` (reads only), or None when nothing is configured."""
    checked = needed(ctx.config)
    if not checked:
        return None
    missing = []
    try:
        for n in checked:
            if (m := _missing(ctx, namespace, n)) is not None:
                missing.append(m)
    except ApiError as exc:
        if exc.status != 403:
            raise
        message = f"the operator may not read {n.describe()} in namespace {namespace}: {exc.reason}"
        return condition(TYPE, None, FORBIDDEN, message)
    return access_condition(namespace, checked, missing)


def _previous(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == TYPE), {})


def gate(ctx: Context, body: Mapping[str, Any], api_version: str, plural: str) -> tuple[bool, dict[str, Any] | None]:
    """(go on?, the StoreAccess condition to keep in status). When something is missing the
    status says so (written here, with its Event) and the caller stops and requeues."""
    access = check(ctx, body["metadata"]["namespace"])
    before = _previous(body)
    if access is None or access["status"] != "False":
        if access is not None and before.get("status") == "False":
            # Announced with the status write the reconciler makes next; a crash before it
            # only means the next reconcile announces it again.
            emit_event(ctx.kube, body, RESTORED, access["message"])
        return True, access
    written = update_status(ctx.kube, api_version, plural, body, lambda b: blocked_status(b, access))
    if written is not None and (before.get("reason") != access["reason"] or before.get("message") != access["message"]):
        emit_event(ctx.kube, body, access["reason"], access["message"], "Warning")
    return False, access
