"""The chart's configuration reference in docs/install.md, generated from values.schema.json.

Each value: its dotted key, type, default (values.yaml) and description (the schema). The
table sits between two marker comments in docs/install.md; `make manifests` rewrites it and
tests/unit/operator/test_install_manifest.py fails when it is stale, so the reference can
only say what the schema, and therefore helm, enforces.

    python tools/values_reference.py            # rewrite the table in docs/install.md
    python tools/values_reference.py --check    # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

import yaml
from generated import CHART, REPO, write_or_check  # tools/ is this script's directory, first on sys.path

DOC = REPO / "docs" / "install.md"
START = "<!-- values-reference:start (tools/values_reference.py) -->"
END = "<!-- values-reference:end -->"


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in schema:
        return schema
    node: Any = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return {**node, **{k: v for k, v in schema.items() if k != "$ref"}}


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _default(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value) if not isinstance(value, str) else value
    return f"`{text}`" if text not in ("", '""') else '`""`'


def rows(schema: dict[str, Any], values: Any, root: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, description) for every leaf the schema describes, in its order."""
    for key, declared in schema.get("properties", {}).items():
        if not prefix and key == "global":
            continue
        sub = _resolve(declared, root)
        path = f"{prefix}{key}"
        default = values.get(key) if isinstance(values, dict) else None
        if sub.get("type") == "object" and sub.get("properties") and sub.get("additionalProperties") is False:
            yield from rows(sub, default, root, path + ".")
        else:
            yield path, _type(sub), _default(default), sub.get("description", "")


def table() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    lines = ["| value | type | default | description |", "|---|---|---|---|"]
    for key, kind, default, description in rows(schema, values, schema):
        cell = description.replace("|", "\\|")
        lines.append(f"| `{key}` | {kind} | {default} | {cell} |")
    return "\n".join(lines)


def rewritten(doc: str) -> str:
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    if not rest or END not in rest:
        raise SystemExit(f"{DOC}: the markers {START!r} and {END!r} are missing")
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/install.md's reference is stale")
    args = parser.parse_args(argv)
    return write_or_check(DOC, rewritten(DOC.read_text()), args.check)


if __name__ == "__main__":
    sys.exit(main())
