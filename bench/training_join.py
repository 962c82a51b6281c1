"""Benchmark: point-in-time training-data join, fti (DuckDB ASOF) vs Feast, same Parquet data.

    .venv/bin/python bench/training_join.py [--labels 1000000] [--rows 5000000] [--repeat 3]
                                            [--skip-feast] [--feast-repeat 3] [--compare-duckdb]
                                            [--unit us|ns|ns-sub]
                                            [--compaction BATCHES [--rounds 2]]
    .venv/bin/python bench/training_join.py --scale 1000000 3000000 10000000 [--baseline TREE]
                                            [--repeat 1] [--feast-max 3000000] [--partition-rows N]
                                            [--generate-only]

Data (bench/data/training_join/, generated once, seeded): a label spine of N labels
(entity_id, event_time, label) and two feature groups of M rows each (entity_id,
event_time, features). A share `--late` (3%) of the labels belongs to entities whose
feature rows all come *after* the label: a correct join keeps these rows with nulls.

Each side runs in its own subprocess (so peak RSS is that process's own, from
getrusage ru_maxrss): one warm-up run (page cache warm), then `--repeat` timed runs;
the median is reported. Correctness is checked on every run: exactly one output row
per label, and the late labels' features are null.

`--unit`: the event-time columns' Parquet type: `us` (as versions written before event
times kept nanoseconds), `ns` (as the store writes them now; whole microseconds, like
most sources), `ns-sub` (ns with random sub-microsecond digits: the dense-rank packing).

Ours is `point_in_time_join` with its default engine (packed int64 keys, numpy lookup);
`--compare-duckdb` also times the single DuckDB ASOF JOIN query (`engine="duckdb"`, the
reference and fallback) in its own subprocess, same data, same run.

`--compaction BATCHES` times our join on the feature groups as a feature store holds them
instead of one file each: ingested into a FeatureStore in BATCHES incremental runs (each a
slice of event time, one Parquet file per run, as the feature pipeline leaves a version),
and the same store after `store/compaction.py` merged each version into few files sorted
by (key, event time). The two layouts run in alternating subprocesses, `--rounds` times
each (the machine is shared and noisy: compare within a round), and must give the same rows.

`--scale LABELS...` shows how the join grows: for each size, LABELS labels, two groups of
5 x LABELS rows and LABELS / 5 entities (the default 1M / 5M / 200k shape, scaled), ours,
`--baseline`'s tree (another checkout's `pipeline_images`, e.g. `git archive main
pipeline_images | tar -x -C /tmp/main`) and Feast up to `--feast-max` labels, one after
another, each in its own subprocess (one warm-up, `--repeat` timed runs, the join only).
`FTI_BENCH_DATA` puts the generated data elsewhere than bench/data (10M labels: ~4 GB).
`--generate-only` writes the data and stops (generation is not timed: it can run niced,
outside the bench lock, while nothing is measured).
`--partition-rows` overrides the join's entity-partition size (`packed.PARTITION_ROWS`).

Feast runs `get_historical_features` on its file offline store (Dask) in its own venv,
bench/.venv-feast (created by bench/feast/setup.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("FTI_BENCH_DATA") or HERE / "data") / "training_join"
FEAST_PY = HERE / ".venv-feast" / "bin" / "python"


def generate(labels: int, rows: int, entities: int, late: float, seed: int = 42, unit: str = "us") -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = DATA / (f"l{labels}_r{rows}_e{entities}" + ("" if unit == "us" else f"_{unit}"))
    if (out / "_done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    day = 86_400_000_000  # microseconds
    t0 = 1_788_220_800_000_000  # 2026-09-01T00:00:00Z in µs
    span = 60 * day
    n_late = max(1, int(entities * late))
    # Entities 0..n_late-1 have only feature rows after every label.

    # Labels: entity ids spread so that `late` of the labels fall on late entities.
    is_late = rng.random(labels) < late
    ent = np.where(is_late, rng.integers(0, n_late, labels), rng.integers(n_late, entities, labels))
    lt = t0 + rng.integers(0, span, labels)

    def times(us: np.ndarray) -> pa.Array:
        if unit == "us":
            return pa.array(us, pa.timestamp("us", tz="UTC"))
        ns = us * 1000 + (rng.integers(0, 1000, len(us)) if unit == "ns-sub" else 0)
        return pa.array(ns, pa.timestamp("ns", tz="UTC"))

    spine = pa.table(
        {
            "entity_id": pa.array(ent, pa.int64()),
            "event_time": times(lt),
            "label": pa.array((rng.random(labels) < 0.1).astype(np.int8)),
        }
    )
    pq.write_table(spine, out / "labels.parquet", row_group_size=256_000)
    n_late_labels = int(is_late.sum())

    for g, ncols in (("fg_a", 3), ("fg_b", 2)):
        e = rng.integers(0, entities, rows)
        # Feature rows start 30 days before the labels; late entities only after all labels.
        t = np.where(
            e < n_late, t0 + span + 1 + rng.integers(0, 10 * day, rows), t0 - 30 * day + rng.integers(0, span + 30 * day, rows)
        )
        cols = {"entity_id": pa.array(e, pa.int64()), "event_time": times(t)}
        for c in range(ncols):
            cols[f"{g}_f{c}"] = pa.array(rng.random(rows))
        table = pa.table(cols)
        # One row per (entity, event time), as the feature store's ingestion guarantees.
        import pyarrow.compute as pc

        keys = pc.add(pc.multiply(table["entity_id"], 10**17), pc.cast(table["event_time"], pa.int64()))
        _, first = np.unique(keys.to_numpy(), return_index=True)
        table = table.take(np.sort(first))
        pq.write_table(table, out / f"{g}.parquet", row_group_size=512_000)
    (out / "meta.json").write_text(
        json.dumps({"labels": labels, "rows": rows, "entities": entities, "lateLabels": n_late_labels, "lateEntities": n_late})
    )
    (out / "_done").write_text("ok")
    return out


def feature_stores(data: Path, batches: int) -> tuple[Path, Path]:
    """(fragmented, compacted) artifact-store roots holding fg_a and fg_b v1 (see the docstring)."""
    import shutil

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fti_pipelines.store import compaction
    from fti_pipelines.store.artifacts import ArtifactStore
    from fti_pipelines.store.offline import FeatureStore

    frag, compact = data / f"store_b{batches}", data / f"store_b{batches}_compacted"
    if (compact / "_done").exists():
        return frag, compact
    shutil.rmtree(frag, ignore_errors=True)
    shutil.rmtree(compact, ignore_errors=True)
    features = FeatureStore(ArtifactStore(f"file://{frag}"))
    for g in ("fg_a", "fg_b"):
        table = pq.read_table(data / f"{g}.parquet")
        table = table.take(pc.sort_indices(table, [("event_time", "ascending")]))
        step = -(-table.num_rows // batches)
        for i in range(batches):
            features.ingest(g, 1, table.slice(i * step, step), primary_key=["entity_id"], event_time="event_time")
    shutil.copytree(frag, compact)
    compacted = FeatureStore(ArtifactStore(f"file://{compact}"))
    for g in ("fg_a", "fg_b"):
        compaction.compact(compacted, g, 1)
    (compact / "_done").write_text("ok")
    return frag, compact


def cpu_seconds() -> float:
    """User + system CPU time of this process (threads included): robust to a busy machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_ours(
    data: Path,
    repeat: int,
    engine: str = "auto",
    store: Path | None = None,
    partition_rows: int | None = None,
    tree: Path | None = None,
    lean: bool = False,
) -> dict:
    sys.path.insert(0, str(tree or HERE.parent / "pipeline_images"))
    import pyarrow.compute as pc

    from fti_pipelines.feature_view import JoinPlan, point_in_time_join, source_from_files

    meta = json.loads((data / "meta.json").read_text())
    files = {g: [f"file://{data}/{g}.parquet"] for g in ("fg_a", "fg_b")}
    if store is not None:  # --compaction: the groups as a feature store holds them
        from fti_pipelines.store.artifacts import ArtifactStore
        from fti_pipelines.store.offline import FeatureStore

        features = FeatureStore(ArtifactStore(f"file://{store}"))
        files = {g: features.parquet_files(g, 1) for g in files}
    spine = source_from_files("labels", 1, [f"file://{data}/labels.parquet"], ["entity_id"], "event_time")
    a = source_from_files("fg_a", 1, files["fg_a"], ["entity_id"], "event_time")
    b = source_from_files("fg_b", 1, files["fg_b"], ["entity_id"], "event_time")
    fa, fb = ("fg_a_f0", "fg_a_f1", "fg_a_f2"), ("fg_b_f0", "fg_b_f1")
    plan = JoinPlan(
        spine=spine, label="label", spine_columns=(), joins=((a, fa), (b, fb)), feature_columns=fa + fb, extra_columns=()
    )
    from fti_pipelines.feature_view import content_hash

    kw = {"partition_rows": partition_rows} if partition_rows else {}  # older trees have no such argument
    times, cpu, checks = [], [], {}
    for i in range(repeat + 1):  # the first run warms the page cache and is not counted
        t, c = time.perf_counter(), cpu_seconds()
        table = point_in_time_join(plan, engine=engine, **kw)
        elapsed, used = time.perf_counter() - t, cpu_seconds() - c
        checks = {
            "files": {g: len(f) for g, f in files.items()},
            "hash": content_hash(table) if i == 0 else checks.get("hash"),
            "rows": table.num_rows,
            "labels": meta["labels"],
            "nullRowsA": table.num_rows - pc.count(table["fg_a_f0"]).as_py(),
            "nullRowsB": table.num_rows - pc.count(table["fg_b_f0"]).as_py(),
            "lateLabels": meta["lateLabels"],
        }
        del table
        if i:
            times.append(elapsed)
            cpu.append(used)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if lean:  # --scale: the join only
        return {
            "engine": f"fti ({engine})",
            "tree": str(tree or "this"),
            "seconds": times,
            "median": statistics.median(times),
            "cpuSeconds": cpu,
            "cpuMedian": statistics.median(cpu),
            "peakRssMb": peak,
            **checks,
        }
    # What a training run adds on top of the join: the content hash and the Parquet write.
    import tempfile

    import pyarrow.parquet as pq

    table = point_in_time_join(plan, engine=engine, **kw)
    t = time.perf_counter()
    content_hash(table)
    hashed = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        pq.write_table(table, f"{tmp}/data.parquet", compression="zstd")
        written = time.perf_counter() - t
    return {
        "engine": f"fti ({engine})",
        "seconds": times,
        "median": statistics.median(times),
        "cpuSeconds": cpu,
        "cpuMedian": statistics.median(cpu),
        "peakRssMb": peak,
        "hashSeconds": hashed,
        "writeSeconds": written,
        "peakRssWithHashMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **checks,
    }


def child(
    kind: str,
    data: Path,
    repeat: int,
    timeout: float,
    engine: str = "auto",
    store: Path | None = None,
    tree: Path | None = None,
    lean: bool = False,
    partition_rows: int | None = None,
) -> dict:
    if kind == "ours":
        cmd = [sys.executable, __file__, "--child", "ours", "--data", str(data), "--repeat", str(repeat), "--engine", engine]
        cmd += ["--store", str(store)] if store is not None else []
        cmd += ["--tree", str(tree)] if tree is not None else []
        cmd += ["--lean"] if lean else []
        cmd += ["--partition-rows", str(partition_rows)] if partition_rows else []
    else:
        cmd = [str(FEAST_PY), str(HERE / "feast" / "run_feast.py"), "--data", str(data), "--repeat", str(repeat)]
    cap = int(float(os.environ.get("FTI_BENCH_FEAST_GB", "0")) * 2**30) if kind == "feast" else 0

    def limit() -> None:  # FTI_BENCH_FEAST_GB: Feast fails with MemoryError instead of exhausting a shared machine
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, preexec_fn=limit if cap else None)
    if proc.returncode != 0:
        return {"engine": kind, "error": (proc.stderr or proc.stdout)[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--entities", type=int, default=200_000)
    ap.add_argument("--late", type=float, default=0.03)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--feast-repeat", type=int, default=3)
    ap.add_argument("--skip-feast", action="store_true")
    ap.add_argument("--compare-duckdb", action="store_true", help="also time engine='duckdb' (one ASOF JOIN query)")
    ap.add_argument("--unit", choices=["us", "ns", "ns-sub"], default="us", help="event-time Parquet type (see above)")
    ap.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "training_join.json")
    ap.add_argument("--compaction", type=int, metavar="BATCHES", help="time fragmented vs compacted feature stores")
    ap.add_argument("--rounds", type=int, default=2, help="--compaction: alternating rounds of the two layouts")
    ap.add_argument("--child", choices=["ours"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--lean", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--partition-rows", type=int, help="the join's entity-partition size (default: the join's own)")
    ap.add_argument("--scale", type=int, nargs="+", metavar="LABELS", help="time the join at these label counts (see above)")
    ap.add_argument(
        "--baseline", type=Path, help="--scale: also time this pipeline_images tree (e.g. main's), after ours at each size"
    )
    ap.add_argument("--feast-max", type=int, default=3_000_000, help="--scale: run Feast up to this many labels")
    ap.add_argument("--generate-only", action="store_true", help="--scale: only generate the data (no lock needed, nice it)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_ours(args.data, args.repeat, args.engine, args.store, args.partition_rows, args.tree, args.lean)))
        return
    if args.scale:
        scale(args)
        return
    t = time.perf_counter()
    data = generate(args.labels, args.rows, args.entities, args.late, unit=args.unit)
    print(f"data: {data} ({time.perf_counter() - t:.1f}s)", flush=True)
    if args.compaction:
        compare_compaction(data, args)
        return
    results = {
        "data": json.loads((data / "meta.json").read_text()),
        "cpus": os.cpu_count(),
        "ours": child("ours", data, args.repeat, 1800),
    }
    print(json.dumps(results["ours"]), flush=True)
    if args.compare_duckdb:
        results["oursDuckdb"] = child("ours", data, args.repeat, 1800, engine="duckdb")
        print(json.dumps(results["oursDuckdb"]), flush=True)
    if not args.skip_feast:
        if FEAST_PY.exists():
            results["feast"] = child("feast", data, args.feast_repeat, 7200)
        else:
            results["feast"] = {"error": f"{FEAST_PY} missing: run bench/feast/setup.sh"}
        print(json.dumps(results["feast"]), flush=True)
        if "median" in results["feast"]:
            results["speedup"] = results["feast"]["median"] / results["ours"]["median"]
            results["cpuSpeedup"] = results["feast"]["cpuMedian"] / results["ours"]["cpuMedian"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    o = results["ours"]
    print(
        f"\nfti:   median {o['median']:.2f}s of {[round(s, 2) for s in o['seconds']]} (cpu {o['cpuMedian']:.2f}s), "
        f"peak RSS {o['peakRssMb']:.0f} MB, rows {o['rows']}/{o['labels']}, "
        f"null rows A/B {o['nullRowsA']}/{o['nullRowsB']} (late labels {o['lateLabels']})"
    )
    d = results.get("oursDuckdb", {})
    if "median" in d:
        print(
            f"fti duckdb engine: median {d['median']:.2f}s of {[round(s, 2) for s in d['seconds']]} (cpu {d['cpuMedian']:.2f}s), "
            f"peak RSS {d['peakRssMb']:.0f} MB, rows {d['rows']}: packed is {d['median'] / o['median']:.2f}x wall, "
            f"{d['cpuMedian'] / o['cpuMedian']:.2f}x cpu faster"
        )
    f = results.get("feast", {})
    if "median" in f:
        print(
            f"feast: median {f['median']:.2f}s of {[round(s, 2) for s in f['seconds']]} (cpu {f['cpuMedian']:.2f}s), "
            f"peak RSS {f['peakRssMb']:.0f} MB, rows {f['rows']}/{f['labels']}, null rows A/B {f['nullRowsA']}/{f['nullRowsB']}"
        )
        print(f"speedup: {results['speedup']:.1f}x wall, {results['cpuSpeedup']:.1f}x cpu")
    elif f:
        print("feast:", f.get("error"))


def scale(args: argparse.Namespace) -> None:
    """--scale: growth with the data - LABELS labels, 5 x LABELS rows per group, LABELS / 5
    entities (the default shape, scaled) - this tree, `--baseline`'s and Feast, one after
    another per size, each in its own subprocess (peak RSS its own)."""
    results = []
    for labels in args.scale:
        t = time.perf_counter()
        data = generate(labels, 5 * labels, max(1, labels // 5), args.late, unit=args.unit)
        print(f"data: {data} ({time.perf_counter() - t:.1f}s)", flush=True)
        if args.generate_only:
            continue
        row: dict = {"labels": labels, "loadBefore": os.getloadavg()[0]}
        runs = [("fti", None)] + ([("baseline", args.baseline)] if args.baseline else [])
        for name, tree in runs:
            rows = args.partition_rows if tree is None else None
            row[name] = child("ours", data, args.repeat, 3600, tree=tree, lean=True, partition_rows=rows)
            print(f"{labels} {name}: {json.dumps(row[name])}", flush=True)
        if not args.skip_feast and labels <= args.feast_max:
            row["feast"] = child("feast", data, args.feast_repeat, 7200) if FEAST_PY.exists() else {"error": "no Feast venv"}
            print(f"{labels} feast: {json.dumps(row['feast'])}", flush=True)
        row["loadAfter"] = os.getloadavg()[0]
        results.append(row)
    if args.generate_only:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_name("training_join_scale.json").write_text(json.dumps(results, indent=2))
    print("\n| labels | feature rows / group | engine | wall (median) | CPU | peak RSS | rows | null A / B | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results:
        for name in ("fti", "baseline", "feast"):
            r = row.get(name)
            if not r:
                continue
            if "median" not in r:
                print(
                    f"| {row['labels']:,} | {5 * row['labels']:,} | {name} | failed: {str(r.get('error'))[-200:]!r} | | | | | |"
                )
                continue
            print(
                f"| {row['labels']:,} | {5 * row['labels']:,} | {name} | {r['median']:.2f} s | {r['cpuMedian']:.2f} s | "
                f"{r['peakRssMb']:,.0f} MB | {r['rows']:,} | {r['nullRowsA']:,} / {r['nullRowsB']:,} | "
                f"{row['loadBefore']:.1f} / {row['loadAfter']:.1f} |"
            )


def compare_compaction(data: Path, args: argparse.Namespace) -> None:
    """--compaction: the join on the fragmented and on the compacted store, alternating."""
    t = time.perf_counter()
    frag, compact = feature_stores(data, args.compaction)
    print(f"stores: {frag}, {compact} ({time.perf_counter() - t:.1f}s)", flush=True)
    rounds = []
    for r in range(args.rounds):
        pair = {
            name: child("ours", data, args.repeat, 1800, store=root)
            for name, root in (("fragmented", frag), ("compacted", compact))
        }
        for name, res in pair.items():
            if "median" not in res:
                raise SystemExit(f"{name}: {res.get('error')}")
            print(f"round {r + 1} {name}: {json.dumps(res)}", flush=True)
        assert pair["fragmented"]["hash"] == pair["compacted"]["hash"], "the two layouts must join to the same rows"
        rounds.append(pair)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_name("training_join_compaction.json").write_text(json.dumps({"rounds": rounds}, indent=2))
    print("\n| round | layout | files fg_a / fg_b | median wall | median cpu | peak RSS | rows |\n|---|---|---|---|---|---|---|")
    for r, pair in enumerate(rounds, 1):
        for name, res in pair.items():
            print(
                f"| {r} | {name} | {res['files']['fg_a']} / {res['files']['fg_b']} | {res['median']:.2f} s | "
                f"{res['cpuMedian']:.2f} s | {res['peakRssMb']:.0f} MB | {res['rows']} |"
            )
        f, c = pair["fragmented"], pair["compacted"]
        wall, cpu, rss = f["median"] / c["median"], f["cpuMedian"] / c["cpuMedian"], f["peakRssMb"] / c["peakRssMb"]
        print(f"| {r} | ratio fragmented / compacted | | {wall:.2f}x | {cpu:.2f}x | {rss:.2f}x | |")


if __name__ == "__main__":
    main()
