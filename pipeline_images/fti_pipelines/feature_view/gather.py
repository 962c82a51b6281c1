"""The last step of the packed join: the feature values of the matched rows only.

The lookup (`packed`) names, for every label, one feature row by its identity
(file index * 2**ROW_BITS + row number in the file) or none. Here the distinct
identities are sorted once and each Parquet file is read one row group at a time,
keeping only the rows some label needs: memory holds one row group and the values
taken, never the whole group. Values come out as DuckDB's reader types them (the
`types` schema, from DuckDB itself), so the training data - and its content hash -
are the same as the ASOF JOIN query's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

from .sql import ROW_BITS


def gather(
    files: tuple[str, ...], cols: tuple[str, ...], rows: np.ndarray, types: pa.Schema, filesystem: Any = None
) -> dict[str, pa.ChunkedArray] | None:
    """`cols` for each label: the values of its row in `rows` (-1: nulls). None when a
    file's values cannot be cast to `types` (the caller falls back to the DuckDB query)."""
    hit = rows >= 0
    wanted, inverse = np.unique(rows[hit], return_inverse=True)
    bounds = np.searchsorted(wanted, np.arange(len(files) + 1, dtype=np.int64) << ROW_BITS)
    pieces = []
    for f, uri in enumerate(files):
        local = wanted[bounds[f] : bounds[f + 1]] - (f << ROW_BITS)
        if not len(local):
            continue
        with _open(uri, filesystem) as handle:
            reader = pq.ParquetFile(handle)
            starts = np.cumsum([0] + [reader.metadata.row_group(j).num_rows for j in range(reader.num_row_groups)])
            cuts = np.searchsorted(local, starts)
            for j in range(reader.num_row_groups):
                chosen = local[cuts[j] : cuts[j + 1]]
                if not len(chosen):
                    continue
                group = reader.read_row_group(j, columns=list(cols)).select(list(cols))
                try:
                    pieces.append(group.take(pa.array(chosen - starts[j])).cast(types))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    return None
    values = pa.concat_tables(pieces).combine_chunks() if pieces else types.empty_table()
    index = np.zeros(len(rows), dtype=np.int64)
    index[hit] = inverse
    at = pa.array(index, type=pa.int64(), mask=~hit)
    return {c: values[c].take(at) for c in cols}


def _open(uri: str, filesystem: Any) -> Any:
    """A file object for a store URI: local paths directly, others through the store's
    fsspec filesystem (its credentials), or pyarrow's own when none is given."""
    if uri.startswith("file://"):
        return pa.OSFile(uri[len("file://") :])
    if "://" not in uri:
        return pa.OSFile(uri)
    if filesystem is not None:
        return filesystem.open(uri, "rb")
    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    return fs.open_input_file(path)


__all__ = ["gather"]
