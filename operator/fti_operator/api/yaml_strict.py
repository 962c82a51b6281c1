"""YAML in, the same values kubectl would send to the API server, or a refusal naming the place.

kubectl turns a YAML manifest into JSON with go-yaml (through sigs.k8s.io/yaml) before the
API server sees it, so `fti local` reads YAML the way that parser does, not the way PyYAML
does by default (docs/security.md, "Manifests"):

- timestamps stay strings (go-yaml hands a timestamp-looking scalar to JSON as its text;
  the CRD's `date-time` format then decides, so a bare date is refused in both places);
- integers are decimal, 0x, 0o/0 octal or 0b; floats are decimal with an exponent; no
  sexagesimal `1:30` (PyYAML's YAML 1.1 reads it as 90);
- `y`/`n` are booleans, as go-yaml's YAML 1.1 table has them;
- what JSON cannot carry is refused: NaN and infinities (an integer beyond int64 becomes a
  float, as in go-yaml, which an integer field then refuses);

and it is stricter where a silent choice would hide a mistake:

- a key given twice in one mapping is refused (go-yaml keeps the last one silently);
- aliases may not expand a document beyond MAX_NODES nodes (an "alias bomb" that is tiny
  on disk and gigabytes once expanded);
- only the standard tags (no Python objects): this is `yaml.SafeLoader` underneath.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A manifest of this project is a few hundred nodes; 100k is generous and still small in memory.
MAX_NODES = 100_000
INT64 = (-(2**63), 2**63 - 1)


class YamlProblem(ValueError):
    """Bad YAML at a place in the text: `doc` is the 1-based document, `line` 1-based (or None)."""

    def __init__(self, message: str, doc: int, line: int | None = None, path: str = "<yaml>"):
        super().__init__(message)
        self.message, self.doc, self.line, self.path = message, doc, line, path

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})" if self.line else self.message


_INT = re.compile(r"^[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")
_BOOL = re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with go-yaml's implicit types, duplicate keys refused and alias expansion bounded."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML's class-level table, replaced here
        first: [(tag, rx) for tag, rx in resolvers if tag not in {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int"}]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a string", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {escape(str(key))!r} (first at line {seen[key] + 1}); "
                    "the API server would silently keep only the last one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_bool(self, node: ScalarNode) -> bool:
        return str(self.construct_scalar(node)) in _TRUE

    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        body = text.lstrip("+-")
        # 0b, 0o, 0x as Python reads them; a leading 0 alone is octal (Go's base-0 ParseInt).
        legacy_octal = len(body) > 1 and body[0] == "0" and body[1].isdigit()
        try:
            value = int(text.replace("0", "0o", 1) if legacy_octal else text, 0 if not body.isdigit() or legacy_octal else 10)
        except ValueError:  # 08 is not octal: go-yaml reads it as the float 8
            return float(text)  # type: ignore[return-value]
        # Beyond int64 go-yaml reads a float (JSON then says 1e+23): an integer field refuses
        # it, a number field takes it, in both places.
        return value if INT64[0] <= value <= INT64[1] else float(value)  # type: ignore[return-value]


# Replace the YAML 1.1 resolvers of bool/int/float with go-yaml's (same first characters
# are looked up lazily, so register them for every character that may start one).
for _tag, _rx, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "yYnNtTfFoO"),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
):
    for _ch in _first:
        _list = [(t, r) for t, r in StrictLoader.yaml_implicit_resolvers.get(_ch, []) if t != _tag]
        # int before float: "1" is an int, "1.0" a float (the int pattern does not take a dot).
        StrictLoader.yaml_implicit_resolvers[_ch] = [*_list, (_tag, _rx)]
for _ch, _list in StrictLoader.yaml_implicit_resolvers.items():
    _list.sort(
        key=lambda tr: {"tag:yaml.org,2002:bool": 0, "tag:yaml.org,2002:int": 1, "tag:yaml.org,2002:float": 2}.get(tr[0], -1)
    )
StrictLoader.add_constructor("tag:yaml.org,2002:bool", StrictLoader.construct_yaml_bool)
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)


def escape(text: str) -> str:
    """Non-ASCII characters as \\uXXXX, so a look-alike letter (a Cyrillic i, U+0456, for a Latin one) shows as what it is."""
    return text.encode("ascii", "backslashreplace").decode("ascii") if not text.isascii() else text


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """Nodes in the document once every alias is expanded (shared nodes counted each time)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a recursive alias never finishes expanding
    if isinstance(node, SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_NODES + 1)
    return memo[key]


def _json_problems(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Values JSON (and so the API server) cannot carry, with their field paths."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                yield (path or "<root>", f"mapping key {k!r} must be a string (quote it)")
                continue
            yield from _json_problems(v, f"{path}.{escape(k)}" if path else escape(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_problems(v, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield (path or "<root>", f"{value} is not a number JSON can carry (NaN and infinities are refused)")


def load_documents(text: str) -> Iterator[tuple[int, Any, list[tuple[str, str]]]]:
    """(1-based document number, value, problems) per non-empty document of `text`.

    A YAML syntax error or a refused construct raises YamlProblem (the rest of the stream
    cannot be trusted); values JSON cannot carry come back as problems of their document.
    """
    loader = StrictLoader(text)
    doc = 0
    try:
        while loader.check_node():
            doc += 1
            node = loader.get_node()
            if node is None:
                continue
            if _expanded_size(node, {}) > MAX_NODES:
                raise YamlProblem(
                    f"document expands to more than {MAX_NODES} nodes through aliases (an alias bomb?)",
                    doc,
                    node.start_mark.line + 1,
                )
            value = loader.construct_document(node)
            if value is None:
                continue
            yield doc, value, list(_json_problems(value))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlProblem(message or str(exc), max(doc, 1), mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(str(exc), max(doc, 1)) from None
    finally:
        loader.dispose()
