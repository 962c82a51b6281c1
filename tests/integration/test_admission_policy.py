"""The chart's optional trusted-code policy (docs/security.md) on the real API server: rendered
with helm, applied, it lets the allowed images and callables through and refuses the others
naming itself; nothing of it is rendered unless asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from support.manifest_corpus import VALID_DIR
from support.wait import wait_until

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "fti-operator"
GENERATOR = (VALID_DIR / "feature-pipeline-generator.yaml").read_text()  # image under registry.example.com/
POLICY = "fti-fti-operator-trusted-code"


def _render(cluster, namespace: str) -> str:
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return cluster.helm(
        "template",
        "fti",
        CHART,
        "--show-only",
        "templates/admission-policy.yaml",
        "--set",
        "admissionPolicy.enabled=true",
        "--set",
        "admissionPolicy.allowedImagePrefixes={registry.example.com/}",
        "--set-json",
        f"admissionPolicy.namespaceSelector={json.dumps(selector)}",
    ).stdout


def _dry_run(cluster, namespace: str, text: str):
    return cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)


@pytest.fixture
def policy(control_plane, fti_crds, namespace):
    rendered = _render(control_plane, namespace)
    assert [d["kind"] for d in yaml.safe_load_all(rendered) if d] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    control_plane.kubectl("apply", "-f", "-", input=rendered)
    try:
        # The API server picks a new policy up asynchronously: poll until it refuses.
        disallowed = GENERATOR.replace("fti_pipelines.examples.fraud:profiles", "os:system")
        wait_until(
            lambda: _dry_run(control_plane, namespace, disallowed).returncode != 0,
            timeout=60,
            description="the policy to take effect",
        )
        yield control_plane
    finally:
        control_plane.kubectl("delete", "-f", "-", "--ignore-not-found", input=rendered, check=False)


def test_not_rendered_by_default(control_plane):
    out = control_plane.helm("template", "fti", CHART).stdout
    assert "ValidatingAdmissionPolicy" not in out


def test_allowed_image_and_callables_pass(policy, namespace):
    for text in (
        GENERATOR,
        (VALID_DIR / "training-pipeline.yaml").read_text(),
        (VALID_DIR / "inference-online.yaml").read_text(),
    ):
        result = _dry_run(policy, namespace, text)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("fti_pipelines.examples.fraud:profiles", "os:system", "callable os:system is not under an allowed module prefix"),
        ("registry.example.com/fraud/", "docker.io/someone/", "spec.template.image docker.io/someone/features:1.2.3"),
    ],
    ids=["generator-function", "image"],
)
def test_disallowed_is_refused_naming_the_policy(policy, namespace, old, new, words):
    result = _dry_run(policy, namespace, GENERATOR.replace(old, new))
    assert result.returncode != 0
    assert f"ValidatingAdmissionPolicy '{POLICY}'" in result.stderr and words in result.stderr, result.stderr


@pytest.mark.parametrize(
    "file, words",
    [
        ("feature-pipeline.yaml", "callable fraud_features.transactions:aggregate"),  # spec.transform
        ("training-pipeline-entrypoint.yaml", "callable fraud_models.baseline:build"),  # spec.model.entrypoint
    ],
)
def test_every_kind_of_callable_is_checked(policy, namespace, file, words):
    result = _dry_run(policy, namespace, (VALID_DIR / file).read_text())
    assert result.returncode != 0 and f"'{POLICY}'" in result.stderr and words in result.stderr, result.stderr
    estimator = (VALID_DIR / "training-pipeline.yaml").read_text().replace("sklearn.ensemble.", "evil.ensemble.")
    result = _dry_run(policy, namespace, estimator)
    assert "callable evil.ensemble.HistGradientBoostingClassifier" in result.stderr, result.stderr
