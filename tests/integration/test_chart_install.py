"""The chart on the real API server: its objects pass server-side validation, the CRDs
install, and the operator's ServiceAccount can do what it needs and nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "charts" / "fti-operator"


def test_chart_installs_and_rbac_is_least_privilege(control_plane, namespace):
    watched = namespace
    release_ns = f"{namespace}-op"[:63]
    control_plane.kubectl("create", "namespace", release_ns)
    try:
        # replicaCount=0: this control plane has no kubelet; the pods are not what is tested here.
        control_plane.helm(
            "install",
            "fti",
            CHART,
            "--namespace",
            release_ns,
            "--set",
            "replicaCount=0",
            "--set",
            f"watchNamespaces={{{watched}}}",
            "--wait=false",
        )
        sa = f"system:serviceaccount:{release_ns}:fti-fti-operator"

        def can(verb, resource, ns=watched):
            # kubectl reads `kind/x` as the object named x: a subresource goes in --subresource.
            resource, _, sub = resource.partition(":")
            args = ["auth", "can-i", verb, resource, "--as", sa] + (["-n", ns] if ns else [])
            return control_plane.kubectl(*args, *([f"--subresource={sub}"] if sub else []), check=False).stdout.strip() == "yes"

        # A sample; tests/integration/test_operator_rbac.py asks about every call the operator makes.
        for verb, resource in [
            ("watch", "featurepipelines.fti.dev"),
            ("patch", "inferenceservices.fti.dev:status"),
            ("create", "cronjobs.batch"),
            ("patch", "cronjobs.batch"),
            ("delete", "jobs.batch"),
            ("list", "pods"),
            ("create", "events"),
            ("patch", "inferenceservices.serving.kserve.io"),
            ("patch", "kopfpeerings.kopf.dev/fti-operator"),
        ]:
            assert can(verb, resource), f"the operator cannot {verb} {resource} in the watched namespace"
        assert can("watch", "customresourcedefinitions.apiextensions.k8s.io", ns=None)
        # Kopf follows the listed namespaces through a cluster-wide namespace watch.
        assert can("watch", "namespaces", ns=None)
        for verb, resource, ns in [
            ("get", "secrets", watched),
            ("create", "pods", watched),
            ("delete", "pods", watched),
            ("get", "pods:log", watched),
            ("update", "cronjobs.batch", watched),
            ("update", "inferenceservices.serving.kserve.io", watched),
            ("patch", "kopfpeerings.kopf.dev/someone-else", watched),
            ("watch", "featurepipelines.fti.dev", "default"),
            ("create", "cronjobs.batch", "default"),
            ("create", "namespaces", None),
        ]:
            assert not can(verb, resource, ns), f"the operator may {verb} {resource} in {ns}: more than it needs"
        # The peering object exists where Kopf looks for it.
        control_plane.kubectl("get", "kopfpeering", "fti-operator", "-n", watched)
        deploy = control_plane.kubectl("get", "deploy", "-n", release_ns, "-o", "name").stdout.split()
        assert deploy == ["deployment.apps/fti-fti-operator"]
    finally:
        control_plane.helm("uninstall", "fti", "--namespace", release_ns, check=False)
        control_plane.kubectl("delete", "namespace", release_ns, "--wait=false", check=False)


def test_helm_install_refuses_a_misspelled_value_naming_it(control_plane, namespace):
    """values.schema.json at install time: no release, nothing created, the field named."""
    for setting, named in (("stores.artifactStor=s3://ml/fti", "artifactStor"), ("replicaCount=one", "/replicaCount")):
        result = control_plane.helm(
            "install", "fti-typo", CHART, "--namespace", namespace, "--set", setting, "--set", "rbac.create=false", check=False
        )
        assert result.returncode != 0 and named in result.stderr, result.stderr
    assert "fti-typo" not in control_plane.helm("list", "--namespace", namespace, "-q").stdout
    assert not control_plane.kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.strip()
