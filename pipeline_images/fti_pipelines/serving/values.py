"""What a served instance may hold, and what a stored event time means.

The request path's checks of caller-sent values (`check_value` is the one authority;
FAST_TYPES are the exact types it accepts as they are, so the hot path can skip the
call for them) and the parsing of event times for the feature-age metric.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from .errors import bad_field
from .plan import ANY, BOOL, NUMBER, STRING

# Exact types check_value accepts as they are, for each (kind, integer): a value of one of
# them skips the call (floats still need the finiteness test, done inline). Anything
# else, subclasses included, goes through check_value, which stays the one authority.
FAST_TYPES = {
    (NUMBER, True): frozenset({int}),
    (NUMBER, False): frozenset({int, float}),
    (STRING, False): frozenset({str}),
    (BOOL, False): frozenset({bool}),
    (ANY, False): frozenset({int, float, str, bool}),
}


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_value(value: Any, kind: str, field: str, integer: bool = False) -> Any:
    """The value if it has the expected kind, else a 400 naming `field`."""
    if value is None:
        raise bad_field(field, "is required (got null)")
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad_field(field, f"expected {'an integer' if integer else 'a number'}, got {type_name(value)}")
        if integer and not isinstance(value, int):
            raise bad_field(field, f"expected an integer, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad_field(field, f"expected a finite number, got {value!r}")
        return value
    if kind == STRING:
        if not isinstance(value, str):
            raise bad_field(field, f"expected a string, got {type_name(value)}")
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise bad_field(field, f"expected a boolean, got {type_name(value)}")
        return value
    if isinstance(value, (dict, list)):
        raise bad_field(field, f"expected a scalar, got {type_name(value)}")
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
