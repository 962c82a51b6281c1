"""Parse manifests into the typed kinds, with errors that name the field path.

The embedded runner and the operator parse with the same models, so a bad manifest
gets the same message locally as the one the API server's schema gives in a cluster.
Files are read as kubectl reads them (yaml_strict.py), every document must be one of the
three kinds, and every problem is reported as `FILE:doc#N: field.path: message`
(docs/security.md, "Manifests").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .common import FieldError
from .feature_pipeline import FeaturePipeline
from .identity import API_VERSION
from .inference_service import InferenceService
from .training_pipeline import TrainingPipeline
from .yaml_strict import YamlProblem, escape, load_documents

Resource = FeaturePipeline | TrainingPipeline | InferenceService
KINDS: dict[str, type[Resource]] = {
    "FeaturePipeline": FeaturePipeline,
    "TrainingPipeline": TrainingPipeline,
    "InferenceService": InferenceService,
}


class ManifestError(ValueError):
    """Manifests that do not fit their kinds.

    `problems` are (field path, message); `located` the same with the place they come from,
    `FILE:doc#N` (N counts the file's documents from 1), and each line of the text is
    `FILE:doc#N: field.path: message`, one problem per line.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]], located: list[tuple[str, str, str]] | None = None):
        self.source = source
        self.problems = problems
        self.located = located if located is not None else [(source, p, m) for p, m in problems]
        super().__init__("\n".join(f"{src}: {path}: {msg}" for src, path, msg in self.located))

    @classmethod
    def merge(cls, errors: list[ManifestError]) -> ManifestError:
        if len(errors) == 1:
            return errors[0]
        return cls(
            "; ".join(e.source for e in errors), [p for e in errors for p in e.problems], [x for e in errors for x in e.located]
        )


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + escape(str(part))
    return out or "<root>"


def _shown(value: Any) -> str:
    """The offending value, short and with look-alike characters escaped."""
    text = repr(value)
    return escape(text if len(text) <= 80 else text[:77] + "...")


# The parts of a pydantic error location that name a union member or a validator, not a field
# (`int`, `str`, `function-after[...]`, `literal['a']`, `list[...]`): a field such as
# `interval` or `strategy` is kept.
_UNION_TAG = re.compile(r"^(int|str|float|bool|none|bytes|constrained-\w+|function-.+|\w[\w-]*\[.*\])$")


def format_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    """pydantic's errors as (field path, message), worded like the API server's where they overlap."""
    errors = exc.errors()
    problems = []
    missing = {(tuple(map(str, e["loc"][:-1])), str(e["loc"][-1])) for e in errors if e["type"] == "missing"}
    for err in errors:
        loc = [p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))]
        msg = err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            # A cross-field check that names its sub-field, like the CEL rule's fieldPath.
            loc = [*loc, *cause.field.split(".")]
        if err["type"] == "missing":
            msg = "Required value: this field must be set"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field" + _did_you_mean(
                str(loc[-1]), [n for parent, n in missing if parent == tuple(map(str, loc[:-1]))]
            )
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif err["type"] in _SHOW_INPUT:
            value = err.get("input")
            msg = f"{msg}, got {_shown(value)}"
            if isinstance(value, float) and abs(value) >= 2**63:
                msg += " (beyond 64-bit integers, which YAML-to-JSON turns into a float)"
        problems.append((_path(loc), escape(msg)))
    return problems


# Type and bound errors: the value the user wrote helps (a quoted number, a float for a count).
_SHOW_INPUT = {
    "int_type",
    "int_from_float",
    "float_type",
    "string_type",
    "bool_type",
    "literal_error",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "string_pattern_mismatch",
}


def _did_you_mean(name: str, candidates: list[str]) -> str:
    """A hint when an unknown field is a missing one misspelt, say with a look-alike letter."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    if not close:
        return ""
    hint = f"; did you mean {close[0]!r}?"
    if not name.isascii():
        hint += f" ('{escape(name)}' contains non-ASCII characters)"
    return hint


def parse_resource(doc: dict[str, Any], source: str = "<manifest>") -> Resource:
    if not isinstance(doc, dict):
        raise ManifestError(source, [("<root>", "a manifest must be a mapping")])
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != API_VERSION:
        raise ManifestError(
            source,
            [("apiVersion", f"must be {API_VERSION!r} (fti local runs only fti.dev resources), got {_shown(api_version)}")],
        )
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ManifestError(source, [("kind", f"must be one of {', '.join(KINDS)}, got {_shown(kind)}")])
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ManifestError(source, format_validation_error(exc)) from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        # A check that met a value it did not expect: still the user's input, never a traceback.
        raise ManifestError(source, [("<root>", f"cannot validate: {escape(str(exc))}")]) from None


def iter_manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file()))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return files


def load_manifests(paths: Iterable[str | Path]) -> list[Resource]:
    """Every resource in the files (directories: their *.yaml), in file order.

    Every document must be an fti.dev kind: one with another apiVersion or kind (a typo,
    or an object meant for a cluster) is refused, never skipped, because skipping it would
    quietly run less than the user asked for. All problems of all files are reported at once.
    """
    resources: list[Resource] = []
    errors: list[ManifestError] = []
    for f in iter_manifest_files(paths):
        try:
            text = f.read_text(encoding="utf-8")
            for n, doc, problems in load_documents(text):
                source = f"{f}:doc#{n}"
                if problems:
                    errors.append(ManifestError(source, problems))
                    continue
                try:
                    resources.append(parse_resource(doc, source))
                except ManifestError as exc:
                    errors.append(exc)
        except YamlProblem as exc:
            where = f" (line {exc.line})" if exc.line else ""
            errors.append(ManifestError(f"{f}:doc#{exc.doc}", [(exc.path, f"{escape(exc.message)}{where}")]))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ManifestError(str(f), [("<file>", f"cannot read: {exc}")]))
    if errors:
        raise ManifestError.merge(errors)
    return resources
