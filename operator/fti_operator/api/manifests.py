"""Parse manifests into the typed kinds, with errors that name the field path.

The embedded runner and the operator parse with the same models, so a bad manifest
gets the same message locally as the one the API server's schema gives in a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .common import FieldError
from .feature_pipeline import FeaturePipeline
from .identity import API_VERSION, GROUP
from .inference_service import InferenceService
from .training_pipeline import TrainingPipeline

Resource = FeaturePipeline | TrainingPipeline | InferenceService
KINDS: dict[str, type[Resource]] = {
    "FeaturePipeline": FeaturePipeline,
    "TrainingPipeline": TrainingPipeline,
    "InferenceService": InferenceService,
}


class ManifestError(ValueError):
    """A manifest that does not fit its kind; `problems` are (field path, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        super().__init__(f"{source}: invalid manifest\n{lines}")


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def format_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[", "int", "str")))]
        msg = err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            # A cross-field check that names its sub-field, like the CEL rule's fieldPath.
            loc = [*loc, *cause.field.split(".")]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        problems.append((_path(loc), msg))
    return problems


def parse_resource(doc: dict[str, Any], source: str = "<manifest>") -> Resource:
    if not isinstance(doc, dict):
        raise ManifestError(source, [("<root>", "a manifest must be a mapping")])
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != API_VERSION:
        raise ManifestError(source, [("apiVersion", f"expected {API_VERSION!r}, got {api_version!r}")])
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ManifestError(source, [("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")])
    name = (doc.get("metadata") or {}).get("name", "?")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ManifestError(f"{source}: {kind}/{name}", format_validation_error(exc)) from None


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


def load_manifests(paths: Iterable[str | Path], *, strict_kinds: bool = False) -> list[Resource]:
    """Every fti.dev resource in the files (directories: their *.yaml), in file order.

    Documents of other API groups are skipped (a directory may hold an Argo CD
    Application, say) unless `strict_kinds`; all errors of all files are reported at once.
    """
    resources: list[Resource] = []
    errors: list[ManifestError] = []
    for f in iter_manifest_files(paths):
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except yaml.YAMLError as exc:
            errors.append(ManifestError(str(f), [("<yaml>", str(exc))]))
            continue
        for i, doc in enumerate(d for d in docs if d is not None):
            source = f"{f}#{i}"
            if isinstance(doc, dict) and not strict_kinds and not str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
                continue
            try:
                resources.append(parse_resource(doc, source))
            except ManifestError as exc:
                errors.append(exc)
    if errors:
        raise (
            ManifestError("; ".join(e.source for e in errors), [p for e in errors for p in e.problems])
            if len(errors) > 1
            else errors[0]
        )
    return resources
