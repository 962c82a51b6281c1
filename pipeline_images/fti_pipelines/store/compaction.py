"""Offline compaction: a feature-group version's Parquet files merged into few large ones.

Every incremental run adds at least one file to a version (one per core for a big batch),
and every read of the version opens them all: a training run's point-in-time join, the
online re-materialisation, the late-row dedup of the next run. Compaction writes the
version's current rows again, sorted by (primary key, event time), into files of up to
ROWS_PER_FILE rows, as a new snapshot whose manifest lists only those files (docs/store-layout.md):

- same rows, same schema, watermark and row count: every read gives the same answer (rows
  are unique on key + event time within a version, so no read depends on their order);
- committed like any snapshot (staging, then the `_COMMITTED` marker), so readers see the
  old file list or the new one, never both and never neither; the older snapshots and their
  files stay (artifacts are immutable) and readers of an older manifest keep working;
- `mode: compact` and `dataSnapshot`, the snapshot whose data it holds: the online store,
  which records the snapshot it materialised, is as current after a compaction as before
  (feature/online.py), so compacting never triggers a re-materialisation.

Who runs it: the feature pipeline, after a run, when the version has more than
COMPACT_AT_FILES files (it is the version's only writer, concurrencyPolicy Forbid); and
`python -m fti_pipelines.store.compaction` on demand. An on-demand compaction racing a run
of the same version loses or makes the run lose with `ConcurrentWrite` (nothing is written
twice, the loser writes nothing); on object stores, which cannot create-if-absent, suspend
the FeaturePipeline first.
"""

from __future__ import annotations

import argparse
import json
import logging
import posixpath
import sys
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq

from .artifacts import ArtifactExists
from .offline import ROOT, SNAPSHOTS, ConcurrentWrite, FeatureStore

log = logging.getLogger("fti_pipelines.store")

COMPACT_AT_FILES = 32  # the feature pipeline compacts a version with more files than this
ROWS_PER_FILE = 2_000_000  # rows per compacted file
ROW_GROUP_ROWS = 128 * 1024  # rows per Parquet row group: min/max statistics a filter can skip by


def data_snapshot(manifest: dict[str, Any]) -> int:
    """The snapshot whose data a manifest holds: its own, or for a compaction the one it compacted."""
    return int(manifest.get("dataSnapshot") or manifest["snapshot"])


def compact(
    features: FeatureStore, group: str, version: int, *, run_id: str | None = None, min_files: int = 2
) -> dict[str, Any] | None:
    """Compact the version's current snapshot into a new one; returns its manifest, or None when
    the version has fewer than `min_files` files (or no data). ConcurrentWrite if another writer
    committed the same snapshot number first."""
    snap = features.snapshot(group, version)
    if snap is None or len(snap["files"]) < max(min_files, 1):
        return None
    schema = snap["schema"]
    order = [*schema["primaryKey"], schema["eventTime"]]
    table = features.table(group, version, snap=snap).sort_by([(c, "ascending") for c in order])
    snap_id = f"{snap['snapshot'] + 1:06d}"
    rel = posixpath.join(SNAPSHOTS, snap_id)
    parts = max(1, -(-table.num_rows // ROWS_PER_FILE))
    names = [f"compact-{i}.parquet" for i in range(parts)]
    try:
        with features.store.commit_dir(ROOT, group, f"v{version}", SNAPSHOTS, snap_id) as staging:
            for i, name in enumerate(names):
                chunk = table.slice(i * ROWS_PER_FILE, ROWS_PER_FILE)
                pq.write_table(chunk, posixpath.join(staging, name), filesystem=features.store.fs, row_group_size=ROW_GROUP_ROWS)
            manifest = {
                **snap,
                "snapshot": int(snap_id),
                "parent": snap["snapshot"],
                "mode": "compact",
                "runId": run_id,
                "files": [posixpath.join(rel, n) for n in names],
                "rowsAdded": 0,
                "addedColumns": [],
                "dataSnapshot": data_snapshot(snap),
                "compactedFiles": len(snap["files"]),
                "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
            with features.store.fs.open(posixpath.join(staging, "manifest.json"), "wb") as fh:
                fh.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    except ArtifactExists:
        raise ConcurrentWrite(group, version, snap_id) from None
    return manifest


def compact_after_run(features: FeatureStore, manifest: dict[str, Any], run_id: str | None) -> dict[str, Any]:
    """The feature pipeline's hook: compact when the version it just wrote has more than
    COMPACT_AT_FILES files; returns what to add to the run's result ({} when nothing was done)."""
    if len(manifest["files"]) <= COMPACT_AT_FILES:
        return {}
    try:
        done = compact(features, manifest["group"], manifest["version"], run_id=run_id)
    except (ConcurrentWrite, OSError) as exc:
        # The run's own data is committed already: a compaction that could not be done leaves
        # nothing visible and is tried again after the next run, so the run still succeeds.
        log.warning("compaction of %s v%s skipped: %s", manifest["group"], manifest["version"], exc)
        return {"compaction": {"skipped": str(exc)[:300]}}
    if done is None:
        return {}
    return {"compaction": {"snapshot": done["snapshot"], "filesBefore": done["compactedFiles"], "filesAfter": len(done["files"])}}


def main(argv: list[str] | None = None) -> int:
    """`python -m fti_pipelines.store.compaction STORE NAMESPACE GROUP VERSION`: compact on demand."""
    from .tenancy import namespace_store

    parser = argparse.ArgumentParser(prog="python -m fti_pipelines.store.compaction", description=main.__doc__)
    parser.add_argument("store", help="the artifact store URI (FTI_ARTIFACT_STORE): file:///... or s3://...")
    parser.add_argument("namespace", help="the namespace of the FeaturePipeline")
    parser.add_argument("group", help="the feature group name")
    parser.add_argument("version", type=int, help="the feature group version")
    parser.add_argument("--min-files", type=int, default=2, help="compact only a version with at least this many files")
    args = parser.parse_args(argv)
    features = FeatureStore(namespace_store(args.store, args.namespace))
    before = features.snapshot(args.group, args.version)
    if before is None:
        print(f"{args.group} v{args.version} has no committed data in namespace {args.namespace}", file=sys.stderr)
        return 1
    try:
        done = compact(features, args.group, args.version, run_id="compaction-cli", min_files=args.min_files)
    except ConcurrentWrite as exc:
        print(exc.message, file=sys.stderr)
        return 1
    if done is None:
        print(f"{args.group} v{args.version}: {len(before['files'])} file(s), fewer than {args.min_files}: nothing to do")
        return 0
    print(
        f"{args.group} v{args.version}: snapshot {done['snapshot']}, {done['compactedFiles']} file(s) -> "
        f"{len(done['files'])}, {done['rows']} rows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
