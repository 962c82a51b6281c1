"""Online feature lookup: request instances -> feature rows in the model's column order.

The request path is deliberately plain Python over precomputed plans (see plan.py):
validate each instance, read the online store (one `entity_reader` call covering every
feature group per instance), fill preallocated rows by position.
No pandas per request. An unknown entity is rejected (404 naming the key) or, when
the spec says `missingEntity: defaults`, served with the declared defaults and
flagged per instance — never silently.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..store.online import EntityRead, EntityReader
from .errors import bad_field, too_large, unknown_entity
from .metrics import PENDING_CAP, RevisionMetrics
from .plan import ANY, BOOL, NUMBER, STRING, LookupPlan

_KIND_TEXT = {NUMBER: "a number", STRING: "a string", BOOL: "a boolean"}
# Exact types check_value accepts as they are, for each (kind, integer): a value of one of
# them skips the call (floats still need the finiteness test, done inline). Anything
# else, subclasses included, goes through check_value, which stays the one authority.
_FAST_TYPES = {
    (NUMBER, True): frozenset({int}),
    (NUMBER, False): frozenset({int, float}),
    (STRING, False): frozenset({str}),
    (BOOL, False): frozenset({bool}),
    (ANY, False): frozenset({int, float, str, bool}),
}


NAN = float("nan")
# Instances between two checks of the buffered histograms (metrics.py): an instance adds at
# most one value to each series, so none holds more than PENDING_CAP + SETTLE_EVERY values.
SETTLE_EVERY = PENDING_CAP // 4


@dataclass(slots=True)
class LookupResult:
    rows: list[list[Any]]  # one row per instance, model input order
    defaulted: list[tuple[str, ...]]  # per instance: the columns filled with defaults for a missing entity
    keys: list[dict[str, Any]]  # per instance: its entity keys (for the prediction log)

    @property
    def defaults_used(self) -> list[bool]:
        """Per instance: True when a missing entity was filled with defaults."""
        return [bool(d) for d in self.defaulted]


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
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo else parsed.replace(tzinfo=UTC).timestamp()
    ts = getattr(value, "timestamp", None)  # pandas.Timestamp and friends
    return ts() if callable(ts) else None


def fetch_columns(group: Any) -> list[str]:
    """The looked-up columns plus the event time (for the freshness metric)."""
    cols = list(group.columns)
    if group.event_time and group.event_time not in cols:
        cols.append(group.event_time)
    return cols


def entity_reads(plan: LookupPlan) -> list[EntityRead]:
    """What one entity's lookup reads: per group its columns and event time, the event
    time as epoch microseconds (no RFC 3339 parsing per request) unless the model also
    takes it as a feature, where it must stay the string `get` returns."""
    return [
        EntityRead(
            g.name, g.version, tuple(fetch_columns(g)), (g.event_time,) if g.event_time and g.event_time not in g.columns else ()
        )
        for g in plan.groups
    ]


class FeatureLookup:
    """Turns validated instances into rows; one object per served revision.

    Each instance is read with one `entity_reader` call covering every feature group
    (one SQLite statement, one Redis round trip).
    """

    def __init__(
        self,
        plan: LookupPlan,
        store: Any,
        *,
        missing_entity: str = "reject",
        defaults: Mapping[str, Any] | None = None,
        max_instances: int = 1000,
        metrics: RevisionMetrics | None = None,
        reader: EntityReader | None = None,
    ):
        self.plan = plan
        self.store = store
        self.missing_entity = missing_entity
        self.defaults = dict(defaults or {})
        self.max_instances = max_instances
        self.metrics = metrics
        self._width = plan.width
        # (field, kind, integer, types accepted as they are) for the caller-sent fields.
        self._key_checks = tuple(
            (k, kind, integer, _FAST_TYPES.get((kind, integer), frozenset()))
            for k in plan.entity_keys
            for kind, integer in [(plan.kinds.get(k, ANY), k in plan.integer_keys)]
        )
        self._request_checks = tuple(
            (c, pos, kind, _FAST_TYPES.get((kind, False), frozenset()))
            for c, pos in plan.request_features
            for kind in [plan.kinds.get(c, ANY)]
        )
        self._group_reads = tuple(
            (
                g,
                tuple(g.primary_key),
                fetch_columns(g),
                tuple(zip(g.columns, g.positions, strict=True)),
                tuple(self.defaults.get(c) for c in g.columns),
                metrics.age[g.label].observe if metrics is not None and g.event_time else None,
                g.event_time,
            )
            for g in plan.groups
        )
        # The entity reader's flat answer, per group: presence slot, then fetch_columns(g).
        self._reads = entity_reads(plan)
        entity, at = [], 0
        for (g, _, cols, _, default_values, observe_age, event_time), r in zip(self._group_reads, self._reads, strict=True):
            placed = tuple((at + 1 + cols.index(c), pos) for c, pos in zip(g.columns, g.positions, strict=True))
            seen_at = at + 1 + cols.index(event_time) if event_time else None
            entity.append((g, at, placed, default_values, observe_age, seen_at, bool(r.micros)))
            at += 1 + len(cols)
        self._entity_groups = tuple(entity)
        self._read = reader
        # A request feature is never None (check_value refuses null): only stored values can be.
        sent = {pos for _, pos in plan.request_features}
        self._numeric = tuple(pos for pos in plan.numeric_positions if pos not in sent)
        # Bound once: the request path observes without attribute lookups, and checks the
        # buffered series' size every SETTLE_EVERY instances rather than on every request.
        self._observe_lookup = metrics.lookup.observe if metrics is not None else None
        self._until_settle = SETTLE_EVERY

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
        if n == 1 and self._entity_groups:  # the online case, kept to the fewest Python steps
            row: list[Any] = [None] * self._width
            rows = [row]
            keys_by_instance = [self._checked(instances[0], 0, row, field)]
            defaulted = [self._read_entity(keys_by_instance[0], row, field)]
        else:
            rows = [[None] * self._width for _ in range(n)]
            # Every instance is checked before any read, so a malformed one is a 400 at no store cost.
            keys_by_instance = [self._checked(inst, i, rows[i], field) for i, inst in enumerate(instances)]
            # One entity read per instance over every group (one prepared statement / one Redis
            # round trip each): cheaper than a batched read per group, which decodes generic
            # rows and parses event times (bench/RESULTS.md, multi-instance requests).
            defaulted = (
                [self._read_entity(keys, rows[i], field, i) for i, keys in enumerate(keys_by_instance)]
                if self._entity_groups
                else [()] * n
            )
        for row in rows:  # stored nulls in numeric columns reach the model as NaN, not None
            if None in row:
                for pos in self._numeric:
                    if row[pos] is None:
                        row[pos] = NAN
        observe = self._observe_lookup
        if observe is not None:
            observe(time.perf_counter() - started)
            self._until_settle -= n
            if self._until_settle <= 0:
                self._until_settle = SETTLE_EVERY
                assert self.metrics is not None
                self.metrics.settle()
        return LookupResult(rows, defaulted, keys_by_instance)

    def _checked(self, inst: Any, i: int, row: list[Any], field: str) -> dict[str, Any]:
        """The instance's entity keys; its request features go into `row`. RequestError (400) if malformed."""
        if not isinstance(inst, dict):
            raise bad_field(
                f"{field}[{i}]",
                f"expected an object with {list(self.plan.entity_keys)} and "
                f"{[c for c, _ in self.plan.request_features]}, got {_type_name(inst)}",
            )
        keys = {}
        for key, kind, integer, fast in self._key_checks:
            if key not in inst:
                raise bad_field(f"{field}[{i}].{key}", "entity key is missing")
            value = inst[key]
            t = type(value)
            if t not in fast or (t is float and value - value != 0.0):  # inf - inf and NaN are not 0
                value = check_value(value, kind, f"{field}[{i}].{key}", integer)
            keys[key] = value
        for col, pos, kind, fast in self._request_checks:
            if col not in inst:
                raise bad_field(f"{field}[{i}].{col}", "request feature is missing")
            value = inst[col]
            t = type(value)
            if t not in fast or (t is float and value - value != 0.0):
                value = check_value(value, kind, f"{field}[{i}].{col}")
            row[pos] = value
        return keys

    def _read_entity(self, keys: dict[str, Any], row: list[Any], field: str, i: int = 0) -> tuple[str, ...]:
        """Fill `row` from one entity read over every group; the columns defaults filled (a missing entity)."""
        read = self._read
        if read is None:  # built on first use: a revision that is not ready has nothing to read yet
            read = self._read = self.store.entity_reader(self._reads)
        flat = read(keys)
        now = time.time()
        defaulted: tuple[str, ...] = ()
        for group, present, placed, default_values, observe_age, seen_at, micros in self._entity_groups:
            if flat[present] is None:
                self._missing(group, i, keys, field)
                defaulted += group.columns
                for (_, pos), value in zip(placed, default_values, strict=True):
                    row[pos] = value
                continue
            for at, pos in placed:
                row[pos] = flat[at]
            if observe_age is not None and seen_at is not None:  # both come with an event time
                seen = flat[seen_at]
                if seen is not None:
                    seen = seen * 1e-6 if micros else event_time_seconds(seen)
                    if seen is not None:
                        age = now - seen
                        observe_age(max(0.0, age))  # a clock behind the writer's: not negative
        return defaulted

    def _missing(self, group: Any, i: int, keys: Mapping[str, Any], field: str) -> None:
        key_text = ", ".join(f"{k}={keys[k]!r}" for k in group.primary_key)
        if self.missing_entity != "defaults":
            if self.metrics is not None:
                self.metrics.rejected[group.label].inc()
            raise unknown_entity(
                f"{field}[{i}].{group.primary_key[0]}", f"unknown entity {key_text}: no features in {group.name} v{group.version}"
            )
        if self.metrics is not None:
            self.metrics.defaulted[group.label].inc()
