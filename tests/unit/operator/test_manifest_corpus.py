"""Every bad manifest is rejected by load_manifests, naming the field the corpus expects;
every valid manifest and example parses. (The same corpus goes to the real API server in
tests/integration/test_admission.py.)"""

from __future__ import annotations

import pytest

from fti_operator.api import ManifestError, load_manifests
from support.manifest_corpus import fti_documents, invalid_cases, invalid_yaml_cases, path_matches, valid_files

CASES = invalid_cases()


def test_corpus_is_big_enough():
    assert len(CASES) >= 30
    assert {c.doc["kind"] for c in CASES} == {"FeaturePipeline", "TrainingPipeline", "InferenceService"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_rejected_naming_the_field(case):
    with pytest.raises(ManifestError) as info:
        load_manifests([case.path])
    problems = info.value.problems
    hits = [(p, m) for p, m in problems if path_matches(p, case.field) and case.message.lower() in m.lower()]
    assert hits, f"{case.path.name}: expected {case.field}: ...{case.message}..., got {problems}"
    # The error text a user sees carries the path and the message.
    assert case.field in str(info.value)


YAML_CASES = invalid_yaml_cases()


@pytest.mark.parametrize("case", YAML_CASES, ids=[c.id for c in YAML_CASES])
def test_bad_yaml_refused_with_file_document_and_field(case):
    """Wrong as YAML or as a stream: refused (never skipped), each line `FILE:doc#N: field: message`."""
    with pytest.raises(ManifestError) as info:
        load_manifests([case.path])
    hits = [(p, m) for p, m in info.value.problems if path_matches(p, case.field) and case.message.lower() in m.lower()]
    assert hits, f"{case.path.name}: expected {case.field}: ...{case.message}..., got {info.value.problems}"
    for line in str(info.value).splitlines():
        assert line.startswith(f"{case.path}:doc#"), line


VALID = [p for p in valid_files() if fti_documents(p)]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_manifest_parses(path):
    resources = load_manifests([path])
    assert len(resources) == len(fti_documents(path))
