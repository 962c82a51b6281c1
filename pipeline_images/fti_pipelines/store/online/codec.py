"""Value and key encoding shared by every online-store backend.

Why one module: a backend stores values in its own representation, but what a logical
kind is (int, float, bool, string, timestamp, date), how a column becomes storage values
and how a stored value or a request's key part comes back must be the same for all of
them, so a lookup answers alike whichever backend serves it (docs/stores.md).

Reads return plain Python scalars (int, float, str, bool, None); timestamps, the event
time included, come back as RFC 3339 strings (UTC, `Z`), so a result is JSON-ready.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Logical kinds the online backends store; everything else is refused with the column named.
KINDS = ("int", "float", "bool", "string", "timestamp", "date")


def kind_of(dtype: pa.DataType, column: str) -> str:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    raise ValueError(
        f"column {column!r} has type {dtype}, which the online store cannot hold "
        f"(supported: integers, floats, booleans, strings, timestamps, dates)"
    )


def quote(name: str) -> str:
    """An SQL identifier, quoted (DuckDB and SQLite share the syntax)."""
    return '"' + str(name).replace('"', '""') + '"'


def column_kinds(table: pa.Table, stored: dict[str, str] | None = None) -> dict[str, str]:
    """Logical kind per column; an all-null column (Arrow type null) takes the stored kind."""
    stored = stored or {}
    return {f.name: (stored.get(f.name, "string") if pa.types.is_null(f.type) else kind_of(f.type, f.name)) for f in table.schema}


def storage_values(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    """The backend representation: timestamps as int64 microseconds UTC, dates as ISO text."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_null(column.type):
        return column.cast(
            {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "timestamp": pa.int64()}.get(kind, pa.string())
        )
    if kind == "timestamp":
        unit_ts = pa.timestamp("us", tz=column.type.tz)
        # event times are stored in nanoseconds offline; online keeps microseconds (truncated)
        return pc.cast(column, unit_ts, safe=False).cast(pa.int64())
    if kind == "date":
        return column.cast(pa.string())
    if kind == "float":
        column = column.cast(pa.float64())
        return pc.if_else(pc.is_nan(column), pa.scalar(None, pa.float64()), column)  # NaN is a missing value
    if kind == "string":
        return column.cast(pa.string())
    return column


def to_rfc3339(micros: int | None) -> str | None:
    if micros is None:
        return None
    ts = (
        datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
        if abs(micros) < 2**52
        else datetime(1970, 1, 1, tzinfo=UTC) + pd.Timedelta(microseconds=micros).to_pytimedelta()
    )
    return ts.isoformat().replace("+00:00", "Z")


def decode(value: Any, kind: str) -> Any:
    """A stored value back to a plain Python scalar of its logical kind."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value in (1, True, "1", "True", "true")
    if kind == "timestamp":
        return to_rfc3339(int(value))
    return str(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def rfc3339_micros(text: str | None) -> int | None:
    """Epoch microseconds of an RFC 3339 string as `to_rfc3339` writes it (its exact inverse)."""
    if text is None:
        return None
    return (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND


def encode_key_part(value: Any, kind: str, column: str) -> Any:
    """A lookup key part cast to the stored key column's kind (a request may send "42" for 42)."""
    try:
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return bool(value)
        if kind == "timestamp":
            ts = pd.Timestamp(value)
            return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).value // 1000
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key column {column!r} expects a {kind}, got {value!r}") from exc


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
