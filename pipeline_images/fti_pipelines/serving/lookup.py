"""Online feature lookup: request instances -> feature rows in the model's column order.

The request path is deliberately plain Python over precomputed plans (see plan.py):
validate each instance, read the online store (one `entity_reader` call covering every
feature group per instance), fill preallocated rows by position.
No pandas per request. An unknown entity is rejected (404 naming the key) or, when
the spec says `missingEntity: defaults`, served with the declared defaults and
flagged per instance — never silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from itertools import product
from math import prod
from operator import itemgetter
from typing import Any, NamedTuple

from ..store.online import CompleteReader, EntityRead, EntityReader
from .errors import bad_field, too_large, unknown_entity
from .metrics import PENDING_CAP, RevisionMetrics
from .plan import ANY, LookupPlan
from .values import FAST_TYPES, check_value, event_time_seconds, type_name

__all__ = ["FeatureLookup", "LookupResult", "check_value", "entity_reads", "event_time_seconds", "fetch_columns"]

NAN = float("nan")
# Instances between two checks of the buffered histograms (metrics.py): an instance adds at
# most one value to each series, so none holds more than PENDING_CAP + SETTLE_EVERY values.
SETTLE_EVERY = PENDING_CAP // 4


class LookupResult(NamedTuple):
    """A tuple, so the one-instance path builds it in one C call (`_new_result`)."""

    rows: list[list[Any]]  # one row per instance, model input order
    defaulted: list[tuple[str, ...]]  # per instance: the columns filled with defaults for a missing entity
    keys: list[dict[str, Any]]  # per instance: its entity keys (for the prediction log)

    @property
    def defaults_used(self) -> list[bool]:
        """Per instance: True when a missing entity was filled with defaults."""
        return [bool(d) for d in self.defaulted]


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
    (one SQLite statement, one Redis round trip). A one-instance request of the usual
    shape (one entity key, values of the expected exact types, the entity in every
    group) takes a path specialised when the lookup is built (`_one_instance`): the same
    checks, reads and metrics in the fewest Python steps; anything else, errors and
    defaults included, goes the general way.
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
        complete_reader: CompleteReader | None = None,
        specialise: bool = True,
    ):
        """`reader` / `complete_reader`: the store's readers of the plan's reads (the store
        is asked for them on first use when not given). `specialise=False` keeps every
        request on the general path (the reference the specialised path is tested against)."""
        self.plan = plan
        self.store = store
        self.missing_entity = missing_entity
        self.defaults = dict(defaults or {})
        self.max_instances = max_instances
        self.metrics = metrics
        self._width = plan.width
        # (field, kind, integer, types accepted as they are) for the caller-sent fields.
        self._key_checks = tuple(
            (k, kind, integer, FAST_TYPES.get((kind, integer), frozenset()))
            for k in plan.entity_keys
            for kind, integer in [(plan.kinds.get(k, ANY), k in plan.integer_keys)]
        )
        self._request_checks = tuple(
            (c, pos, kind, FAST_TYPES.get((kind, False), frozenset()))
            for c, pos in plan.request_features
            for kind in [plan.kinds.get(c, ANY)]
        )
        # The entity reader's flat answer, per group: presence slot, then fetch_columns(g).
        self._reads = entity_reads(plan)
        entity, at = [], 0
        for g, r in zip(plan.groups, self._reads, strict=True):
            cols = fetch_columns(g)
            placed = tuple((at + 1 + cols.index(c), pos) for c, pos in zip(g.columns, g.positions, strict=True))
            default_values = tuple(self.defaults.get(c) for c in g.columns)
            observe_age = metrics.age[g.label].observe if metrics is not None and g.event_time else None
            seen_at = at + 1 + cols.index(g.event_time) if g.event_time else None
            entity.append((g, at, placed, default_values, observe_age, seen_at, bool(r.micros)))
            at += 1 + len(cols)
        self._entity_groups = tuple(entity)
        self._read = reader
        self._complete = complete_reader
        # A request feature is never None (check_value refuses null): only stored values can be.
        sent = {pos for _, pos in plan.request_features}
        self._numeric = tuple(pos for pos in plan.numeric_positions if pos not in sent)
        # Bound once: the request path observes without attribute lookups, and checks the
        # buffered series' size every SETTLE_EVERY instances rather than on every request.
        self._observe_lookup = metrics.lookup.observe if metrics is not None else None
        self._until_settle = SETTLE_EVERY
        self._one = self._one_instance() if specialise else None

    def validate(self, instances: Any, field: str = "instances") -> Sequence[Mapping[str, Any]]:
        if not isinstance(instances, list):
            raise bad_field(field, f"expected a list of objects, got {type_name(instances)}")
        if not instances:
            raise bad_field(field, "is empty: send at least one instance")
        if len(instances) > self.max_instances:
            raise too_large(field, f"{len(instances)} instances exceed the limit of {self.max_instances} per request")
        return instances

    def lookup(self, instances: Sequence[Mapping[str, Any]], field: str = "instances") -> LookupResult:
        """Validate, read the online store, and build rows. Raises RequestError (4xx)."""
        one = self._one
        if one is not None and len(instances) == 1:  # the online case
            result = one(instances[0], field)
            if result is not None:
                return result
        started = time.perf_counter()
        n = len(instances)
        rows = [[None] * self._width for _ in range(n)]
        # Every instance is checked before any read, so a malformed one is a 400 at no store cost.
        keys_by_instance = [self._checked(inst, i, rows[i], field) for i, inst in enumerate(instances)]
        # One entity read per instance over every group (one prepared statement / one Redis
        # round trip each): cheaper than a batched read per group, which decodes generic
        # rows and parses event times (bench/RESULTS.md, multi-instance requests).
        if self._entity_groups:
            read = self.reader()
            defaulted = [self._place(read(keys), keys, rows[i], field, i) for i, keys in enumerate(keys_by_instance)]
        else:
            defaulted = [()] * n
        return self._finish(rows, defaulted, keys_by_instance, started)

    def reader(self) -> EntityReader:
        """The entity reader, built on first use: a revision that is not ready has nothing to read yet."""
        read = self._read
        if read is None:
            read = self._read = self.store.entity_reader(self._reads)
        return read

    def complete_reader(self) -> CompleteReader | None:
        """The complete reader given, else the store's (`OnlineStore.complete_reader`); None if it has none."""
        return self._complete if self._complete is not None else self.store.complete_reader(self._reads)

    def _finish(
        self, rows: list[list[Any]], defaulted: list[tuple[str, ...]], keys: list[dict[str, Any]], started: float
    ) -> LookupResult:
        """Stored nulls in numeric columns as NaN, the latency observed: the result."""
        for row in rows:  # stored nulls in numeric columns reach the model as NaN, not None
            if None in row:
                for pos in self._numeric:
                    if row[pos] is None:
                        row[pos] = NAN
        observe = self._observe_lookup
        if observe is not None:
            observe(time.perf_counter() - started)
            self._observed(len(rows))
        return LookupResult(rows, defaulted, keys)

    def _observed(self, n: int) -> None:
        """Count n instances observed; every SETTLE_EVERY, fold the series that grew too long."""
        self._until_settle -= n
        if self._until_settle <= 0:
            self._settle()

    def _settle(self) -> None:
        self._until_settle = SETTLE_EVERY
        assert self.metrics is not None
        self.metrics.settle()

    def _checked(self, inst: Any, i: int, row: list[Any], field: str) -> dict[str, Any]:
        """The instance's entity keys; its request features go into `row`. RequestError (400) if malformed."""
        if not isinstance(inst, dict):
            raise bad_field(
                f"{field}[{i}]",
                f"expected an object with {list(self.plan.entity_keys)} and "
                f"{[c for c, _ in self.plan.request_features]}, got {type_name(inst)}",
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

    def _place(self, flat: Sequence[Any], keys: dict[str, Any], row: list[Any], field: str, i: int) -> tuple[str, ...]:
        """Fill `row` from one entity read over every group; the columns defaults filled (a missing entity)."""
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

    def _one_instance(self) -> Callable[[Any, str], LookupResult | None] | None:
        """The one-instance lookup specialised for this plan, or None when the plan's shape has none.

        The shape: one entity key and at least one feature group. Built here once: one
        C-level pick of the sent values, their exact types checked as one tuple against
        every accepted combination, the row assembled by one C-level pick from the sent
        values and the reader's answer. It answers None, before reading the store, for
        anything the general path must judge (not a dict, a missing field, any other type,
        a non-finite float): that path then answers or raises as always. An entity
        missing from a group goes to the general path's placement (`_one_missing`), so a
        404 and the defaults behave (and count) exactly as there.
        """
        if len(self._key_checks) != 1 or not self._entity_groups:
            return None
        ((key, _, _, key_types),) = self._key_checks
        names = (key, *(c for c, _, _, _ in self._request_checks))
        accepted = [key_types, *(fast for _, _, _, fast in self._request_checks)]
        if not all(accepted) or prod(len(a) for a in accepted) > 256:  # e.g. several ANY-kind fields
            return None
        allowed = frozenset(product(*accepted))
        floats = tuple(i for i, a in enumerate(accepted) if float in a)  # need the finiteness test
        if None in self._one_sources(len(names), complete=False):
            return None
        pick: Callable[[Mapping[str, Any]], tuple] = itemgetter(*names) if len(names) > 1 else (lambda inst: (inst[key],))
        new_result = tuple.__new__
        numeric = self._numeric
        observe_lookup = self._observe_lookup
        clock, wall = time.perf_counter, time.time
        # Set on the first call (the readers are built on first use): read(key value) -> the
        # answer, or None for an entity missing from a group; the positions in that answer.
        read: Callable[[Any], Sequence[Any] | None] | None = None
        order: Callable[[tuple], tuple] = tuple
        presents: tuple[int, ...] = ()
        ages: tuple[tuple[int, Callable[[float], None]], ...] = ()
        parsed_ages: tuple[tuple[int, Callable[[float], None]], ...] = ()

        def one(inst: Any, field: str) -> LookupResult | None:
            nonlocal read, order, presents, ages, parsed_ages
            started = clock()
            if type(inst) is not dict:
                return None
            try:
                values = pick(inst)
            except KeyError:
                return None
            types = tuple(map(type, values))
            if types not in allowed:
                return None
            for i in floats:
                if types[i] is float and values[i] - values[i] != 0.0:  # inf - inf and NaN are not 0
                    return None
            keys = {key: values[0]}
            if read is None:
                # `read` stored last: another thread that sees it set sees the positions too
                order, presents, ages, parsed_ages, read = self._one_reader(key, len(names))
            flat = read(values[0])
            if flat is None:  # the complete reader: no row in some group
                return self._one_missing(inst, keys, None, field, started)
            for present in presents:  # the entity reader: its presence slots
                if flat[present] is None:
                    return self._one_missing(inst, keys, flat, field, started)
            row = list(order((*values, *flat)))
            if None in row:  # stored nulls in numeric columns reach the model as NaN, not None
                for pos in numeric:
                    if row[pos] is None:
                        row[pos] = NAN
            if ages or parsed_ages:
                now = wall()
                for seen_at, observe_age in ages:
                    seen = flat[seen_at]
                    if seen is not None:
                        age = now - seen * 1e-6
                        observe_age(age if age > 0.0 else 0.0)  # noqa: FURB136 - max(0.0, age) without a call
                for seen_at, observe_age in parsed_ages:
                    seen = event_time_seconds(flat[seen_at])
                    if seen is not None:
                        age = now - seen
                        observe_age(age if age > 0.0 else 0.0)  # noqa: FURB136 - max(0.0, age) without a call
            if observe_lookup is not None:
                observe_lookup(clock() - started)
                self._until_settle -= 1  # _observed(1), inline
                if self._until_settle <= 0:
                    self._settle()
            return new_result(LookupResult, ([row], [()], [keys]))

        return one

    def _one_sources(self, sent: int, *, complete: bool) -> list[int | None]:
        """Per row position, its index into (sent values..., the reader's answer...).

        The entity reader's answer has a presence slot before each group's columns; the
        complete reader's has none (`complete`)."""
        source: list[int | None] = [None] * self._width
        for i, (_, pos, _, _) in enumerate(self._request_checks, start=1):
            source[pos] = i
        for n, (_, _, placed, _, _, _, _) in enumerate(self._entity_groups, start=1):
            for at, pos in placed:
                source[pos] = sent + at - (n if complete else 0)
        return source

    def _one_reader(self, key: str, sent: int) -> tuple:
        """(order, presence slots, ages, parsed ages, read) of the one-instance path.

        The complete reader when the store offers one (one SQLite row of exactly the
        columns read, no presence slots: bench/RESULTS.md), else the entity reader."""
        complete = self.complete_reader()
        source = self._one_sources(sent, complete=complete is not None)
        at_of = [s for s in source if s is not None]
        order = itemgetter(*at_of) if len(at_of) > 1 else (lambda src: (src[at_of[0]],))
        ages: list[list[tuple[int, Any]]] = [[], []]  # epoch microseconds (the usual case), others
        for n, (_, _, _, _, observe, seen_at, micros) in enumerate(self._entity_groups, start=1):
            if observe is not None and seen_at is not None:
                ages[0 if micros else 1].append((seen_at - (n if complete is not None else 0), observe))
        if complete is not None:
            return order, (), tuple(ages[0]), tuple(ages[1]), complete
        read_entity = self.reader()

        def read(value: Any) -> Sequence[Any]:
            return read_entity({key: value})

        presents = tuple(present for _, present, _, _, _, _, _ in self._entity_groups)
        return order, presents, tuple(ages[0]), tuple(ages[1]), read

    def _one_missing(
        self, inst: dict[str, Any], keys: dict[str, Any], flat: Sequence[Any] | None, field: str, started: float
    ) -> LookupResult:
        """The specialised path's entity missing from a group: the general placement of the
        entity reader's answer (read here after a complete reader found no row)."""
        if flat is None:
            flat = self.reader()(keys)
        row: list[Any] = [None] * self._width
        self._checked(inst, 0, row, field)  # the values passed already: this only places them
        return self._finish([row], [self._place(flat, keys, row, field, 0)], [keys], started)
