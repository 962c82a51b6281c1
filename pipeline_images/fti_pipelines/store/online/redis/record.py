"""The packed record: one Redis string per entity holding its event time and every column.

    <ts> US <value of column 1> US <value of column 2> ... US <value of column n>

US is the ASCII unit separator (0x1F); `ts` is the event time in microseconds; the columns
come in the order of the version's metadata (`info["columns"]`), which only ever grows at
its end, so a record written before a column was added is shorter and its missing tail
reads as null. Values are text as Arrow writes it (keys.py, codec.py); an empty value is a
null. A string value is escaped so that it never contains US and is never empty:
ESC (0x1E) becomes ESC `e`, US becomes ESC `s`, and the empty string is ESC alone.

Why a string and not a hash per entity: Redis spends its CPU per command argument, and a
hash costs two per column (an `HSET` of six fields took the server about 2.1 us per key,
a packed `SET` 0.85 and an `MSET` of many records 0.66: bench/RESULTS.md), which made a
full reload of a million keys take longer than its budget on the server alone. A lookup
reads every column anyway (`GET`), and splitting one record is one C call in Python. What
the hash gave, writing some columns of a row and keeping the others, the upsert script
does by merging with the stored record (upsert.py). Generations written by an older
release are hashes; the metadata's `layout` field says which form a generation has
(keys.py), and readers and upserts handle both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..codec import decode, storage_values

SEP = "\x1f"
ESC = "\x1e"
SEP_BYTE = SEP.encode()
ESC_BYTE = ESC.encode()


def arrow_text(column: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    """A column's storage values (codec.py) as the text Redis holds; null where null."""
    return storage_values(column, kind).cast(pa.string())


def column_texts(table: pa.Table, kinds: dict[str, str], event_time: str) -> tuple[pa.ChunkedArray, dict[str, pa.ChunkedArray]]:
    """The event time (us) as text, and every column as text (the key columns' text, too)."""
    return arrow_text(table.column(event_time), "timestamp"), {
        name: arrow_text(table.column(name), kinds[name]) for name in table.column_names
    }


def escaped(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A string column's values as a record holds them (see the module docstring); nulls stay null."""
    if len(texts) and pc.any(pc.match_substring_regex(texts, "[\x1e\x1f]")).as_py():
        texts = pc.replace_substring(pc.replace_substring(texts, ESC, ESC + "e"), SEP, ESC + "s")
    return pc.if_else(pc.equal(texts, ""), pa.scalar(ESC, pa.string()), texts)


def records(
    ts: pa.ChunkedArray, texts: dict[str, pa.ChunkedArray], kinds: dict[str, str], order: Sequence[str]
) -> pa.Array | pa.ChunkedArray:
    """One record per row: the event time, then every column of `order` (the version's, in
    its metadata's order) from `texts`; a null, or a column `texts` lacks, is an empty value
    (an upsert that lacks it keeps the stored value instead: upsert.py)."""
    empty = pa.scalar("", pa.string())
    values = [
        empty if name not in texts else (escaped(texts[name]) if kinds[name] == "string" else texts[name]).fill_null("")
        for name in order
    ]
    return pc.binary_join_element_wise(ts, *values, SEP)


def unescape(raw: bytes) -> str:
    """A string value of a record back to its text."""
    text = raw.decode()
    if ESC not in text:
        return text
    if text == ESC:
        return ""
    return text.replace(ESC + "s", SEP).replace(ESC + "e", ESC)


def text_decoder(kind: str | None) -> Callable[[bytes], Any]:
    """Stored text (a hash field's, or a record's non-string value) to its Python value
    (codec.decode; None = a timestamp wanted as int micros)."""
    if kind is None or kind == "int":
        return int  # int() and float() read the stored ASCII bytes as decode's str would
    if kind == "float":
        return float
    return lambda value: decode(value, kind)


def value_decoder(kind: str | None) -> Callable[[bytes], Any]:
    """A record's non-empty value to its Python value: `text_decoder`'s, strings unescaped."""
    return unescape if kind == "string" else text_decoder(kind)


def picker(positions: Sequence[int], decoders: Sequence[Callable[[bytes], Any]]) -> Callable[[bytes], list[Any]]:
    """Reads the values at `positions` of a record (0 is the event time, 1 the first column),
    decoded, None where empty or past the record's end (a column added after it was written)."""
    plan = tuple(zip(positions, decoders, strict=True))
    width = max(positions, default=0) + 1
    padding = [b""] * width

    def pick(record: bytes) -> list[Any]:
        fields = record.split(SEP_BYTE)
        if len(fields) < width:
            fields += padding
        return [conv(v) if (v := fields[p]) else None for p, conv in plan]

    return pick
