"""What every generator in tools/ does with its output: write it, or with --check say it is stale.

A generated file is committed; `make manifests` rewrites it and the unit tests (or
`--check`) fail when the committed copy differs from what the generator makes now.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "fti-operator"


def write_or_check(path: Path, text: str, check: bool) -> int:
    """Exit status: with `check`, 1 when `path` does not hold `text`; else write it."""
    name = path.relative_to(REPO)
    if check:
        if not path.exists() or path.read_text() != text:
            print(f"{name} is stale: run `make manifests`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    print(f"wrote {name}")
    return 0
