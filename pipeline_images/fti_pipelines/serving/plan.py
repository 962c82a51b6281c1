"""The lookup plan: from a model card to "which store reads fill which column".

Computed once at load time from `model.json` (the feature view the model was trained
on) and the online settings, so the request path only indexes precomputed lists:
the model's input columns in feature-view order, per feature group the columns to
read and their positions, the entity keys to expect, and the type each caller-sent
value must have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ServingConfig

# dtype families of the card's inputSchema, for request validation.
NUMBER, STRING, BOOL, ANY = "number", "string", "bool", "any"


def dtype_kind(dtype: str | None) -> str:
    text = (dtype or "").lower()
    if text.startswith(("int", "uint", "float", "double", "decimal")) or text in ("number", "numeric"):
        return NUMBER
    if text.startswith(("bool",)):
        return BOOL
    if text.startswith(("object", "str", "string", "category", "utf8", "large_string")):
        return STRING
    return ANY


def integer_kind(dtype: str | None) -> bool:
    return (dtype or "").lower().startswith(("int", "uint"))


@dataclass(frozen=True)
class GroupPlan:
    """One feature group read: key columns, and (column, position in the row) pairs."""

    name: str
    version: int
    primary_key: tuple[str, ...]
    event_time: str | None
    columns: tuple[str, ...]  # looked-up columns, in store order
    positions: tuple[int, ...]  # their positions in the model's input row

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class LookupPlan:
    columns: tuple[str, ...]  # model input columns, feature-view order
    request_features: tuple[tuple[str, int], ...]  # (column, position) sent by the caller
    groups: tuple[GroupPlan, ...]  # only groups with at least one looked-up column
    entity_keys: tuple[str, ...]  # keys the caller must send
    kinds: Mapping[str, str] = field(default_factory=dict)  # column/key -> NUMBER|STRING|BOOL|ANY
    integer_keys: frozenset[str] = frozenset()
    numeric_positions: tuple[int, ...] = ()  # positions where a stored null becomes NaN

    @property
    def width(self) -> int:
        return len(self.columns)


class PlanError(Exception):
    """The card and the spec cannot be served together: (reason, message)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def build_plan(card: Mapping[str, Any], config: ServingConfig, key_dtypes: Mapping[str, str] | None = None) -> LookupPlan:
    """Derive the plan; PlanError when the card is unusable with this spec."""
    view = card.get("featureView") or {}
    features = view.get("features") or []
    columns = list(view.get("columns") or [c for f in features for c in f.get("columns", [])])
    if not columns:
        raise PlanError("InvalidModelCard", "model.json featureView.columns is empty: the model's input order is unknown")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise PlanError("InvalidModelCard", f"model.json featureView.columns repeats {', '.join(dupes)}")
    position = {c: i for i, c in enumerate(columns)}
    requested = list(config.online.request_features)
    unknown = [c for c in requested if c not in position]
    if unknown:
        raise PlanError(
            "RequestFeatureNotInView",
            f"spec.online.requestFeatures {unknown} are not inputs of model {config.model_name} "
            f"v{config.model_version} (inputs: {columns})",
        )
    sent = set(requested)
    groups: list[GroupPlan] = []
    entity_keys: list[str] = []
    covered = set(sent)
    for i, feat in enumerate(features):
        ref = feat.get("featureGroup") or {}
        name, version = ref.get("name"), ref.get("version")
        pk = tuple(feat.get("primaryKey") or ())
        if not name or not isinstance(version, int):
            raise PlanError("InvalidModelCard", f"model.json featureView.features[{i}].featureGroup needs name and version")
        cols = tuple(c for c in feat.get("columns", []) if c not in sent)
        covered.update(feat.get("columns", []))
        if not cols:
            continue
        if not pk:
            raise PlanError("InvalidModelCard", f"model.json featureView.features[{i}] ({name} v{version}) has no primaryKey")
        missing = [c for c in cols if c not in position]
        if missing:
            raise PlanError(
                "InvalidModelCard", f"model.json featureView.features[{i}] columns {missing} are not in featureView.columns"
            )
        groups.append(GroupPlan(name, version, pk, feat.get("eventTime"), cols, tuple(position[c] for c in cols)))
        entity_keys.extend(k for k in pk if k not in entity_keys)
    orphans = [c for c in columns if c not in covered]
    if orphans:
        raise PlanError("InvalidModelCard", f"model inputs {orphans} come from no feature group and are not request features")
    for k in card.get("entityKeys") or []:
        if k not in entity_keys and any(k in g.primary_key for g in groups):
            entity_keys.append(k)
    schema = {s.get("name"): s.get("dtype") for s in card.get("inputSchema") or [] if isinstance(s, Mapping)}
    schema.update({k: v for k, v in (key_dtypes or {}).items() if k not in schema})
    kinds = {c: dtype_kind(schema.get(c)) for c in list(columns) + entity_keys}
    for k in entity_keys:  # a key is looked up by equality: only numbers and strings make sense
        if kinds[k] not in (NUMBER, STRING):
            kinds[k] = ANY
    return LookupPlan(
        columns=tuple(columns),
        request_features=tuple((c, position[c]) for c in requested),
        groups=tuple(groups),
        entity_keys=tuple(entity_keys),
        kinds=kinds,
        integer_keys=frozenset(k for k in entity_keys if integer_kind(schema.get(k))),
        numeric_positions=tuple(position[c] for c in columns if kinds[c] == NUMBER),
    )
