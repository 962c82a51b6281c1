"""`fti local validate` and what `fti local apply` says it will run on this host (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fti_operator.api import load_manifests
from fti_operator.cli import _trust_report, app
from support.manifest_corpus import EXAMPLES_DIR, INVALID_DIR, VALID_DIR


def test_validate_lists_every_callable_and_path_of_the_example():
    result = CliRunner().invoke(app, ["local", "validate", "-f", str(EXAMPLES_DIR / "fraud")])
    assert result.exit_code == 0, result.output
    assert "TrainingPipeline/fraud-model: valid" in result.output
    assert "runs fti_pipelines.examples.fraud:aggregate_transactions (spec.transform) on this host" in result.output
    assert "uses host path /var/lib/fti/fraud/predictions/ (spec.batch.output.uri)" in result.output


def test_validate_refuses_with_one_line_per_problem_and_no_traceback():
    bad = INVALID_DIR / "tp-gate-above-one.yaml"
    result = CliRunner().invoke(app, ["local", "validate", "-f", str(bad), "-f", str(INVALID_DIR / "fp-uri-chained.yaml")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{bad}:doc#1: spec.evaluation.gates[0].min: a gate on a metric between 0 and 1" in result.output
    assert f"{INVALID_DIR / 'fp-uri-chained.yaml'}:doc#1: spec.source.uri: chained URIs" in result.output


def test_apply_names_only_what_is_not_the_projects_own():
    """The examples print nothing; someone else's transform and host paths are named."""
    mounts = {"/var/lib/fti": Path("/tmp/state/volume")}
    assert _trust_report(load_manifests([EXAMPLES_DIR / "fraud"]), mounts) == []
    report = _trust_report(load_manifests([VALID_DIR / "feature-pipeline.yaml"]), mounts)
    assert report == [
        "FeaturePipeline/card-transactions: runs fraud_features.transactions:aggregate (spec.transform) on this host",
        "FeaturePipeline/card-transactions: uses host path /data/raw/transactions/ (spec.source.uri)",
    ]
    entrypoint = _trust_report(load_manifests([VALID_DIR / "training-pipeline-entrypoint.yaml"]), mounts)
    assert entrypoint == [
        "TrainingPipeline/fraud-baseline: runs fraud_models.baseline:build (spec.model.entrypoint) on this host"
    ]


@pytest.mark.parametrize("verb", ["promote", "abort", "retry", "undo", "status", "history"])
def test_rollout_commands_offer_only_their_own_options(verb: str) -> None:
    result = CliRunner().invoke(app, ["local", "rollout", verb, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    options = {word.strip("│,") for word in result.output.split() if word.startswith("--")}
    assert options <= {"--namespace", "--help", "--to-revision", "--timeout", "--watch", "--no-watch"}, options
