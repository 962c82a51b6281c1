"""Two operator versions side by side: bench/operator_bench.py interleaved, A B A B ..., and ratios.

    .venv/bin/python bench/operator_compare.py --old-tree ../old --rounds 2 --n 300 --idle 30 --samples 20 --dir out/
    .venv/bin/python bench/operator_compare.py --dir out/            # only summarize the JSON already there

The machines are shared and noisy: running the two sides alternately spreads the noise over
both, and a ratio per round (new / old) is more telling than either absolute number. The old
side runs as admin by default (code older than the chart's RBAC PUTs children, which the chart
refuses; `--old-identity chart` for old code that applies them); the new side as the chart's
ServiceAccount. Each run's load average is in its JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

METRICS = {
    "objects/s": lambda r: r["throughput"]["objects_per_second"],
    "creates done (s)": lambda r: r["throughput"]["apply_seconds"],
    "all children (s)": lambda r: r["throughput"]["all_children_seconds"],
    "children after last create (s)": lambda r: round(
        r["throughput"]["all_children_seconds"] - r["throughput"]["apply_seconds"], 2
    ),
    "apiserver requests/object": lambda r: r["burst_cost"]["apiserver_requests_per_object"],
    "operator requests/object": lambda r: r["burst_cost"]["operator_requests_per_object"],
    "operator writes/object": lambda r: r["burst_cost"]["operator_writes_per_object"],
    "operator Events/object": lambda r: round(
        sum(v for k, v in r["burst_cost"]["operator_requests"].items() if k.split(" ")[1] == "events")
        / r["throughput"]["objects"],
        2,
    ),
    "operator CPU-s to all children": lambda r: r["burst_cost"]["cpu_seconds_to_all_children"]["operator"],
    "apiserver CPU-s to all children": lambda r: r["burst_cost"]["cpu_seconds_to_all_children"]["kube-apiserver"],
    "create->CronJob p50 (ms)": lambda r: r["latency_ms"]["p50"],
    "RSS at rest (MB)": lambda r: r["rss_mb_at_rest"],
    "operator requests when idle": lambda r: r["idle"]["operator_handler_requests"],
    "load (1 min) at burst end": lambda r: r["throughput"]["loadavg"][0],
}


def run(tree: Path, identity: str, out: Path, args) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "operator_bench.py"), "--n", str(args.n), "--idle", str(args.idle)]
    cmd += ["--samples", str(args.samples), "--tree", str(tree), "--identity", identity, "--out", str(out)]
    with out.with_suffix(".log").open("w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def summarize(directory: Path) -> None:
    rounds = sorted({p.stem.split("-", 1)[1] for p in directory.glob("old-*.json")})
    pairs = [
        (json.loads((directory / f"old-{r}.json").read_text()), json.loads((directory / f"new-{r}.json").read_text()))
        for r in rounds
        if (directory / f"new-{r}.json").exists()
    ]
    old, new = pairs[0]
    print(f"old {old['commit']} ({old['identity']}) vs new {new['commit']} ({new['identity']}), N={old['n_per_kind']} per kind")
    print("| metric | " + " | ".join(f"old r{i + 1} | new r{i + 1} | new/old" for i in range(len(pairs))) + " | median new/old |")
    print("|---|" + "---|---|---|" * len(pairs) + "---|")
    for name, get in METRICS.items():
        cells, ratios = [], []
        for o, n in pairs:
            a, b = get(o), get(n)
            ratio = round(b / a, 2) if a else None
            ratios += [ratio] if ratio is not None else []
            cells += [str(a), str(b), str(ratio) if ratio is not None else "—"]
        med = round(statistics.median(ratios), 2) if ratios else "—"
        print(f"| {name} | " + " | ".join(cells) + f" | {med} |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-tree", type=Path, default=None, help="checkout of the old code, with its own .venv")
    ap.add_argument("--new-tree", type=Path, default=ROOT)
    ap.add_argument(
        "--old-identity", choices=("admin", "chart"), default="admin", help="chart: old code that already applies children"
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--idle", type=int, default=30)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--dir", type=Path, required=True, help="where the JSON and logs of each run go")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.old_tree is not None:
        for r in range(1, args.rounds + 1):
            run(args.old_tree.resolve(), args.old_identity, args.dir / f"old-{r}.json", args)
            run(args.new_tree.resolve(), "chart", args.dir / f"new-{r}.json", args)
    summarize(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
