"""Online feature lookup: request instances -> feature rows in the model's column order.

The request path is deliberately plain Python over precomputed plans (see plan.py):
validate each instance, one online-store read per feature group per request
(`get` for one instance, `get_many` for several), fill preallocated rows by position.
No pandas per request. An unknown entity is rejected (404 naming the key) or, when
the spec says `missingEntity: defaults`, served with the declared defaults and
flagged per instance — never silently.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from .errors import bad_field, too_large, unknown_entity
from .metrics import RevisionMetrics
from .plan import ANY, BOOL, NUMBER, STRING, LookupPlan

_KIND_TEXT = {NUMBER: "a number", STRING: "a string", BOOL: "a boolean"}


@dataclass
class LookupResult:
    rows: list[list[Any]]        # one row per instance, model input order
    defaults_used: list[bool]    # per instance: True when a missing entity was filled with defaults


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_value(value: Any, kind: str, field: str, integer: bool = False) -> Any:
    """The value if it has the expected kind, else a 400 naming `field`."""
    if value is None:
        raise bad_field(field, "is required (got null)")
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_field(field, f"expected {'an integer' if integer else 'a number'}, got {_type_name(value)}")
        if integer and not isinstance(value, int):
            raise bad_field(field, f"expected an integer, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad_field(field, f"expected a finite number, got {value!r}")
        return value
    if kind == STRING:
        if not isinstance(value, str):
            raise bad_field(field, f"expected a string, got {_type_name(value)}")
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise bad_field(field, f"expected a boolean, got {_type_name(value)}")
        return value
    if isinstance(value, (dict, list)):
        raise bad_field(field, f"expected a scalar, got {_type_name(value)}")
    return value


def event_time_seconds(value: Any) -> float | None:
    """Epoch seconds of a stored event time (datetime, ISO string or epoch number)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        # Heuristic by magnitude: seconds, milliseconds, microseconds, nanoseconds since 1970.
        for scale in (1.0, 1e3, 1e6, 1e9):
            if v < 1e11 * scale:
                return v / scale
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc).timestamp()
    ts = getattr(value, "timestamp", None)  # pandas.Timestamp and friends
    return ts() if callable(ts) else None


def fetch_columns(group: Any) -> list[str]:
    """The looked-up columns plus the event time (for the freshness metric)."""
    cols = list(group.columns)
    if group.event_time and group.event_time not in cols:
        cols.append(group.event_time)
    return cols


class FeatureLookup:
    """Turns validated instances into rows; one object per served revision."""

    def __init__(self, plan: LookupPlan, store: Any, *, missing_entity: str = "reject",
                 defaults: Mapping[str, Any] | None = None, max_instances: int = 1000,
                 metrics: RevisionMetrics | None = None, readers: Mapping[str, Any] | None = None):
        self.plan = plan
        self.store = store
        self.missing_entity = missing_entity
        self.defaults = dict(defaults or {})
        self.max_instances = max_instances
        self.metrics = metrics
        self._width = plan.width
        # (key, kind, integer) checks for the caller-sent fields, precomputed once.
        self._key_checks = tuple((k, plan.kinds.get(k, ANY), k in plan.integer_keys) for k in plan.entity_keys)
        self._request_checks = tuple((c, pos, plan.kinds.get(c, ANY)) for c, pos in plan.request_features)
        self._group_reads = tuple(
            (g, tuple(g.primary_key), fetch_columns(g), tuple(zip(g.columns, g.positions)),
             tuple(self.defaults.get(c) for c in g.columns), (readers or {}).get(g.label),
             metrics.age[g.label].observe if metrics is not None and g.event_time else None, g.event_time)
            for g in plan.groups
        )
        self._numeric = plan.numeric_positions

    def validate(self, instances: Any, field: str = "instances") -> Sequence[Mapping[str, Any]]:
        if not isinstance(instances, list):
            raise bad_field(field, f"expected a list of objects, got {_type_name(instances)}")
        if not instances:
            raise bad_field(field, "is empty: send at least one instance")
        if len(instances) > self.max_instances:
            raise too_large(field, f"{len(instances)} instances exceed the limit of {self.max_instances} per request")
        return instances

    def lookup(self, instances: Sequence[Mapping[str, Any]], field: str = "instances") -> LookupResult:
        """Validate, read the online store, and build rows. Raises RequestError (4xx)."""
        started = time.perf_counter()
        n = len(instances)
        rows = [[None] * self._width for _ in range(n)]
        keys_by_instance: list[dict[str, Any]] = []
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict):
                raise bad_field(f"{field}[{i}]", f"expected an object with {list(self.plan.entity_keys)} and "
                                                 f"{[c for c, _ in self.plan.request_features]}, got {_type_name(inst)}")
            keys = {}
            for key, kind, integer in self._key_checks:
                if key not in inst:
                    raise bad_field(f"{field}[{i}].{key}", "entity key is missing")
                keys[key] = check_value(inst[key], kind, f"{field}[{i}].{key}", integer)
            keys_by_instance.append(keys)
            row = rows[i]
            for col, pos, kind in self._request_checks:
                if col not in inst:
                    raise bad_field(f"{field}[{i}].{col}", "request feature is missing")
                row[pos] = check_value(inst[col], kind, f"{field}[{i}].{col}")
        defaults_used = [False] * n
        now = time.time()
        for group, pk, cols, placed, default_values, read, observe_age, event_time in self._group_reads:
            key_tuples = [tuple(k[c] for c in pk) for k in keys_by_instance]
            if n == 1:
                # One prepared keyed SELECT (SQLite) or the store's get (other backends).
                found = [read(key_tuples[0]) if read is not None else
                         self.store.get(group.name, group.version, key_tuples[0], cols)]
            else:
                found = self.store.get_many(group.name, group.version, key_tuples, cols)
            for i, values in enumerate(found):
                row = rows[i]
                if values is None:
                    self._missing(group, i, keys_by_instance[i], field)
                    defaults_used[i] = True
                    for (_, pos), value in zip(placed, default_values):
                        row[pos] = value
                    continue
                for col, pos in placed:
                    row[pos] = values.get(col)
                if observe_age is not None:
                    seen = event_time_seconds(values.get(event_time))
                    if seen is not None:
                        observe_age(max(0.0, now - seen))
        nan = float("nan")
        for row in rows:  # stored nulls in numeric columns reach the model as NaN, not None
            for pos in self._numeric:
                if row[pos] is None:
                    row[pos] = nan
        if self.metrics is not None:
            self.metrics.lookup.observe(time.perf_counter() - started)
        return LookupResult(rows, defaults_used)

    def _missing(self, group: Any, i: int, keys: Mapping[str, Any], field: str) -> None:
        key_text = ", ".join(f"{k}={keys[k]!r}" for k in group.primary_key)
        if self.missing_entity != "defaults":
            if self.metrics is not None:
                self.metrics.rejected[group.label].inc()
            raise unknown_entity(f"{field}[{i}].{group.primary_key[0]}",
                                 f"unknown entity {key_text}: no features in {group.name} v{group.version}")
        if self.metrics is not None:
            self.metrics.defaulted[group.label].inc()
