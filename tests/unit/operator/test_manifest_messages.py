"""Messages a user understands: for each class of mistake, the text names the field (or the
place in the file) and says what is allowed; look-alike characters are shown escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from fti_operator.api import ManifestError, load_manifests
from support.manifest_corpus import INVALID_DIR, INVALID_YAML_DIR

# file -> what the one-line message must say (all of it), besides FILE:doc#N.
MESSAGES = {
    INVALID_YAML_DIR / "duplicate-key.yaml": ["<yaml>: duplicate key 'version' (first at line", "keep only the last one"],
    INVALID_YAML_DIR / "alias-bomb.yaml": ["<yaml>: document expands to more than 100000 nodes through aliases"],
    INVALID_YAML_DIR / "nan.yaml": ["spec.validation.expectations[1].mostly: nan", "NaN and infinities are refused"],
    INVALID_YAML_DIR / "infinity.yaml": ["spec.validation.expectations[1].between.max: inf", "NaN and infinities"],
    INVALID_YAML_DIR / "not-yaml.yaml": ["<yaml>:", "(line 12)"],
    INVALID_YAML_DIR / "second-document-api-version-typo.yaml": [
        "doc#2: apiVersion: must be 'fti.dev/v1alpha1'",
        "got 'fti.dev/v1alpah1'",
    ],
    INVALID_YAML_DIR / "second-document-kind-typo.yaml": [
        "doc#2: kind: must be one of FeaturePipeline, TrainingPipeline, InferenceService, got 'FeaturePipline'"
    ],
    INVALID_DIR / "fp-lookalike-field.yaml": [
        "spec.featureGroup.pr\\u0456maryKey: unknown field; did you mean 'primaryKey'?",
        "contains non-ASCII characters",
    ],
    INVALID_DIR / "fp-version-beyond-int64.yaml": ["spec.featureGroup.version: Input should be a valid integer", "64-bit"],
    INVALID_DIR / "fp-version-quoted-number.yaml": ["spec.featureGroup.version: Input should be a valid integer, got '2'"],
    INVALID_DIR / "tp-window-date-only.yaml": [
        "spec.trainingData.start: must be an RFC 3339 date-time with a time zone, like 2026-09-01T00:00:00Z; got '2026-09-01'"
    ],
    INVALID_DIR / "tp-window-naive-time.yaml": ["spec.trainingData.start: must be an RFC 3339 date-time with a time zone"],
    INVALID_DIR / "tp-resource-name-typo.yaml": [
        "spec.template.resources.requests: resource names are cpu, memory, ephemeral-storage",
        "got 'memroy'",
    ],
    INVALID_DIR / "tp-gpu-fraction.yaml": ["spec.template.resources.limits: extended resources", "whole units", "'0.5'"],
    INVALID_DIR / "fp-file-uri-two-slashes.yaml": ["spec.source.uri: a file URI needs an absolute path", "file:///"],
    INVALID_DIR / "fp-uri-chained.yaml": ["spec.source.uri: chained URIs (a::b) are not supported"],
    INVALID_DIR / "isvc-output-is-input-slash.yaml": ["spec.batch.output: output must not be the input", "trailing slashes"],
    INVALID_DIR / "tp-gate-above-one.yaml": ["spec.evaluation.gates[0].min: ", "within [0, 1]", "roc_auc min 1.5"],
    INVALID_DIR / "tp-gate-max-negative.yaml": ["spec.evaluation.gates[1].max: ", "within [0, 1]", "brier_score max -0.2"],
    INVALID_DIR / "tp-label-feature-other-group.yaml": [
        "spec.featureView.label: the label column must not also be a feature",
        "'is_fraud' is selected from card_profiles",
    ],
    INVALID_DIR / "tp-duplicate-column.yaml": [
        "spec.featureView.features: a column name may be selected from one feature group only",
        "'amount_sum_1d' from card_transactions and card_profiles",
    ],
    INVALID_DIR / "tp-columns-repeated.yaml": ["spec.featureView.features[0].columns: Duplicate value: 'amount_sum_1d'"],
    INVALID_DIR / "fp-regex-unbalanced.yaml": ["spec.validation.expectations[3].regex: regex does not compile"],
    INVALID_DIR / "fp-regex-lookahead.yaml": [
        "spec.validation.expectations[3].regex: regex uses negative lookahead (?!...), which RE2 does not support"
    ],
}


@pytest.mark.parametrize("path", list(MESSAGES), ids=lambda p: p.stem)
def test_message_names_the_field_and_what_is_allowed(path: Path):
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    text = str(info.value)
    for words in MESSAGES[path]:
        assert words in text, f"{words!r} not in:\n{text}"
    for line in text.splitlines():
        assert line.startswith(f"{path}:doc#") and line.isascii(), line


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path):
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ManifestError) as info:
        load_manifests([binary])
    assert str(info.value).startswith(f"{binary}: <file>: cannot read"), info.value


def test_every_document_of_a_stream_is_checked(tmp_path):
    """Problems of several documents and files come together, each with its own place."""
    good = (INVALID_DIR.parent / "valid" / "feature-pipeline.yaml").read_text()
    two = tmp_path / "two.yaml"
    two.write_text(good + "---\n" + good.replace("version: 2", "version: 0") + "---\n")
    with pytest.raises(ManifestError) as info:
        load_manifests([two, INVALID_DIR / "fp-cron-words.yaml"])
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{two}:doc#2: spec.featureGroup.version: ")
    assert lines[1].startswith(f"{INVALID_DIR / 'fp-cron-words.yaml'}:doc#1: spec.schedule: ")


def test_a_field_whose_name_starts_like_a_type_keeps_its_place_in_the_path():
    # pydantic inserts union tags (`int`, `str`, `function-after[...]`) into error locations;
    # only those are dropped, not fields such as `interval` or `strict`.
    from pydantic import BaseModel, ValidationError

    from fti_operator.api.manifests import format_validation_error

    class Inner(BaseModel):
        interval: int | str
        strictness: int

    class Outer(BaseModel):
        inner: Inner

    with pytest.raises(ValidationError) as exc:
        Outer.model_validate({"inner": {"interval": [1], "strictness": "x"}})
    paths = [path for path, _msg in format_validation_error(exc.value)]
    assert "inner.interval" in paths and "inner.strictness" in paths, paths
