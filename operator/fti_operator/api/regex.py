"""Regular expressions users write in a spec: they must compile, in the RE2 subset.

The data checks run them with Python's `re`; RE2 (Go, Kubernetes CEL, most engines a
platform puts beside ours) has no backtracking constructs. A pattern in the common subset
means the same wherever it is read, and cannot take exponential time. The API server cannot
compile a user's pattern at admission, so this is the operator's check (docs/concepts.md,
"Validation"): `fti local` refuses the manifest, the operator reports the object InvalidSpec.
"""

from __future__ import annotations

import re

# (what starts the construct, what it is called) for constructs Python has and RE2 has not.
_GROUP_PREFIXES = (
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?>", "atomic group (?>...)"),
    ("(?(", "conditional (?(...)...)"),
    ("(?P=", "backreference (?P=name)"),
)


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class starting at pattern[i] == '['."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1  # a leading ] is a literal
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


def _unsupported(pattern: str) -> str | None:
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt.isdigit() and nxt != "0":
                return f"backreference \\{nxt}"
            if nxt == "Z":
                return "\\Z (use $ or \\z)"
            i += 2
            continue
        if ch == "[":
            i = _class_end(pattern, i)
            continue
        for prefix, name in _GROUP_PREFIXES:
            if pattern.startswith(prefix, i):
                return name
        if ch in "*+?}" and pattern[i + 1 : i + 2] == "+":
            return f"possessive quantifier {ch}+"
        i += 1
    return None


def regex_problem(pattern: str) -> str | None:
    """None if `pattern` compiles and stays in the RE2 subset; else what is wrong with it."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"regex does not compile: {exc}"
    construct = _unsupported(pattern)
    if construct:
        return f"regex uses {construct}, which RE2 does not support: keep to the RE2 subset (no lookaround or backreferences)"
    return None
