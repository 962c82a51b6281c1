"""The API models: defaults agree with the CRDs', strict wire types, schedules, versions,
field-precise errors, and the wire round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from fti_operator.api import (
    FeaturePipelineSpec,
    FeatureViewSpec,
    InferenceServiceSpec,
    ManifestError,
    TrainingPipelineSpec,
    crd as crdgen,
    load_manifests,
    parse_duration,
    parse_resource,
)
from fti_operator.api.common import _check_cron
from fti_operator.api.inference_service import ModelRef

VALID = Path(__file__).resolve().parents[2] / "manifests" / "valid"


def _doc(name: str) -> dict:
    return yaml.safe_load((VALID / name).read_text())


def _python_defaults(model: type[BaseModel], prefix: str = ""):
    """(wire path, default) of every field with a plain default, recursing into sub-models."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        path = f"{prefix}.{alias}" if prefix else alias
        if field.default is not None and field.default_factory is None and not hasattr(field.default, "model_fields"):
            from pydantic_core import PydanticUndefined

            if field.default is not PydanticUndefined:
                yield path, field.default
        for sub in _sub_models(field.annotation):
            yield from _python_defaults(sub, path)


def _sub_models(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _sub_models(arg)


def _crd_node(schema: dict, path: str) -> dict:
    node = schema
    for part in path.split("."):
        while node.get("type") == "array":
            node = node["items"]
        node = node["properties"][part]
    return node


@pytest.mark.parametrize(
    "kind, spec_model",
    [
        ("FeaturePipeline", FeaturePipelineSpec),
        ("TrainingPipeline", TrainingPipelineSpec),
        ("InferenceService", InferenceServiceSpec),
    ],
)
def test_python_defaults_are_the_crd_defaults(kind, spec_model):
    spec = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    checked = 0
    for path, default in _python_defaults(spec_model):
        node = _crd_node(spec, path)
        assert node.get("default") == default, f"{kind} spec.{path}: python {default!r}, CRD {node.get('default')!r}"
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize(
    "schedule",
    [
        "*/15 * * * *",
        "0 3 * * 0",
        "0 3 * * sun",
        "0,30 8-18/2 1-15 JAN,jun 1-5",
        "@hourly",
        "@daily",
        "0 0 ? * *",
        "59 23 31 12 6",
    ],
)
def test_valid_schedules(schedule):
    assert _check_cron(schedule) == schedule


@pytest.mark.parametrize(
    "schedule",
    [
        "* * * *",
        "* * * * * *",
        "61 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 7",
        "*/0 * * * *",
        "0 0 L * *",
        "@every 5m",
        "@reboot",
        "TZ=UTC 0 * * * *",
        "",
    ],
)
def test_invalid_schedules(schedule):
    with pytest.raises(ValueError, match="cron expression"):
        _check_cron(schedule)


@pytest.mark.parametrize(
    "version, ok",
    [
        (1, True),
        (1_000_000, True),
        ("latest", True),
        (0, False),
        (-3, False),
        (1_000_001, False),
        ("3", False),
        ("Latest", False),
        (True, False),
        (2.0, False),
        (None, False),
    ],
)
def test_model_version(version, ok):
    if ok:
        assert ModelRef.model_validate({"name": "fraud", "version": version}).version == version
    else:
        with pytest.raises(ValueError, match="positive integer"):
            ModelRef.model_validate({"name": "fraud", "version": version})


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (lambda d: d["spec"]["featureGroup"].update(version="2"), "spec.featureGroup.version", "valid integer"),
        (lambda d: d["spec"]["featureGroup"].update(online="true"), "spec.featureGroup.online", "valid boolean"),
        (
            lambda d: d["spec"]["validation"]["expectations"][1].update(mostly="0.5"),
            "spec.validation.expectations[1].mostly",
            "valid number",
        ),
    ],
)
def test_wire_types_are_strict(edit, field, words):
    """The API server does not coerce "2" to 2, so neither does the embedded runner."""
    doc = _doc("feature-pipeline.yaml")
    edit(doc)
    with pytest.raises(ManifestError) as info:
        parse_resource(doc)
    assert any(p == field and words in m for p, m in info.value.problems), info.value.problems


def test_status_is_lax_and_tolerant():
    """Status comes from the operator and termination messages (JSON numbers, newer fields)."""
    doc = _doc("inference-online.yaml")
    doc["status"] = {
        "stable": {"revision": "3", "model": 4, "featureView": 1},
        "somethingNew": {"a": 1},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "lastTransitionTime": "2026-11-27T10:15:41Z",
                "observedGeneration": 2,
            }
        ],
    }
    res = parse_resource(doc)
    assert res.status.stable.revision == 3 and res.status.conditions[0].observed_generation == 2


def test_cross_field_errors_name_the_sub_field():
    doc = _doc("inference-online.yaml")
    doc["spec"]["online"]["minReplicas"] = 9
    with pytest.raises(ManifestError) as info:
        parse_resource(doc, "x.yaml")
    assert info.value.problems == [("spec.online.minReplicas", "minReplicas must not exceed maxReplicas")]
    assert "spec.online.minReplicas: minReplicas must not exceed maxReplicas" in str(info.value)


def test_all_errors_of_all_files_at_once(tmp_path):
    for i, field in enumerate(("ingestion", "schedule")):
        doc = _doc("feature-pipeline.yaml")
        doc["spec"][field] = "nonsense"
        (tmp_path / f"{i}.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError) as info:
        load_manifests([tmp_path])
    assert [p for p, _ in info.value.problems] == ["spec.ingestion", "spec.schedule"]


@pytest.mark.parametrize("name", sorted(p.name for p in VALID.glob("*.yaml")))
def test_wire_round_trip(name):
    doc = _doc(name)
    res = parse_resource(doc)
    again = parse_resource(
        {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "metadata": doc["metadata"], "spec": res.spec.wire()}
    )
    assert again.spec == res.spec


def test_feature_view_helpers():
    spec = parse_resource(_doc("training-pipeline.yaml")).spec
    fv: FeatureViewSpec = spec.feature_view
    assert fv.feature_columns == ["amount_sum_1d", "tx_count_1d", "amount_avg_7d", "age_group", "credit_limit"]
    assert [g.key for g in fv.feature_groups] == ["card_transactions@v2", "card_profiles@v1"]


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("1h30m", 5400), ("90s", 90), ("500ms", 0.5), ("1.5h", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_kind_specific_defaults_applied():
    spec = parse_resource(_doc("training-pipeline-entrypoint.yaml")).spec
    assert spec.training_data.split.test_fraction == 0.2
    assert spec.evaluation.metrics == ["roc_auc", "average_precision", "f1"]
    isvc = parse_resource(_doc("inference-online-pinned.yaml")).spec
    assert isvc.mode == "online" and isvc.rollout.readiness_timeout == "1h30m"
