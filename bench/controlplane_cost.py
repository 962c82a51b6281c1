"""Cost of the integration-test control plane: build, disk, start, memory.

Usage (from the repo root, with the dev venv):
    .venv/bin/python bench/controlplane_cost.py                 # warm: uses the built binaries
    .venv/bin/python bench/controlplane_cost.py --cold          # also a cold build in a fresh cache dir
    .venv/bin/python bench/controlplane_cost.py --starts 5 --settle 30

Prints a Markdown table for bench/RESULTS.md. Memory is RSS from /proc/<pid>/status
(VmRSS), sampled once a second over ``--settle`` seconds after the control plane is
ready; "at rest" is the last sample (nothing else talks to the API server).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers, never the repo root (its operator/ dir)

from controlplane.binaries import BUILD_SCRIPT, cache_root, find_binaries, pinned_versions  # noqa: E402
from controlplane.cluster import ControlPlane  # noqa: E402


def du(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cold_build(nice: int) -> tuple[float, float, Path]:
    """Build into a fresh cache dir; returns (wall s, CPU s of all children, cache dir).

    CPU seconds (user+sys) are the comparable number on a shared machine: wall
    time depends on whoever else is compiling or testing at the same moment.
    """
    cache = Path(tempfile.mkdtemp(prefix="fti-cold-cache-"))
    env = {**os.environ, "FTI_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(["nice", "-n", str(nice), "bash", str(BUILD_SCRIPT)], env=env, check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, cache


def remove_cache(cache: Path) -> None:
    # The Go module cache is read-only by design.
    subprocess.run(["chmod", "-R", "u+w", str(cache)], check=False)
    shutil.rmtree(cache, ignore_errors=True)


def machine() -> str:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    go = subprocess.run(
        ["bash", "-c", "PATH=$PATH:/usr/local/go/bin go version"], capture_output=True, text=True, check=False
    ).stdout.strip()  # no Go: the line says so by being empty
    return f"{os.cpu_count()} cores ({cpu}), {int(mem.split()[1]) / 2**20:.0f} GiB RAM, {platform.platform()}, {go}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="time a cold build into a fresh temporary cache dir")
    parser.add_argument("--starts", type=int, default=3, help="warm starts to time")
    parser.add_argument("--settle", type=int, default=20, help="seconds of RSS sampling after readiness")
    parser.add_argument("--nice", type=int, default=0, help="niceness of the cold build (be kind to a shared machine)")
    parser.add_argument("--keep", action="store_true", help="keep the cold build's cache dir")
    args = parser.parse_args()

    rows = [("machine", machine()), ("versions", " ".join(f"{k}={v}" for k, v in pinned_versions().items()))]
    cache = None
    if args.cold:
        wall, cpu, cache = cold_build(args.nice)
        base = cache / "controlplane" / pinned_versions()["K8S_VERSION"]
        rows.append(
            (
                "cold build (fresh cache, incl. module download)",
                f"{wall:.0f} s wall, {cpu:.0f} s CPU (user+sys), nice {args.nice}",
            )
        )
    else:
        base = cache_root() / "controlplane" / pinned_versions()["K8S_VERSION"]
    rows += [
        ("disk: binaries", mib(du(base / "bin"))),
        ("disk: Go module cache", mib(du(base / "go" / "mod"))),
        ("disk: Go build cache", mib(du(base / "go" / "build"))),
        ("disk: scratch modules", mib(du(base / "src"))),
    ]

    if args.cold:
        os.environ["FTI_CONTROLPLANE_BIN"] = str(base / "bin")
    binaries = find_binaries()
    starts, rss = [], {}
    for i in range(args.starts):
        with tempfile.TemporaryDirectory(prefix="fti-bench-cp-") as tmp:
            plane = ControlPlane(binaries, Path(tmp))
            with plane:
                starts.append(plane.startup_seconds)
                if i == args.starts - 1:  # memory of the last one, after settling
                    for _ in range(args.settle):
                        time.sleep(1)  # a sampling interval, not synchronisation
                        rss = {p.name: rss_kib(p.pid) for p in plane.processes}
    rows.append(
        (
            "warm start to ready (etcd+apiserver+KCM, incl. PKI)",
            f"median {statistics.median(starts):.1f} s (min {min(starts):.1f}, max {max(starts):.1f}, n={len(starts)})",
        )
    )
    for name, kib in rss.items():
        rows.append((f"RSS at rest: {name}", mib(kib * 1024)))
    rows.append(("RSS at rest: total", mib(sum(rss.values()) * 1024)))

    if cache is not None and not args.keep:
        remove_cache(cache)
    print("| measure | value |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
