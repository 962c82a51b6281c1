"""The point-in-time lookup behind training data, on one packed int64 key per row.

For every label row (entity key, event time) it finds the feature row of the same
entity with the greatest event time at or before the label's — never a later one —
or none. Entity keys (one or more columns) become dense integer codes; code and
event time are packed into one unsigned 64-bit integer, `code * time_span + (t - t_min)`,
so "same entity, latest time at or before" is "greatest packed key <= the label's
packed key, still inside the label's entity range": one numpy argsort of the feature
keys and one binary search per label. Codes and offsets are never negative, so the
packing uses all 64 bits: 2M entities x 90 days of microseconds (~2**63.8) still fit,
where a signed packing would need the dense ranks below (a second sort of every row).

Why not DuckDB's ASOF JOIN (kept as the fallback, `join.build_sql`): its partitioned
sort carries every payload column through the sort; the argsort of one int64 column
(SIMD quicksort in numpy >= 2) plus the search costs a fraction of that CPU
(bench/RESULTS.md, "Training data"). Keys that cannot be packed (the product of the
spans would overflow 64 bits, or the two sides' key types differ) return None, and the
caller falls back.

Event times arrive in nanoseconds, exactly as stored: a feature 1 ns after a label is
after it (docs/store-layout.md, "Event-time precision"). Only their order matters here,
so when nanoseconds would overflow the packing the times are taken in the coarsest unit
that divides them all exactly (microseconds, milliseconds, seconds — data from most
sources is whole microseconds: one vectorised check), and failing that as dense ranks
of the distinct times (one more sort). Each step is exact, so the join's result is the
same whichever one ran.

Ties: two feature rows with the same entity and event time (ingestion drops such
duplicates, so this is rare) are resolved by a stable sort, so the row stored last
wins — deterministically, whatever order the unstable sort left them in.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_INT64_LIMIT = 2**63
_PACK_LIMIT = 2**64  # packed keys are uint64
_NONE = np.empty(0, dtype=np.int64)


def _offsets(arr: pa.ChunkedArray, lo: int) -> np.ndarray:
    """`arr - lo` as int64 (nulls as `lo`: offset 0), written chunk by chunk into one new
    array: no concatenated copy of the column first (the feature side has ~50M rows)."""
    out = np.empty(len(arr), dtype=np.int64)
    at = 0
    for chunk in arr.chunks:
        n = len(chunk)
        values = (pc.fill_null(chunk, lo) if chunk.null_count else chunk).to_numpy(zero_copy_only=False)
        if values.dtype != np.int64:  # narrower integers, timestamps: their int64 values
            values = values.astype(np.int64)
        np.subtract(values, np.int64(lo), out=out[at : at + n])
        at += n
    return out


def _min_max(*arrays: pa.ChunkedArray) -> tuple[int, int] | None:
    """Smallest and largest valid value over all arrays (None if all are null or empty)."""
    lo: int | None = None
    hi: int | None = None
    for arr in arrays:
        if len(arr) == arr.null_count:
            continue
        mm = pc.min_max(arr)
        a, b = mm["min"].as_py(), mm["max"].as_py()
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return None if lo is None or hi is None else (lo, hi)


def _column_codes(left: pa.ChunkedArray, right: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Codes in [0, span) for one key column on both sides, equal codes <=> equal values."""
    if pa.types.is_integer(left.type) and pa.types.is_integer(right.type):
        bounds = _min_max(left, right) or (0, 0)
        lo, hi = bounds
        if lo >= -_INT64_LIMIT and hi < _INT64_LIMIT:
            # Integers are their own codes once shifted to start at 0: no hashing needed.
            return (_offsets(left, lo), _offsets(right, lo), hi - lo + 1)
    if left.type != right.type:
        return None
    try:
        both = pa.chunked_array(left.chunks + right.chunks, type=left.type).combine_chunks()
        encoded = pc.dictionary_encode(both)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return None
    codes = pc.fill_null(encoded.indices, 0).to_numpy().astype(np.int64, copy=False)
    return codes[: len(left)], codes[len(left) :], max(len(encoded.dictionary), 1)


def packed_keys(
    label_keys: list[pa.ChunkedArray],
    label_time: pa.ChunkedArray,
    feature_keys: list[pa.ChunkedArray],
    feature_time: pa.ChunkedArray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(label keys, label entity starts, label validity, feature keys), or None. Keys and
    starts are uint64 (see the module docstring).

    Times are int64 nanoseconds (or microseconds: any one unit on both sides). A label
    with a null key or time is not valid (it can match nothing); feature rows must have no
    nulls in key or time (filter them first).
    """
    cols = []
    for left, right in zip(label_keys, feature_keys, strict=True):
        coded = _column_codes(left, right)
        if coded is None:
            return None
        cols.append(coded)
    key_span = 1
    for _, _, span in cols:
        key_span *= span
    if key_span >= _PACK_LIMIT:
        return None
    bounds = _min_max(label_time, feature_time) or (0, 0)
    if bounds[1] - bounds[0] >= _INT64_LIMIT:
        return None  # the offsets themselves would overflow (times ~292 years apart)
    lt = _offsets(label_time, bounds[0])
    ft = _offsets(feature_time, bounds[0])
    timed = _time_codes(lt, ft, bounds[1] - bounds[0] + 1, _PACK_LIMIT // key_span)
    if timed is None:
        return None
    lt, ft, t_span = timed
    # Horner's scheme over the key columns, then time: exact because key_span * t_span < 2**64.
    # Codes and offsets are >= 0, so viewing them as uint64 costs nothing. Each step makes
    # one new array and drops the codes it used: the feature side has tens of millions of rows.
    lk = np.zeros(len(label_time), dtype=np.uint64)
    fk = np.zeros(len(feature_time), dtype=np.uint64)
    for i in range(len(cols)):
        lc, fc, span = cols[i]
        cols[i] = (_NONE, _NONE, span)  # drop the codes as soon as they are folded in
        if i == 0:
            lk, fk = lc.view(np.uint64), fc.view(np.uint64)
        else:
            lk, fk = lk * np.uint64(span) + lc.view(np.uint64), fk * np.uint64(span) + fc.view(np.uint64)
        del lc, fc
    l_start = lk * np.uint64(t_span)
    lk = lt.view(np.uint64)
    lk += l_start
    if fk.flags.writeable:  # our own codes (never an Arrow buffer): scaled in place
        fk *= np.uint64(t_span)
    else:
        fk = fk * np.uint64(t_span)
    fk += ft.view(np.uint64)
    del ft
    valid = np.ones(len(label_time), dtype=bool)
    for arr in [label_time, *label_keys]:
        if arr.null_count:
            valid &= arr.is_valid().to_numpy()
    return lk, l_start, valid, fk


def _time_codes(lt: np.ndarray, ft: np.ndarray, span: int, limit: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Order-preserving codes for the (non-negative) time offsets with a span below
    `limit`: the offsets themselves, then coarser exact units, then dense ranks."""
    for _ in range(3):  # e.g. ns -> us -> ms -> s, while every offset is a whole unit
        if span < limit:
            return lt, ft, span
        if np.any(lt % 1000) or np.any(ft % 1000):
            break
        lt //= 1000
        ft //= 1000
        span = (span - 1) // 1000 + 1
    if span < limit:
        return lt, ft, span
    distinct, inverse = np.unique(np.concatenate([lt, ft]), return_inverse=True)
    if len(distinct) >= limit:
        return None
    inverse = inverse.astype(np.int64, copy=False)
    return inverse[: len(lt)], inverse[len(lt) :], len(distinct)


def asof_rows(label_keys: np.ndarray, label_starts: np.ndarray, label_valid: np.ndarray, feature_keys: np.ndarray) -> np.ndarray:
    """For each label, the index of its feature row, -1 where none is at or before it."""
    order = np.argsort(feature_keys)
    ordered = feature_keys[order]
    if len(ordered) > 1 and bool(np.any(ordered[1:] == ordered[:-1])):
        order = np.argsort(feature_keys, kind="stable")
        ordered = feature_keys[order]
    # Searching the labels in key order keeps the binary searches cache-friendly (~8x
    # faster than searching them in the spine's time order).
    by_key = np.argsort(label_keys)
    pos = np.empty(len(label_keys), dtype=np.int64)
    pos[by_key] = np.searchsorted(ordered, label_keys[by_key], side="right") - 1
    if not len(ordered):
        return np.full(len(label_keys), -1, dtype=np.int64)
    found = pos >= 0
    np.maximum(pos, 0, out=pos)
    # The greatest key at or before may belong to the previous entity: then no match.
    hit = label_valid & found & (ordered[pos] >= label_starts)
    return np.where(hit, order[pos], -1)


def asof_positions(
    label_keys: np.ndarray, label_starts: np.ndarray, label_valid: np.ndarray, feature_keys: np.ndarray
) -> pa.Array:
    """For each label, the index of its feature row (null where none is at or before it)."""
    rows = asof_rows(label_keys, label_starts, label_valid, feature_keys)
    missing = rows < 0
    return pa.array(np.maximum(rows, 0), type=pa.int64(), mask=missing)


def asof_indices(labels: pa.Table, features: pa.Table, keys: list[str], time_column: str) -> pa.Array | None:
    """Row of `features` joined to each row of `labels` (null = none), or None if the keys cannot be packed.

    Both tables carry the key columns under the same names and the event time as int64
    (nanoseconds, or microseconds on both sides) in `time_column`; `features` holds no nulls in them.
    """
    packed = packed_keys([labels[k] for k in keys], labels[time_column], [features[k] for k in keys], features[time_column])
    if packed is None:
        return None
    return asof_positions(*packed)


__all__ = ["asof_indices", "asof_positions", "asof_rows", "packed_keys"]
