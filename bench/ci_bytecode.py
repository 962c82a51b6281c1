"""What a Python process of the test suite costs with and without cached bytecode.

The tests start hundreds of Python processes: `fti` commands, operator starts, pipeline
pods. The venv is installed `--no-compile` (Makefile), so whether those processes find
bytecode depends on whether Python may write it: with PYTHONDONTWRITEBYTECODE set, every
one of them compiles pandas, pyarrow, kopf, typer and our own modules from source again.
The Makefile unexports that variable (docs/contributing.md, "How long CI takes, and where").

Side by side, interleaved, in this venv: each command once with no bytecode to read or
write (a fresh PYTHONPYCACHEPREFIX and PYTHONDONTWRITEBYTECODE=1, what every such process
paid before) and once with the bytecode a first run wrote (a second prefix, written once
before the measured rounds). The prefixes keep the venv's own __pycache__ out of both.

Usage (from the repo root, with the dev venv):
    .venv/bin/python bench/ci_bytecode.py              # 5 rounds
    .venv/bin/python bench/ci_bytecode.py --rounds 9

Prints a Markdown table for bench/RESULTS.md: median wall and CPU (user + system) seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "`fti local status` (each `fti` command)": ["-m", "fti_operator.cli", "local", "status"],
    "operator import (each operator start)": ["-c", "import fti_operator.controller.app"],
    "feature pipeline import (each feature pod)": ["-c", "import fti_pipelines.feature.pipeline"],
    "training pipeline import (each training pod)": ["-c", "import fti_pipelines.training.run"],
}


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, user + system CPU) seconds of one `python ARGS`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory(prefix="ci-bytecode-") as tmp:
        work = Path(tmp)
        base["FTI_STATE_DIR"] = str(work / "state")  # an empty state: `fti local status` says so
        warm = dict(base, PYTHONPYCACHEPREFIX=str(work / "warm"))
        for argv in COMMANDS.values():  # the first run writes the bytecode
            run(argv, warm, work)
        results: dict[str, dict[str, list[tuple[float, float]]]] = {name: {"cold": [], "warm": []} for name in COMMANDS}
        load = [os.getloadavg()[0]]
        for i in range(args.rounds):
            for name, argv in COMMANDS.items():
                cold = dict(base, PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(work / f"cold-{i}"))
                results[name]["cold"].append(run(argv, cold, work))
                results[name]["warm"].append(run(argv, warm, work))
        load.append(os.getloadavg()[0])
    print(f"{args.rounds} rounds, load average {load[0]:.1f} -> {load[1]:.1f}\n")
    print("| process | no bytecode: wall / CPU s | cached bytecode: wall / CPU s | CPU ratio |")
    print("|---|---|---|---|")
    for name, by in results.items():
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in by.items()}
        print(
            f"| {name} | {med['cold'][0]:.2f} / {med['cold'][1]:.2f} | {med['warm'][0]:.2f} / {med['warm'][1]:.2f} "
            f"| {med['cold'][1] / med['warm'][1]:.1f}x |"
        )


if __name__ == "__main__":
    main()
