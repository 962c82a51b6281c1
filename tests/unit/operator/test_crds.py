"""crds/ is generated from the API models, fresh, structural, and the chart carries the same files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fti_operator.api import crd as crdgen
from support.manifest_corpus import invalid_cases

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
CHART_CRDS = REPO / "charts" / "fti-operator" / "crds"


def test_crds_are_fresh(tmp_path):
    crdgen.main(["--out", str(tmp_path)])
    generated = {p.name: p.read_text() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert set(generated) == set(committed), "crds/ holds other files than the generator writes: run `make crds`"
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"crds/ is stale ({', '.join(stale)}): run `make crds`"


def test_chart_crds_identical():
    repo = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert repo == chart, "charts/fti-operator/crds/ differs from crds/: run `make crds`"


def _crds() -> dict[str, dict]:
    return {kind: crdgen.crd(kind) for kind in crdgen.KINDS}


def _walk(node, path="$"):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")


@pytest.mark.parametrize("kind", list(crdgen.KINDS))
def test_schema_is_structural(kind):
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "not", "title", "const", "$defs"):
            assert banned not in node, f"{kind} {path}: {banned}"
        assert node.get("additionalProperties") is not False, f"{kind} {path}: additionalProperties false"
        assert not ("properties" in node and "additionalProperties" in node), f"{kind} {path}"
        typed = "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        assert typed, f"{kind} {path}: no type"
        if node.get("type") == "array":
            assert "items" in node, f"{kind} {path}: array without items"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"] and rule["message"], f"{kind} {path}"
            if "fieldPath" in rule:
                target = node
                for field in rule["fieldPath"].lstrip(".").split("."):  # .metadata.name: a nested property
                    assert field in (target.get("properties") or {}), (
                        f"{kind} {path}: fieldPath {rule['fieldPath']} not a property"
                    )
                    target = target["properties"][field]


def test_names_scope_and_columns():
    # The names users type, spelled out on purpose: identity.py may not change them unnoticed.
    crds = _crds()
    assert {c["spec"]["names"]["shortNames"][0] for c in crds.values()} == {"fp", "tp", "fisvc"}
    for c in crds.values():
        spec = c["spec"]
        assert spec["group"] == "fti.dev" and spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["fti"]
        assert c["metadata"]["name"] == f"{spec['names']['plural']}.fti.dev"
        version = spec["versions"][0]
        assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
        columns = [col["name"] for col in version["additionalPrinterColumns"]]
        assert {"Ready", "Reason", "Age"} <= set(columns)
        # Every spec/status column points at a field of the schema.
        schema = version["schema"]["openAPIV3Schema"]
        for col in version["additionalPrinterColumns"]:
            path = col["jsonPath"]
            if path.startswith(".metadata") or "[?(" in path:
                continue
            node = schema
            for part in path.strip(".").split("."):
                node = node["properties"][part]
    wide = {
        kind: [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")]
        for kind, crd in crds.items()
    }
    assert wide == {
        "FeaturePipeline": ["Group", "Version", "Schedule", "Ready", "Reason", "Age"],
        "TrainingPipeline": ["Model", "Latest", "Ready", "Reason", "Age"],
        "InferenceService": ["Model", "Stable", "Target", "Canary%", "Progress", "Ready", "Reason", "URL", "Age"],
    }


def test_model_version_is_int_or_string():
    schema = crdgen.crd("InferenceService")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    version = schema["properties"]["spec"]["properties"]["model"]["properties"]["version"]
    assert version["x-kubernetes-int-or-string"] is True and version["default"] == "latest"
    assert any("'latest'" in r["rule"] for r in version["x-kubernetes-validations"])


def test_descriptions_for_kubectl_explain():
    schema = crdgen.crd("FeaturePipeline")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    validation = schema["properties"]["spec"]["properties"]["validation"]
    assert "expectations" in validation["description"].lower() or "quarantine" in validation["description"].lower()
    for name, prop in validation["properties"]["expectations"]["items"]["properties"].items():
        assert prop.get("description"), f"expectations[].{name} has no description"


def _cel_messages() -> set[str]:
    out = set()
    for kind in crdgen.KINDS:
        for _, node in _walk(crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]):
            out.update(r["message"] for r in node.get("x-kubernetes-validations", []))
    return out


# CEL rules whose violation the Python models cannot express as a manifest (the value
# types pydantic already refuses before the rule could matter).
UNCOVERED_BY_DESIGN: set[str] = set()


def test_every_cel_rule_has_a_bad_manifest():
    """Each CEL rule is exercised by the corpus, so the API server and load_manifests are
    compared on it (tests/integration/test_admission.py, test_manifest_corpus.py)."""
    expectations = [c.message.lower() for c in invalid_cases()]
    missing = [m for m in _cel_messages() - UNCOVERED_BY_DESIGN if not any(e in m.lower() for e in expectations)]
    assert not missing, f"CEL rules without a bad manifest in tests/manifests/invalid/: {missing}"


def test_cel_regexes_are_re2_compatible():
    """The API server compiles CEL `matches` with Go's RE2: no lookarounds or backreferences."""
    for kind in crdgen.KINDS:
        text = yaml.safe_dump(crdgen.crd(kind))
        assert not re.search(r"\(\?[=!<]|\\[1-9]", text), kind
