"""Print the third-party requirements of the project's packages, one per line, for pip.

    python tools/requirements.py operator/pyproject.toml 'pipeline_images/pyproject.toml[serving,s3]'
    python tools/requirements.py --build-system operator/pyproject.toml pipeline_images/pyproject.toml

Every Dockerfile installs the dependencies in a layer of their own that is keyed only by
the pyproject files (and this script), and the packages themselves afterwards without
dependencies, so a source change rebuilds an image in seconds instead of reinstalling
every library (docs/images.md). The requirements come from ``[project].dependencies``
plus the named extras; a requirement on one of the listed projects themselves (the
pipelines depend on ``fti-operator``) is left out, since that one is built from the
source. ``--extras-only`` leaves out ``[project].dependencies``: the pipeline images
install what the three share first, in a layer they share, then their own extras.
``--build-system`` prints ``[build-system].requires`` instead, which the wheel
build installs ahead of the sources for the same reason. Standard library only: it runs
on the bare base image.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SPEC = re.compile(r"^(?P<path>[^\[]+)(?:\[(?P<extras>[^\]]*)\])?$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(specs: list[str], build_system: bool = False, extras_only: bool = False) -> list[str]:
    projects = []
    for spec in specs:
        match = _SPEC.match(spec)
        if match is None:
            raise SystemExit(f"requirements.py: {spec!r} is not PATH or PATH[extra,...]")
        data = tomllib.loads(Path(match["path"]).read_text())
        extras = [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
        projects.append((data, extras))
    own = {_normalize(data["project"]["name"]) for data, _ in projects}
    lines: list[str] = []
    for data, extras in projects:
        if build_system:
            found = list(data["build-system"]["requires"])
        else:
            optional = data["project"].get("optional-dependencies", {})
            missing = [e for e in extras if e not in optional]
            if missing:
                raise SystemExit(f"requirements.py: {data['project']['name']} has no extra {', '.join(missing)}")
            base = [] if extras_only else data["project"].get("dependencies", [])
            found = [*base, *(r for e in extras for r in optional[e])]
        for requirement in found:
            name = _NAME.match(requirement)
            if name and _normalize(name[1]) in own:
                continue
            if requirement not in lines:
                lines.append(requirement)
    return lines


if __name__ == "__main__":
    flags = {"--build-system", "--extras-only"}
    args = sys.argv[1:]
    specs = [a for a in args if a not in flags]
    print("\n".join(requirements(specs, build_system="--build-system" in args, extras_only="--extras-only" in args)))
