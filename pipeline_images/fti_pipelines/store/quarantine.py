"""Quarantine: a batch that failed validation is kept whole in the artifact store, never dropped.

  quarantine/<group>/v<version>/<run_id>/rows.parquet   every row of the batch, unchanged
  quarantine/<group>/v<version>/<run_id>/report.json    which expectations failed, on which
                                                        column, how many rows, example rows
  quarantine/<group>/v<version>/<run_id>-late/...       rows beyond the allowed lateness, with
                                                        the cutoff and watermark (reason LateRow)

Each quarantined batch is an immutable, atomically committed directory; a rerun with the
same run id gets a suffix (-2, -3, ...) instead of overwriting the earlier evidence.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .artifacts import ArtifactExists, ArtifactStore

ROOT = "quarantine"


def quarantine_batch(
    store: ArtifactStore, group: str, version: int, run_id: str, table: pa.Table, report: dict[str, Any], suffix: str = ""
) -> str:
    """Write the rows and the report; returns the URI of the quarantine directory.

    `suffix` tells apart two sets of one run's rows (`late`: beyond the allowed lateness)."""
    base = (run_id or "run") + (f"-{suffix}" if suffix else "")
    for attempt in range(1, 1000):
        name = base if attempt == 1 else f"{base}-{attempt}"
        if store.is_committed(ROOT, group, f"v{version}", name):
            continue
        try:
            with store.commit_dir(ROOT, group, f"v{version}", name) as staging:
                pq.write_table(table, posixpath.join(staging, "rows.parquet"), filesystem=store.fs)
                body = dict(report, featureGroup=group, version=version, runId=run_id, rows=table.num_rows)
                with store.fs.open(posixpath.join(staging, "report.json"), "wb") as fh:
                    fh.write(json.dumps(body, indent=2, sort_keys=True, default=str).encode())
        except ArtifactExists:
            continue
        return store.url(ROOT, group, f"v{version}", name)
    raise RuntimeError(f"could not find a free quarantine directory for run {run_id!r}")


def list_quarantined(store: ArtifactStore, group: str, version: int) -> list[str]:
    """URIs of the quarantined batches of one feature-group version, oldest name first."""
    return [store.url(ROOT, group, f"v{version}", n) for n in store.committed(ROOT, group, f"v{version}")]


def read_quarantined(store: ArtifactStore, uri: str) -> tuple[pa.Table, dict[str, Any]]:
    """The rows and the report of one quarantined batch (for inspection or replay)."""
    prefix = store.uri.rstrip("/") + "/"
    if not uri.startswith(prefix):
        raise ValueError(f"{uri} is not in the artifact store {store.uri}")
    parts = uri[len(prefix) :].split("/")
    with store.fs.open(store.path(*parts, "rows.parquet"), "rb") as fh:
        table = pq.read_table(fh)
    return table, store.read_json(*parts, "report.json")
