"""Prediction output of one batch run, published atomically per run directory.

`<output>/run=<run time>/part-00000.parquet ...` is staged through
`ArtifactStore.commit_dir`: readers see the whole run or nothing (`_COMMITTED`
marker written last), and a run directory is never overwritten — a retried Job of
the same scheduled time finds it committed and reports it instead of scoring twice.
Parts rotate every `rows_per_file` rows; each chunk is one Parquet row group, so the
writer holds one chunk at a time.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..store.artifacts import ArtifactStore

ROWS_PER_FILE = 2_000_000


class PartWriter:
    """Writes chunks into numbered part files under a staging directory."""

    def __init__(self, store: ArtifactStore, staging: str, fmt: str, rows_per_file: int = ROWS_PER_FILE):
        self.store = store
        self.staging = staging
        self.fmt = fmt
        self.rows_per_file = rows_per_file
        self.files: list[str] = []
        self._fh: Any = None
        self._writer: Any = None
        self._rows_in_file = 0
        self.rows = 0

    def _open(self, schema: pa.Schema) -> None:
        ext = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}[self.fmt]
        name = f"part-{len(self.files):05d}.{ext}"
        self.files.append(name)
        self._fh = self.store.fs.open(posixpath.join(self.staging, name), "wb")
        if self.fmt == "parquet":
            self._writer = pq.ParquetWriter(self._fh, schema, compression="zstd")
        elif self.fmt == "csv":
            self._writer = pacsv.CSVWriter(self._fh, schema)
        self._rows_in_file = 0

    def write(self, table: pa.Table) -> None:
        if self._fh is None or self._rows_in_file >= self.rows_per_file:
            self._close_file()
            self._open(table.schema)
        if self.fmt == "jsonl":
            frame = table.to_pandas()
            self._fh.write(frame.to_json(orient="records", lines=True, date_format="iso").encode())
        else:
            self._writer.write_table(table)
        self._rows_in_file += table.num_rows
        self.rows += table.num_rows

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        self._writer = self._fh = None

    def close(self) -> None:
        self._close_file()


def run_directory(run_time_text: str) -> str:
    return f"run={run_time_text}"


@contextlib.contextmanager
def run_output(output_uri: str, run_dir: str, fmt: str, metadata: dict[str, Any]) -> Iterator[PartWriter]:
    """Stage a run directory, yield a writer, publish atomically on success (metadata lands in the marker)."""
    store = ArtifactStore(output_uri)
    with store.commit_dir(run_dir, metadata=metadata) as staging:
        writer = PartWriter(store, staging, fmt)
        try:
            yield writer
        finally:
            writer.close()
        metadata.update(rowsScored=writer.rows, parts=list(writer.files))
