"""Quarantine: a batch that failed validation is kept whole in the artifact store, never dropped.

  quarantine/<group>/v<version>/<run_id>/rows.parquet    every row of the batch, unchanged
  quarantine/<group>/v<version>/<run_id>/report.json     which expectations failed, on which
                                                         column, how many rows, example rows
  quarantine/<group>/v<version>/<run_id>/checks.parquet  one line per (row, failed check), for
                                                         `fti quarantine show`
  quarantine/<group>/v<version>/<run_id>-late/...        rows beyond the allowed lateness, with
                                                         the cutoff and watermark (reason LateRow)
  quarantine-replays/<group>/v<version>/<run_id>/replay.json
                                                         written once the batch was replayed
                                                         (feature/replay.py): when, from which
                                                         rows, and where its rows went

Each quarantined batch is an immutable, atomically committed directory; a rerun with the
same run id gets a suffix (-2, -3, ...) instead of overwriting the earlier evidence. A
batch is named `<group>/v<version>/<name>` on the command line (docs/data-quality.md).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .artifacts import ArtifactExists, ArtifactStore

ROOT = "quarantine"
REPLAYS = "quarantine-replays"
REF = re.compile(r"^(?P<group>[a-z][a-z0-9_]*)/v(?P<version>[0-9]+)/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")


def quarantine_batch(
    store: ArtifactStore,
    group: str,
    version: int,
    run_id: str,
    table: pa.Table,
    report: dict[str, Any],
    suffix: str = "",
    row_checks: pa.Table | None = None,
) -> str:
    """Write the rows and the report; returns the URI of the quarantine directory.

    `suffix` tells apart two sets of one run's rows (`late`: beyond the allowed lateness);
    `row_checks` (row, check, blocking) says which check each failing row failed."""
    base = (run_id or "run") + (f"-{suffix}" if suffix else "")
    for attempt in range(1, 1000):
        name = base if attempt == 1 else f"{base}-{attempt}"
        if store.is_committed(ROOT, group, f"v{version}", name):
            continue
        try:
            with store.commit_dir(ROOT, group, f"v{version}", name) as staging:
                pq.write_table(table, posixpath.join(staging, "rows.parquet"), filesystem=store.fs)
                if row_checks is not None:
                    pq.write_table(row_checks, posixpath.join(staging, "checks.parquet"), filesystem=store.fs)
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
    return store.read_parquet(*parts, "rows.parquet"), store.read_json(*parts, "report.json")


@dataclass(frozen=True)
class QuarantinedBatch:
    """One quarantined batch as `fti quarantine list` shows it."""

    group: str
    version: int
    name: str
    uri: str
    reason: str  # ValidationFailed | LateRow
    rows: int
    quarantined_at: str | None
    replay: dict[str, Any] | None  # replay.json once replayed

    @property
    def ref(self) -> str:
        return f"{self.group}/v{self.version}/{self.name}"


def parse_ref(ref: str) -> tuple[str, int, str]:
    """`<group>/v<version>/<name>` -> (group, version, name); ValueError names the expected form."""
    m = REF.match(ref.strip().strip("/"))
    if not m:
        raise ValueError(f"{ref!r} is not a quarantined batch: expected <group>/v<version>/<name>, e.g. tx/v1/run-2")
    return m["group"], int(m["version"]), m["name"]


def batch_info(store: ArtifactStore, group: str, version: int, name: str) -> QuarantinedBatch:
    """The batch's summary; KeyError when no committed batch has that name."""
    parts = (ROOT, group, f"v{version}", name)
    if not store.is_committed(*parts):
        raise KeyError(f"{group}/v{version}/{name}")
    report = store.read_json(*parts, "report.json")
    replay = (
        store.read_json(REPLAYS, group, f"v{version}", name, "replay.json") if replayed(store, group, version, name) else None
    )
    return QuarantinedBatch(
        group,
        version,
        name,
        store.url(*parts),
        str(report.get("reason") or "ValidationFailed"),
        int(report.get("rows") or 0),
        store.commit_info(*parts).get("committedAt"),
        replay,
    )


def list_batches(store: ArtifactStore, group: str | None = None, version: int | None = None) -> list[QuarantinedBatch]:
    """Every quarantined batch of the store (one namespace's), by group, version and name."""
    out: list[QuarantinedBatch] = []
    for g in [group] if group else store.list(ROOT):
        versions = [f"v{version}"] if version is not None else store.list(ROOT, g)
        for v in versions:
            if not re.fullmatch(r"v[0-9]+", v):
                continue
            out.extend(batch_info(store, g, int(v[1:]), name) for name in store.committed(ROOT, g, v))
    return sorted(out, key=lambda b: (b.group, b.version, b.quarantined_at or "", b.name))


def read_row_checks(store: ArtifactStore, group: str, version: int, name: str) -> pa.Table | None:
    """The (row, check, blocking) lines of a batch; None for a batch quarantined without them."""
    parts = (ROOT, group, f"v{version}", name, "checks.parquet")
    if not store.fs.exists(store.path(*parts)):
        return None
    return store.read_parquet(*parts)


def replayed(store: ArtifactStore, group: str, version: int, name: str) -> bool:
    return store.is_committed(REPLAYS, group, f"v{version}", name)


def mark_replayed(store: ArtifactStore, group: str, version: int, name: str, record: dict[str, Any]) -> None:
    """Record a replay, once: ArtifactExists when the batch was already marked."""
    with store.commit_dir(REPLAYS, group, f"v{version}", name) as staging:
        store.fs.pipe_file(
            posixpath.join(staging, "replay.json"), json.dumps(record, indent=2, sort_keys=True, default=str).encode()
        )
