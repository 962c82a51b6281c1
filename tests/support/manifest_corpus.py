"""The bad-manifest corpus (tests/manifests/): cases and the rule for "names the field".

Each file under tests/manifests/invalid/ holds one manifest and a line
`# expect: <field path> <substring of the message>`. The same cases run through
`load_manifests` (unit) and through the real API server (integration), so the
embedded runner and a cluster are held to the same verdicts. A case marked
`# refused-by: operator` is one the API server cannot judge (a regular expression that
does not compile): admission accepts it, `fti local` refuses it and the operator reports
the object InvalidSpec before it creates anything (docs/concepts.md, "Validation").

tests/manifests/invalid-yaml/ holds files that are wrong as YAML or as a stream of
documents (duplicate keys, an alias bomb, NaN, a mistyped apiVersion in a second
document): they cannot be loaded into one dict, so they are read as text by the tests. A
`# kubectl: accepts` line marks where kubectl is more lenient than `fti local`, on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1] / "manifests"
INVALID_DIR = ROOT / "invalid"
VALID_DIR = ROOT / "valid"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

INVALID_YAML_DIR = ROOT / "invalid-yaml"

_EXPECT = re.compile(r"^#\s*expect:\s*(\S+)\s+(.+?)\s*$", re.MULTILINE)
_REFUSED_BY = re.compile(r"^#\s*refused-by:\s*(\S+)\s*$", re.MULTILINE)
_KUBECTL = re.compile(r"^#\s*kubectl:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class BadManifest:
    path: Path
    field: str  # the field path the error must name, e.g. spec.online.minReplicas
    message: str  # a substring the error message must contain (case-insensitive)
    doc: dict
    refused_by: str = "admission"  # or "operator": admission accepts it (see the module docstring)

    @property
    def id(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class BadYaml:
    path: Path
    field: str
    message: str
    kubectl_accepts: bool  # kubectl lets it through (the last duplicate key wins); fti local does not

    @property
    def id(self) -> str:
        return self.path.stem


def _annotated(directory: Path) -> list[tuple[Path, str, str, str]]:
    """(path, field, message, text) of each file, from its `# expect:` line."""
    out = []
    for path in sorted(directory.glob("*.yaml")):
        text = path.read_text()
        match = _EXPECT.search(text)
        if not match:
            raise ValueError(f"{path}: no '# expect: <field path> <message substring>' line")
        out.append((path, match.group(1), match.group(2), text))
    return out


def invalid_cases() -> list[BadManifest]:
    cases = []
    for path, field, message, text in _annotated(INVALID_DIR):
        refused_by = _REFUSED_BY.search(text)
        cases.append(BadManifest(path, field, message, yaml.safe_load(text), refused_by.group(1) if refused_by else "admission"))
    return cases


def invalid_yaml_cases() -> list[BadYaml]:
    cases = []
    for path, field, message, text in _annotated(INVALID_YAML_DIR):
        kubectl = _KUBECTL.search(text)
        cases.append(BadYaml(path, field, message, bool(kubectl and kubectl.group(1) == "accepts")))
    return cases


def valid_files() -> list[Path]:
    """tests/manifests/valid/ and every YAML under examples/ (documents of other groups are skipped by callers)."""
    files = sorted(VALID_DIR.glob("*.yaml"))
    if EXAMPLES_DIR.is_dir():
        files += sorted(p for p in EXAMPLES_DIR.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    return files


def fti_documents(path: Path) -> list[dict]:
    """The fti.dev documents of a file (an examples/ directory may hold Argo CD objects too)."""
    return [
        d
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("fti.dev/")
    ]


def path_matches(actual: str, expected: str) -> bool:
    """`actual` is the expected field or inside it (spec.a matches spec.a, spec.a.b, spec.a[0])."""
    return actual == expected or actual.startswith((expected + ".", expected + "["))
