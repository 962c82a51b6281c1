"""deploy/install.yaml is the chart rendered by tools/install_manifest.py (`make manifests`).

Stale = a chart or CRD change without `make manifests`: this test fails and says so.
tests/integration/test_install_manifest.py applies the file to a control plane.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tools"))  # the generators import their shared tools/generated.py
_spec = importlib.util.spec_from_file_location("install_manifest", REPO / "tools" / "install_manifest.py")
assert _spec is not None and _spec.loader is not None
install_manifest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install_manifest)


@pytest.fixture(scope="module")
def helm() -> str:
    try:
        return install_manifest.find_helm()
    except SystemExit as exc:
        if os.environ.get("FTI_REQUIRE_CONTROLPLANE", "").lower() in ("1", "true", "yes"):
            raise
        pytest.skip(str(exc))


def test_install_yaml_is_what_the_chart_renders(helm):
    assert install_manifest.OUT.exists(), "deploy/install.yaml is missing: run `make manifests`"
    assert install_manifest.OUT.read_text() == install_manifest.render(helm), "deploy/install.yaml is stale: run `make manifests`"


def test_install_yaml_holds_everything_an_install_needs():
    docs = [d for d in yaml.safe_load_all(install_manifest.OUT.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    # The Namespace first, then the CRDs: kubectl applies in file order.
    assert kinds[0] == "Namespace" and docs[0]["metadata"]["name"] == "fti-system"
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    generated = {d["metadata"]["name"] for p in (REPO / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d}
    assert crds == generated, crds ^ generated
    assert {"featurepipelines.fti.dev", "trainingpipelines.fti.dev", "inferenceservices.fti.dev"} <= crds
    assert kinds.index("CustomResourceDefinition") < min(kinds.index(k) for k in ("ServiceAccount", "Deployment"))
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"):
        assert kind in kinds, f"no {kind} in deploy/install.yaml"
    # No object of a kind its own CRDs define: `kubectl apply` cannot map it before they exist.
    assert not {"ClusterKopfPeering", "KopfPeering"} & set(kinds)
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FTI_PEERING"] == "" and deploy["spec"]["replicas"] == 1  # standalone, one replica
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == "fti-system", doc["metadata"]


_ref_spec = importlib.util.spec_from_file_location("values_reference", REPO / "tools" / "values_reference.py")
assert _ref_spec is not None and _ref_spec.loader is not None
values_reference = importlib.util.module_from_spec(_ref_spec)
_ref_spec.loader.exec_module(values_reference)


def test_values_reference_in_docs_is_generated_from_the_schema():
    text = values_reference.DOC.read_text()
    assert text == values_reference.rewritten(text), "docs/install.md's values reference is stale: run `make manifests`"
    for key in ("stores.volumeClaim", "metrics.serviceMonitor.labels", "watchNamespaces", "extraEnv"):
        assert f"| `{key}` |" in text, key
