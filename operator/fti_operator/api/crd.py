"""Generate the CustomResourceDefinitions of the three kinds from the pydantic models.

    python -m fti_operator.api.crd --out crds/

The pydantic JSON schema is turned into a *structural* OpenAPI v3 schema, the form
the API server requires: every $ref inlined, no anyOf/oneOf where a type belongs
(optional fields lose their `null` branch; int-or-string becomes
`x-kubernetes-int-or-string`), no `additionalProperties: false` (the server prunes or,
with strict field validation, rejects unknown fields), free-form maps as
`x-kubernetes-preserve-unknown-fields`. Descriptions, defaults, enums and the CEL rules
declared on the models (`x-kubernetes-validations`) are carried over, so the cluster
and the embedded runner validate with the same rules.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .common import MAX_NAME_LENGTH, NAME_MESSAGE, NAME_PATTERN, cel
from .feature_pipeline import FeaturePipelineSpec, FeaturePipelineStatus
from .identity import API_VERSION, CATEGORY, FEATURE_PIPELINE, GROUP, INFERENCE_SERVICE, TRAINING_PIPELINE, VERSION, KindNames
from .inference_service import InferenceServiceSpec, InferenceServiceStatus
from .training_pipeline import TrainingPipelineSpec, TrainingPipelineStatus

# Keys of the JSON schema that the CRD schema keeps as they are.
_KEEP = {
    "type",
    "format",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-map-type",
}


class SchemaError(ValueError):
    """The model produces a schema that cannot be made structural."""


def _ready(column: str) -> str:
    return f'.status.conditions[?(@.type=="Ready")].{column}'


def _col(name: str, json_path: str, type_: str = "string", priority: int = 0, description: str = "") -> dict[str, Any]:
    col: dict[str, str | int] = {"name": name, "type": type_, "jsonPath": json_path}
    if priority:
        col["priority"] = priority
    if description:
        col["description"] = description
    return col


_READY_COLUMNS = [
    _col("Ready", _ready("status"), description="The Ready condition."),
    _col("Reason", _ready("reason"), description="Why Ready is what it is."),
]
_AGE = _col("Age", ".metadata.creationTimestamp", "date")

# kind -> (names, spec model, status model, printer columns, description)
KINDS: dict[str, dict[str, Any]] = {
    FEATURE_PIPELINE.kind: {
        "names": FEATURE_PIPELINE,
        "spec": FeaturePipelineSpec,
        "status": FeaturePipelineStatus,
        "description": "A feature pipeline: raw data -> one feature group at one current version, "
        "run once or on a schedule as a CronJob per active feature-group version.",
        "columns": [
            _col("Group", ".spec.featureGroup.name", description="Feature group."),
            _col("Version", ".spec.featureGroup.version", "integer", description="Current feature-group version."),
            _col("Schedule", ".spec.schedule", description="Cron schedule; empty = run once."),
            *_READY_COLUMNS,
            _col("Online", ".spec.featureGroup.online", "boolean", priority=1),
            _col("Ingestion", ".spec.ingestion", priority=1),
            _AGE,
        ],
    },
    TRAINING_PIPELINE.kind: {
        "names": TRAINING_PIPELINE,
        "spec": TrainingPipelineSpec,
        "status": TrainingPipelineStatus,
        "description": "A training pipeline: a feature view at pinned feature-group versions -> "
        "evaluated, gated and registered model versions, one Job per run.",
        "columns": [
            _col("Model", ".spec.model.name", description="Registered model name."),
            _col("Latest", ".status.latestValidatedVersion", "integer", description="Newest Validated model version."),
            *_READY_COLUMNS,
            _col("View", ".spec.featureView.version", "integer", priority=1, description="Feature-view version."),
            _col("Schedule", ".spec.schedule", priority=1),
            _AGE,
        ],
    },
    INFERENCE_SERVICE.kind: {
        "names": INFERENCE_SERVICE,
        "spec": InferenceServiceSpec,
        "status": InferenceServiceStatus,
        "description": "An inference service: one model served online (a KServe InferenceService with "
        "feature lookup) or in batch (a CronJob), always as a (model, feature-view) version pair.",
        "columns": [
            _col("Model", ".spec.model.name", description="Registered model name."),
            _col(
                "Stable", ".status.stable.model", "integer", description="Model version KServe reports serving at full traffic."
            ),
            _col("Target", ".status.target.model", "integer", description="Model version being rolled out."),
            _col("Canary%", ".status.target.traffic", "integer", description="Traffic KServe routes to the target."),
            _col("Progress", '.status.conditions[?(@.type=="Progressing")].reason', description="The Progressing condition."),
            *_READY_COLUMNS,
            _col("URL", ".status.url"),
            _col("Mode", ".spec.mode", priority=1),
            _col("Requested", ".spec.model.version", priority=1, description="Requested model version (number or latest)."),
            _AGE,
        ],
    },
}


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a $ref, keeping sibling keys (description, default) of the referring schema."""
    if "$ref" not in schema:
        return schema
    name = schema["$ref"].rsplit("/", 1)[-1]
    target = copy.deepcopy(defs[name])
    siblings = {k: v for k, v in schema.items() if k != "$ref"}
    if "description" in siblings and "description" in target:
        # The field's description says what the value means here; keep the model's after it.
        siblings["description"] = f"{siblings['description']} {target['description']}"
    return {**target, **siblings}


def _collapse(schema: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    """anyOf/oneOf -> one structural schema: drop the null branch; int|string -> int-or-string."""
    for key in ("anyOf", "oneOf"):
        if key not in schema:
            continue
        outer = {k: v for k, v in schema.items() if k != key}
        branches = [_deref(b, defs) for b in schema[key] if b.get("type") != "null"]
        if len(branches) == 1:
            merged = {**branches[0], **outer}
            if "x-kubernetes-validations" in branches[0] and "x-kubernetes-validations" in outer:
                merged["x-kubernetes-validations"] = branches[0]["x-kubernetes-validations"] + outer["x-kubernetes-validations"]
            return _collapse(merged, defs, where)
        types = {b.get("type") for b in branches}
        if types <= {"integer", "string"} and outer.get("x-kubernetes-int-or-string"):
            # The value constraints of the branches live in the CEL rule declared on the field.
            return outer
        raise SchemaError(
            f"{where}: cannot make {key} of {sorted(map(str, types))} structural; "
            "declare x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields"
        )
    return schema


def structural(schema: dict[str, Any], defs: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Convert one pydantic JSON schema node (and its children) into a structural CRD schema."""
    schema = _collapse(_deref(schema, defs), defs, where)
    if "const" in schema:
        schema = {**schema, "enum": [schema["const"]]}
        schema.pop("const")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _KEEP:
            out[key] = copy.deepcopy(value)
        elif key == "exclusiveMinimum":  # JSON Schema 2020 number -> OpenAPI v3.0 boolean
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
    if out.get("default", 0) is None:
        del out["default"]  # "absent" is how an optional field is None
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        return out
    if out.get("x-kubernetes-preserve-unknown-fields"):
        # Free-form: an object of anything, or (on list items) any JSON value.
        if "type" in schema or "additionalProperties" in schema or "properties" in schema:
            out["type"] = "object"
        return out
    if "properties" in schema:
        out["type"] = "object"
        out["properties"] = {k: structural(v, defs, f"{where}.{k}") for k, v in schema["properties"].items()}
    elif schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs, f"{where}.*")
        else:  # dict[str, Any]
            out["x-kubernetes-preserve-unknown-fields"] = True
    if schema.get("type") == "array":
        items = schema.get("items", {})
        out["items"] = structural(items, defs, f"{where}[]") if items else {"x-kubernetes-preserve-unknown-fields": True}
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{where}: no type in {schema}")
    if out.get("required") == []:
        del out["required"]
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}), model.__name__)


def openapi_schema(kind: str) -> dict[str, Any]:
    info = KINDS[kind]
    spec = model_schema(info["spec"])
    status = model_schema(info["status"])
    # Status fields a newer operator adds survive an older CRD (the status models ignore extras too).
    status["x-kubernetes-preserve-unknown-fields"] = True
    status["description"] = status.get("description") or f"Observed state of the {kind}."
    return {
        "type": "object",
        "description": info["description"],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION},
            "kind": {"type": "string", "description": kind},
            # maxLength bounds the CEL rule's cost estimate (the rule says 52 with a clearer message).
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 253}}},
            "spec": spec,
            "status": status,
        },
        # Children carry the name (CronJob names are limited to 52 characters; KServe needs a
        # leading letter), so the rule is checked here, once, not when a child fails to create.
        "x-kubernetes-validations": [
            cel(
                f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && self.metadata.name.matches({NAME_PATTERN!r})",
                NAME_MESSAGE,
                # Without a fieldPath the API server reports a root rule at the path "<nil>".
                "metadata.name",
                reason="FieldValueInvalid",
            ),
        ],
    }


def crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition manifest of one kind."""
    info = KINDS[kind]
    names: KindNames = info["names"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.crd_name,
            "labels": {"app.kubernetes.io/name": "fti-operator", "app.kubernetes.io/part-of": "fti-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.kind,
                "listKind": f"{names.kind}List",
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": list(names.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info["columns"],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


def kopf_peering_crds() -> list[dict[str, Any]]:
    """Kopf's peering CRDs (kopf.dev/v1): with them, only one operator instance handles
    objects at a time (the chart creates the peering object). Kopf documents this schema."""
    out = []
    for kind, scope in (("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")):
        plural = kind.lower() + "s"
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.kopf.dev", "labels": {"app.kubernetes.io/part-of": "fti-operator"}},
                "spec": {
                    "scope": scope,
                    "group": "kopf.dev",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "description": "Kopf peering: the operator instances alive and their priorities.",
                                    "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                                }
                            },
                        }
                    ],
                },
            }
        )
    return out


HEADER = "# Generated by `python -m fti_operator.api.crd` from fti_operator/api. Do not edit.\n"


def render_all() -> dict[str, str]:
    """File name -> YAML text: one file per kind, plus Kopf's peering CRDs."""
    files = {
        f"{GROUP}_{KINDS[kind]['names'].plural}.yaml": HEADER + yaml.safe_dump(crd(kind), sort_keys=False, width=120)
        for kind in KINDS
    }
    files["kopf.dev_peerings.yaml"] = HEADER + yaml.safe_dump_all(kopf_peering_crds(), sort_keys=False, width=120)
    return files


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        action="append",
        required=True,
        help="directory to write the CRDs into (repeat for crds/ and the chart's crds/)",
    )
    args = parser.parse_args(argv)
    for out in args.out:
        for path in write_all(out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
