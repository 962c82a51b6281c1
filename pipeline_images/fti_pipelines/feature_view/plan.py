"""What a feature view reads and where each column of its training data comes from.

A feature view selects columns from feature groups at pinned versions plus a label
(docs/store-layout.md). `resolve_sources` checks every pinned version against the feature
store and records its files, keys, event time and schema; `plan_join` checks the view
against those schemas and decides which columns come from the label's own row (the
*spine*) and which are joined as of the label's time from another group. The join itself
is `join.point_in_time_join`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fti_operator.api import FeatureViewSpec

from ..contract import PipelineError

# Names of internal helper columns; user columns matching this are refused.
_INTERNAL = re.compile(r"^__fti_")


@dataclass(frozen=True)
class GroupSource:
    """One feature-group version as the join needs it: files, keys, event time, schema."""

    name: str
    version: int
    files: tuple[str, ...]
    primary_key: tuple[str, ...]
    event_time: str
    columns: dict[str, str] = field(default_factory=dict)  # column -> dtype (as recorded)

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class JoinPlan:
    """What the join selects: the spine, the joined groups and the output column order."""

    spine: GroupSource
    label: str
    spine_columns: tuple[str, ...]  # feature/extra columns read from the spine row
    joins: tuple[tuple[GroupSource, tuple[str, ...]], ...]  # (group, columns) joined ASOF
    feature_columns: tuple[str, ...]  # model input order (the feature view's order)
    extra_columns: tuple[str, ...]  # carried along, not model inputs (e.g. the sensitive column)

    @property
    def output_columns(self) -> list[str]:
        keys = [*self.spine.primary_key, self.spine.event_time]
        rest = [c for c in (*self.feature_columns, *self.extra_columns) if c not in keys]
        return [*keys, *rest, self.label]

    @property
    def entity_keys(self) -> list[str]:
        """Union of the primary-key columns an online lookup needs (in first-seen order)."""
        keys: list[str] = []
        for group, _ in self.joins:
            keys += [k for k in group.primary_key if k not in keys]
        if self.spine_columns:
            keys += [k for k in self.spine.primary_key if k not in keys]
        return keys or list(self.spine.primary_key)


def _schema_columns(schema: dict[str, Any]) -> dict[str, str]:
    """Accepts {"columns": {name: dtype}} or {"columns": [{"name", "dtype"}]}."""
    cols = schema.get("columns") or {}
    if isinstance(cols, dict):
        return {str(k): str(v) for k, v in cols.items()}
    return {str(c["name"]): str(c.get("dtype", c.get("type", ""))) for c in cols}


def resolve_sources(spec: FeatureViewSpec, feature_store: Any) -> dict[str, GroupSource]:
    """Every feature-group version the view reads, checked against the store.

    Raises PipelineError naming the field when a version is not in the store.
    """
    out: dict[str, GroupSource] = {}
    refs = [("featureView.label.featureGroup", spec.label.feature_group)]
    refs += [(f"featureView.features[{i}].featureGroup", f.feature_group) for i, f in enumerate(spec.features)]
    for path, ref in refs:
        if ref.key in out:
            continue
        versions = list(feature_store.versions(ref.name))
        if ref.version not in versions:
            have = ", ".join(f"v{v}" for v in versions) or "none"
            raise PipelineError(
                "FeatureGroupNotFound",
                f"{path}: feature group {ref.name} version {ref.version} is not in the feature store (versions: {have})",
                featureGroup=ref.name,
                version=ref.version,
            )
        schema = feature_store.schema(ref.name, ref.version)
        files = tuple(feature_store.parquet_files(ref.name, ref.version))
        if not files:
            raise PipelineError(
                "FeatureGroupEmpty",
                f"{path}: feature group {ref.name} version {ref.version} has no data yet",
                featureGroup=ref.name,
                version=ref.version,
            )
        out[ref.key] = GroupSource(
            name=ref.name,
            version=ref.version,
            files=files,
            primary_key=tuple(schema.get("primaryKey") or schema.get("primary_key") or ()),
            event_time=str(schema.get("eventTime") or schema.get("event_time")),
            columns=_schema_columns(schema),
        )
    return out


def plan_join(spec: FeatureViewSpec, sources: dict[str, GroupSource], extra_columns: Iterable[tuple[str, str]] = ()) -> JoinPlan:
    """Check the view against the recorded schemas and decide where each column comes from.

    `extra_columns` are (field path, column) pairs to carry along (e.g. the bias gate's
    sensitive column): taken from the first group of the view that has the column.
    """
    spine = sources[spec.label.feature_group.key]
    _need(spine, spec.label.column, "featureView.label.column")
    if spec.label.column in spec.feature_columns:
        raise PipelineError(
            "InvalidFeatureView", f"featureView.label.column: {spec.label.column!r} is also selected as a feature (label leakage)"
        )
    spine_cols: list[str] = []
    per_group: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for i, sel in enumerate(spec.features):
        group = sources[sel.feature_group.key]
        for col in sel.columns:
            _need(group, col, f"featureView.features[{i}].columns")
            if col in seen and seen[col] != group.key:
                raise PipelineError(
                    "InvalidFeatureView",
                    f"featureView.features[{i}].columns: {col!r} is selected from both {seen[col]} and {group.key}; "
                    "column names must be unique in a feature view",
                )
            seen[col] = group.key
        if group.key == spine.key:
            spine_cols += [c for c in sel.columns if c not in spine_cols]
        else:
            missing = [k for k in group.primary_key if k not in spine.columns]
            if missing:
                raise PipelineError(
                    "InvalidFeatureView",
                    f"featureView.features[{i}].featureGroup: {group.key} is keyed by {list(group.primary_key)}, "
                    f"but the label feature group {spine.key} has no column {', '.join(map(repr, missing))} to join on",
                )
            per_group.setdefault(group.key, [])
            per_group[group.key] += [c for c in sel.columns if c not in per_group[group.key]]

    extras: list[str] = []
    for path, col in extra_columns:
        if col in seen or col in extras or col == spec.label.column:
            continue
        holder = next((g for g in [spine] + [sources[s.feature_group.key] for s in spec.features] if col in g.columns), None)
        if holder is None:
            raise PipelineError(
                "UnknownColumn",
                f"{path}: {col!r} is not a column of any feature group in the view "
                f"({', '.join(g.key for g in sources.values())})",
                column=col,
            )
        extras.append(col)
        if holder.key == spine.key:
            spine_cols.append(col)
        else:
            per_group.setdefault(holder.key, []).append(col)

    for col in [*seen, *extras]:
        if _INTERNAL.match(col):
            raise PipelineError("InvalidFeatureView", f"column {col!r}: names starting with __fti_ are reserved")
    joins = tuple((sources[k], tuple(cols)) for k, cols in per_group.items())
    return JoinPlan(
        spine=spine,
        label=spec.label.column,
        spine_columns=tuple(spine_cols),
        joins=joins,
        feature_columns=tuple(spec.feature_columns),
        extra_columns=tuple(extras),
    )


def _need(group: GroupSource, column: str, path: str) -> None:
    if group.columns and column not in group.columns:
        raise PipelineError(
            "UnknownColumn",
            f"{path}: {column!r} is not a column of feature group {group.name} version {group.version} "
            f"(columns: {', '.join(sorted(group.columns))})",
            column=column,
            featureGroup=group.name,
            version=group.version,
        )


def source_from_files(
    name: str,
    version: int,
    files: Iterable[str],
    primary_key: Iterable[str],
    event_time: str,
    columns: dict[str, str] | None = None,
) -> GroupSource:
    """A GroupSource for Parquet files outside a FeatureStore (benchmarks, tests)."""
    return GroupSource(
        name=name,
        version=version,
        files=tuple(files),
        primary_key=tuple(primary_key),
        event_time=event_time,
        columns=dict(columns or {}),
    )


__all__ = ["GroupSource", "JoinPlan", "plan_join", "resolve_sources", "source_from_files"]
