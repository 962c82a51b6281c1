"""Feature-group schemas: canonical Arrow types, the recorded schema, and what counts as breaking.

Every batch is cast to canonical types before it is compared or written, so the same
logical data gets the same recorded dtype whatever the source format produced:
strings (large/view/dictionary) -> string, timestamps -> timestamp[us, tz=UTC] (naive
values are taken as UTC), float16/32 -> double. The event-time column is the exception:
it keeps nanoseconds (timestamp[ns, tz=UTC]), because the point-in-time join compares
event times and a feature 700 ns after a label must stay after it — truncating both to
microseconds would make them tie and join (docs/store-layout.md, "Event-time precision").
Its range is therefore 1677-09-21 .. 2262-04-11; a row outside it fails the batch with
EventTimeOutOfRange. A version recorded with a microsecond event time (written before
event times kept nanoseconds) keeps microseconds: its rows are cast to it, as before.

Schema evolution inside one feature-group version (the contract a feature view pins):

- breaking, refused unless the version is bumped: a recorded column is missing, a
  column's dtype changed, or the primary key / event-time column changed;
- lossless widenings are accepted and cast to the recorded type: int8/16/32 -> int64,
  any int -> double, an all-null column -> the recorded type;
- additive: a new column is accepted and appended to the recorded schema (older rows
  read it as null). Feature views select columns by name, so existing training data and
  models are unaffected, and the offline store rewrites the version's data into the new
  snapshot so every file of a snapshot has the same schema.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..contract import PipelineError

UTC_US = pa.timestamp("us", tz="UTC")
UTC_NS = pa.timestamp("ns", tz="UTC")  # event times (see the module docstring)


def canonical_type(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_timestamp(dtype):
        return UTC_US
    if pa.types.is_floating(dtype):
        return pa.float64()
    if pa.types.is_integer(dtype) and not pa.types.is_unsigned_integer(dtype):
        return pa.int64()
    return dtype


def canonicalize(table: pa.Table, event_time: str | None = None) -> pa.Table:
    """Cast every column to its canonical type (naive timestamps are read as UTC);
    the `event_time` column to nanoseconds, the other timestamps to microseconds."""
    for i, f in enumerate(table.schema):
        is_event_time = f.name == event_time and pa.types.is_timestamp(f.type)
        target = UTC_NS if is_event_time else canonical_type(f.type)
        if target == f.type:
            continue
        column = table.column(i)
        if is_event_time:
            column = _event_time_ns(column, f)
        elif pa.types.is_timestamp(f.type):
            # sub-microsecond digits of ordinary timestamp columns are dropped on purpose
            # (safe=False); naive means UTC
            column = pc.cast(column, pa.timestamp("us", tz=f.type.tz), safe=False)
            if f.type.tz is None:
                column = pc.assume_timezone(column, "UTC")
            column = column.cast(UTC_US)
        else:
            column = column.cast(target)
        table = table.set_column(i, f.name, column)
    # pandas metadata (index, dtypes) would make readers rebuild a stale index
    return table.replace_schema_metadata(None)


def _event_time_ns(column: pa.ChunkedArray, f: pa.Field) -> pa.ChunkedArray:
    """The event time in UTC nanoseconds, exactly: refused (not wrapped) outside ns range."""
    try:
        column = pc.cast(column, pa.timestamp("ns", tz=f.type.tz))  # safe: overflow raises
    except pa.ArrowInvalid as exc:
        raise PipelineError(
            "EventTimeOutOfRange",
            f"eventTime column {f.name!r} has a value outside 1677-09-21 .. 2262-04-11, "
            f"the range event times are stored in (nanoseconds): {exc}",
            column=f.name,
        ) from None
    if f.type.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return column.cast(UTC_NS)


def record(table: pa.Table, primary_key: list[str], event_time: str) -> dict[str, Any]:
    """The schema as recorded in the store (JSON)."""
    return {
        "columns": [{"name": f.name, "dtype": str(f.type)} for f in table.schema],
        "primaryKey": list(primary_key),
        "eventTime": event_time,
    }


def _widens(incoming: pa.DataType, recorded: pa.DataType) -> bool:
    if incoming == recorded or pa.types.is_null(incoming):
        return True
    return pa.types.is_integer(incoming) and (pa.types.is_integer(recorded) or pa.types.is_floating(recorded))


def conform(
    table: pa.Table, recorded: dict[str, Any] | None, primary_key: list[str], event_time: str
) -> tuple[pa.Table, dict[str, Any], list[str]]:
    """Check `table` against the recorded schema; return (table cast to it, new schema, added columns).

    Raises PipelineError("SchemaChange") naming every breaking difference.
    """
    if recorded is None:
        for f in table.schema:
            if not pa.types.is_null(f.type):
                try:
                    _parse_type(str(f.type))
                except PipelineError:
                    raise PipelineError(
                        "UnsupportedType",
                        f"column {f.name!r} has type {f.type}; feature groups hold "
                        "integers, floats, booleans, strings, timestamps, dates and decimals",
                        column=f.name,
                    ) from None
            if pa.types.is_null(f.type):
                raise PipelineError(
                    "UnknownColumnType",
                    f"column {f.name!r} is entirely null in the first batch of "
                    "this feature-group version, so its type is unknown; cast it in the transform",
                    column=f.name,
                )
        return table, record(table, primary_key, event_time), []
    problems = []
    if recorded["primaryKey"] != list(primary_key):
        problems.append(f"primaryKey changed from {recorded['primaryKey']} to {list(primary_key)}")
    if recorded["eventTime"] != event_time:
        problems.append(f"eventTime changed from {recorded['eventTime']!r} to {event_time!r}")
    types = {f.name: f.type for f in table.schema}
    if types.get(event_time) == UTC_NS and _event_time_dtype(recorded) == str(UTC_US):
        # a version recorded before event times kept nanoseconds stays in microseconds
        index = table.schema.get_field_index(event_time)
        table = table.set_column(index, event_time, pc.cast(table.column(index), UTC_US, safe=False))
        types[event_time] = UTC_US
    fields = []
    for col in recorded["columns"]:
        name, dtype = col["name"], col["dtype"]
        if name not in types:
            problems.append(f"column {name!r} ({dtype}) was removed")
            continue
        recorded_type = _parse_type(dtype)
        if not _widens(types[name], recorded_type):
            problems.append(f"column {name!r} changed dtype from {dtype} to {types[name]}")
            continue
        fields.append(pa.field(name, recorded_type))
    if problems:
        raise PipelineError(
            "SchemaChange",
            "breaking schema change for this feature-group version: "
            + "; ".join(problems)
            + ". Bump featureGroup.version to publish the new schema.",
            problems=problems,
        )
    added = [n for n in table.column_names if n not in {c["name"] for c in recorded["columns"]}]
    for name in added:
        if pa.types.is_null(types[name]):
            raise PipelineError(
                "UnknownColumnType",
                f"new column {name!r} is entirely null, so its type is unknown; cast it in the transform",
                column=name,
            )
        fields.append(pa.field(name, types[name]))
    target = pa.schema(fields)
    table = table.select([f.name for f in target]).cast(target)
    schema = dict(recorded, columns=[{"name": f.name, "dtype": str(f.type)} for f in target])
    return table, schema, added


def _event_time_dtype(recorded: dict[str, Any]) -> str | None:
    return next((c["dtype"] for c in recorded["columns"] if c["name"] == recorded["eventTime"]), None)


_TYPES = {
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date32[day]": pa.date32(),
    "timestamp[us, tz=UTC]": UTC_US,
    "timestamp[ns, tz=UTC]": UTC_NS,
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "time64[us]": pa.time64("us"),
}


def _parse_type(text: str) -> pa.DataType:
    if text in _TYPES:
        return _TYPES[text]
    if text.startswith("decimal128("):
        precision, scale = text[len("decimal128(") : -1].split(",")
        return pa.decimal128(int(precision), int(scale))
    raise PipelineError("UnsupportedType", f"recorded dtype {text!r} is not supported by this version of fti-pipelines")


def arrow_type(text: str) -> pa.DataType:
    """The Arrow type of a recorded dtype string."""
    return _parse_type(text)
