"""Admission on the real API server: every bad manifest of tests/manifests/invalid/ is
rejected with a message naming its field; every valid manifest (tests/manifests/valid/,
examples/) is accepted, and the server's defaults are the Python models' defaults.

Unknown fields: the API server prunes them silently unless the client asks for strict
field validation (`kubectl apply --validate=strict`, `fieldValidation=Strict`); the tests
ask for it, and one test shows the pruning without it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from fti_operator.api import GROUP, VERSION, identity, parse_resource
from support.manifest_corpus import fti_documents, invalid_cases, path_matches, valid_files

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
PLURALS = identity.PLURALS
CASES = invalid_cases()
VALID = [(p, i) for p in valid_files() for i, _ in enumerate(fti_documents(p))]


@pytest.fixture(scope="module")
def fti_crds(control_plane):
    """crds/ applied as a user would (server-side: the CRDs are too big for client-side apply)."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", CRDS)
    names = [f"crd/{k.crd_name}" for k in identity.KINDS]
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return control_plane


@pytest.fixture
def objects(fti_crds, k8s):
    from kubernetes import client

    return client.CustomObjectsApi(k8s)


def _in(namespace: str, doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    doc.setdefault("metadata", {})["namespace"] = namespace
    return doc


def _create(objects, namespace: str, doc: dict) -> dict:
    return objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[doc["kind"]], _in(namespace, doc), field_validation="Strict"
    )


def _names_field(body: dict, field: str, words: str) -> bool:
    words = words.lower()
    for cause in (body.get("details") or {}).get("causes") or []:
        if path_matches(cause.get("field") or "", field) and words in (cause.get("message") or "").lower():
            return True
    # Strict decoding errors (unknown fields) and root-level rules come without a cause
    # naming the field; then the message itself must carry both.
    message = body.get("message") or ""
    return field in message and words in message.lower()


ADMISSION_CASES = [c for c in CASES if c.refused_by == "admission"]
OPERATOR_CASES = [c for c in CASES if c.refused_by == "operator"]


@pytest.mark.parametrize("case", ADMISSION_CASES, ids=[c.id for c in ADMISSION_CASES])
def test_invalid_manifest_rejected_at_admission(case, objects, namespace):
    from kubernetes.client import ApiException

    with pytest.raises(ApiException) as info:
        _create(objects, namespace, case.doc)
    assert info.value.status in (400, 422), info.value.body
    body = json.loads(info.value.body)
    assert _names_field(body, case.field, case.message), (
        f"{case.path.name}: expected the error to name {case.field} with ...{case.message}..., got:\n"
        + json.dumps(body, indent=1)
    )


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=[c.id for c in OPERATOR_CASES])
def test_operator_cases_pass_admission(case, objects, namespace):
    """What the API server cannot judge (does a regex compile?) it accepts; the operator's
    validation refuses it (tests/integration/test_invalid_spec.py), as fti local does."""
    _create(objects, namespace, case.doc)


@pytest.mark.parametrize("path, index", VALID, ids=[f"{p.name}#{i}" for p, i in VALID])
def test_valid_manifest_accepted_with_the_same_defaults(path, index, objects, namespace):
    doc = fti_documents(path)[index]
    created = _create(objects, namespace, doc)
    # The API server filled the CRD defaults; the Python models fill theirs: the same spec.
    assert parse_resource(created).spec == parse_resource(doc).spec


def test_unknown_fields_pruned_without_strict_validation(fti_crds, namespace):
    """Without --validate=strict the API server drops an unknown field and accepts the object;
    with it, the field is named in the error (what our docs tell users to use)."""
    case = next(c for c in CASES if c.id == "isvc-replicas-unknown")
    text = yaml.safe_dump(_in(namespace, case.doc))
    strict = fti_crds.kubectl("apply", "--validate=strict", "-f", "-", input=text, check=False)
    assert strict.returncode != 0 and 'unknown field "spec.online.replicas"' in strict.stderr, strict.stderr
    lax = fti_crds.kubectl("apply", "--validate=false", "-f", "-", input=text, check=False)
    assert lax.returncode == 0, lax.stderr
    stored = json.loads(fti_crds.kubectl("get", "fisvc", case.doc["metadata"]["name"], "-n", namespace, "-o", "json").stdout)
    assert "replicas" not in stored["spec"]["online"]


@pytest.mark.parametrize("apply", [["apply"], ["apply", "--server-side"]], ids=["client-side", "server-side"])
@pytest.mark.parametrize(
    "case_id", ["fp-cron-minute-61", "isvc-min-above-max", "tp-duplicate-feature-group", "fp-version-string"]
)
def test_kubectl_apply_shows_the_field(case_id, apply, fti_crds, namespace):
    """What a user sees: kubectl's error names the field and says what is wrong."""
    case = next(c for c in CASES if c.id == case_id)
    result = fti_crds.kubectl(*apply, "--validate=strict", "-f", "-", input=yaml.safe_dump(_in(namespace, case.doc)), check=False)
    assert result.returncode != 0
    assert case.field in result.stderr, result.stderr
    # Server-side apply reports a wrong type while building the typed patch, in its own words.
    words = [case.message.lower()] + (["expected numeric"] if "--server-side" in apply and case.message == "integer" else [])
    assert any(w in result.stderr.lower() for w in words), result.stderr


def test_kubectl_explain_describes_the_spec(fti_crds):
    out = fti_crds.kubectl("explain", "featurepipeline.spec.validation").stdout
    assert "expectations" in out and "onFailure" in out and "quarantine" in out, out
    out = fti_crds.kubectl(
        "explain", "inferenceservice.spec.online.canary.trafficPercent", "--api-version=fti.dev/v1alpha1"
    ).stdout
    assert "1-99" in out, out


def test_category_short_names_and_columns(fti_crds, namespace):
    for path in sorted((REPO / "tests" / "manifests" / "valid").glob("*.yaml")):
        fti_crds.kubectl("apply", "--server-side", "--validate=strict", "-n", namespace, "-f", path)
    listed = fti_crds.kubectl("get", "fti", "-n", namespace, "-o", "name").stdout.split()
    kinds = {name.split("/")[0].split(".")[0] for name in listed}
    assert kinds == {"featurepipeline", "trainingpipeline", "inferenceservice"}, listed
    assert len(listed) == len(list((REPO / "tests" / "manifests" / "valid").glob("*.yaml")))
    header = fti_crds.kubectl("get", "fp", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "GROUP", "VERSION", "SCHEDULE", "READY", "REASON", "AGE"], header
    header = fti_crds.kubectl("get", "tp", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "LATEST", "READY", "REASON", "AGE"], header
    header = fti_crds.kubectl("get", "fisvc", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "STABLE", "TARGET", "CANARY%", "PROGRESS", "READY", "REASON", "URL", "AGE"], header


def test_status_subresource(fti_crds, objects, namespace):
    """spec and status are separate: a status write does not bump generation, and a
    spec write through the main resource cannot set status."""
    doc = fti_documents(REPO / "tests" / "manifests" / "valid" / "inference-online.yaml")[0]
    created = _create(objects, namespace, doc)
    name = created["metadata"]["name"]
    status = {
        "status": {
            "observedGeneration": 1,
            "stable": {"revision": 1, "model": 4, "featureView": 1, "traffic": 90},
            "target": {"revision": 2, "model": 5, "featureView": 1, "traffic": 10},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Serving",
                    "message": "model 4",
                    "lastTransitionTime": "2026-11-27T10:15:41Z",
                    "observedGeneration": 1,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "CanaryInProgress",
                    "message": "model 5 at 10 %",
                    "lastTransitionTime": "2026-11-27T10:15:41Z",
                    "observedGeneration": 1,
                },
            ],
        }
    }
    patched = objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "inferenceservices", name, status)
    assert patched["metadata"]["generation"] == created["metadata"]["generation"]
    assert patched["status"]["stable"]["model"] == 4
    # Printer columns read status (an empty column -- no URL -- prints as blank).
    row = fti_crds.kubectl("get", "fisvc", name, "-n", namespace, "--no-headers").stdout.split()
    assert row[:8] == [name, "fraud", "4", "5", "10", "CanaryInProgress", "True", "Serving"], row
