"""The Helm chart: lint, render in each mode, restricted pods, least-privilege RBAC.

helm comes from the control-plane build (tests/controlplane/build.sh) or PATH; without it
the tests skip, except in CI (FTI_REQUIRE_CONTROLPLANE=1) where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fti_operator.api.identity import GROUP, KSERVE_GROUP

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "fti-operator"


def _helm() -> str | None:
    try:
        from controlplane.binaries import MissingBinaries, find_binaries

        try:
            return find_binaries().path("helm")
        except MissingBinaries:
            pass
    except ImportError:
        pass
    return shutil.which("helm")


HELM = _helm()
if HELM is None and os.environ.get("FTI_REQUIRE_CONTROLPLANE", "").lower() in ("1", "true", "yes"):
    raise RuntimeError("FTI_REQUIRE_CONTROLPLANE=1 but no helm binary: run `make controlplane`")
pytestmark = pytest.mark.skipif(HELM is None, reason="helm not built: run `make controlplane` (tests/controlplane/build.sh)")


def helm(*args: str, check: bool = True, tmp: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if tmp is not None:  # helm keeps caches; never in the user's home from a test
        env.update(HELM_CACHE_HOME=str(tmp / "cache"), HELM_CONFIG_HOME=str(tmp / "config"), HELM_DATA_HOME=str(tmp / "data"))
    result = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(tmp_path, *sets: str) -> list[dict]:
    args = ["template", "fti", str(CHART), "--namespace", "fti-system"]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args, tmp=tmp_path).stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_lint(tmp_path):
    out = helm("lint", "--strict", str(CHART), tmp=tmp_path).stdout
    assert "0 chart(s) failed" in out


def test_deployment_is_restricted_and_probed(tmp_path):
    docs = render(tmp_path)
    [deploy] = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["python", "-m", "fti_operator"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FTI_ARTIFACT_STORE"] == "file:///var/lib/fti/artifacts"
    assert env["FTI_NAMESPACES"] == "" and env["FTI_METRICS_PORT"] == "8080" and env["FTI_HEALTH_PORT"] == "8081"
    assert env["FTI_IMAGE_TAG"] == "0.1.0" and env["FTI_PEERING"] == "fti-operator"
    assert env["FTI_KSERVE_NAMESPACE"] == "kserve"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    [svc] = by_kind(docs, "Service")
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert not by_kind(docs, "ServiceMonitor")


def test_values_reach_the_environment(tmp_path):
    docs = render(
        tmp_path,
        "stores.artifactStore=s3://ml/fti",
        "stores.credentialsSecret=s3-creds",
        "stores.onlineStoreSecret=redis:uri",
        "pipelineImages.tag=1.2.3",
        "watchNamespaces={fraud,ads}",
        "peering.enabled=false",
        "logLevel=DEBUG",
    )
    [deploy] = by_kind(docs, "Deployment")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FTI_ARTIFACT_STORE"] == "s3://ml/fti" and env["FTI_STORE_CREDENTIALS_SECRET"] == "s3-creds"
    assert env["FTI_ONLINE_STORE_SECRET"] == "redis:uri" and env["FTI_IMAGE_TAG"] == "1.2.3"
    assert env["FTI_NAMESPACES"] == "fraud,ads" and env["FTI_PEERING"] == "" and env["FTI_LOG_LEVEL"] == "DEBUG"
    assert not by_kind(docs, "KopfPeering") and not by_kind(docs, "ClusterKopfPeering")


def _rules(role) -> list[tuple[str, str, str]]:
    return [(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]]


def _assert_least_privilege(rules):
    """The shape of the rules; tests/integration/test_operator_rbac.py asks the API server about each call."""
    for group, resource, verb in rules:
        assert "*" not in (group, resource, verb), (group, resource, verb)
        assert resource != "secrets", "the operator never reads Secrets (secrets only by reference)"
        # Children are applied server-side (PATCH) or created, never replaced with PUT; the one
        # `update` is the admission check of blockOwnerDeletion on our kinds' finalizers.
        assert verb != "update" or resource.endswith("/finalizers"), (group, resource, verb)
        if resource == "pods":
            assert verb == "list", "pods are only listed, for the termination message"
    assert ("", "pods/log", "get") not in rules
    needed = {
        (GROUP, "featurepipelines", "watch"),
        (GROUP, "inferenceservices/status", "patch"),
        (GROUP, "featurepipelines/finalizers", "update"),
        ("batch", "cronjobs", "create"),
        ("batch", "cronjobs", "patch"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "events", "create"),
        (KSERVE_GROUP, "inferenceservices", "patch"),
        (KSERVE_GROUP, "inferenceservices", "create"),
    }
    assert needed <= set(rules), needed - set(rules)


def _peering_patch(role, resource):
    [rule] = [r for r in role["rules"] if r["resources"] == [resource] and r["verbs"] == ["patch"]]
    return rule.get("resourceNames")


def _kserve_config(role):
    """The one ConfigMap the operator reads: KServe's, for its default deployment mode."""
    [rule] = [r for r in role["rules"] if r["resources"] == ["configmaps"]]
    assert rule["verbs"] == ["get"]
    return rule.get("resourceNames")


def test_cluster_wide_rbac(tmp_path):
    docs = render(tmp_path)
    [role] = by_kind(docs, "ClusterRole")
    rules = _rules(role)
    _assert_least_privilege(rules)
    # Cluster-wide Kopf watches everything at once and never reads namespaces.
    assert not [r for r in rules if r[1] == "namespaces"]
    assert ("kopf.dev", "clusterkopfpeerings", "watch") in rules
    assert _peering_patch(role, "clusterkopfpeerings") == ["fti-operator"]  # its own peering object only
    assert _kserve_config(role) == ["inferenceservice-config"]
    assert not by_kind(docs, "Role")
    [peering] = by_kind(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "fti-operator"


def test_namespaced_rbac(tmp_path):
    docs = render(tmp_path, "watchNamespaces={fraud,ads}")
    [cluster_role] = by_kind(docs, "ClusterRole")
    # Cluster-wide only what Kopf needs to discover resources and follow the listed namespaces.
    assert _rules(cluster_role) == [("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")] + [
        ("", "configmaps", "get")
    ] + [("", "namespaces", v) for v in ("list", "watch")]
    assert _kserve_config(cluster_role) == ["inferenceservice-config"]
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ads", "fraud"]
    for role in roles:
        _assert_least_privilege(_rules(role))
        assert _peering_patch(role, "kopfpeerings") == ["fti-operator"]
    bindings = by_kind(docs, "RoleBinding")
    assert all(b["subjects"][0]["namespace"] == "fti-system" for b in bindings)
    assert sorted(p["metadata"]["namespace"] for p in by_kind(docs, "KopfPeering")) == ["ads", "fraud"]


def test_service_monitor(tmp_path):
    docs = render(tmp_path, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
    [sm] = by_kind(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics" and sm["metadata"]["labels"]["release"] == "prom"


def test_two_replicas_need_peering(tmp_path):
    result = helm(
        "template", "fti", str(CHART), "--set", "replicaCount=2", "--set", "peering.enabled=false", check=False, tmp=tmp_path
    )
    assert result.returncode != 0 and "peering" in result.stderr


# ---- values.schema.json: a typo or a wrong type fails the install, naming the field ----------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _schema_at(schema: dict, path: tuple[str, ...]) -> dict | None:
    """The schema of the value at `path`, following $ref; None when the schema does not know it."""
    for key in path:
        if "$ref" in schema:
            schema = _resolve(schema["$ref"])
        if key in schema.get("properties", {}):
            schema = schema["properties"][key]
        elif isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]
        else:
            return None
    return _resolve(schema["$ref"]) if "$ref" in schema else schema


def _resolve(ref: str) -> dict:
    node = SCHEMA
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _leaves(values, path=()):
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path


def test_schema_describes_every_value_and_nothing_else():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    unknown = [".".join(p) for p in _leaves(values) if _schema_at(SCHEMA, p) is None]
    assert not unknown, f"values.yaml keys missing from values.schema.json: {unknown}"
    undocumented = [key for key in values if "description" not in SCHEMA["properties"][key]]
    assert not undocumented, f"top-level values without a description: {undocumented}"
    # ... and the schema has no key the chart does not have (`global` is Helm's own).
    assert set(SCHEMA["properties"]) - {"global"} == set(values), set(SCHEMA["properties"]) ^ set(values)


@pytest.mark.parametrize(
    "setting, named",
    [
        ("stores.artifactStor=s3://ml/fti", "artifactStor"),  # misspelled
        ("metrics.serviceMonitor.enabeld=true", "enabeld"),  # misspelled, deeper
        ("watchNamespace={fraud}", "watchNamespace"),  # misspelled, top level
        ("replicaCount=one", "/replicaCount"),  # mistyped
        ("metrics.port=http", "/metrics/port"),
        ("logLevel=verbose", "/logLevel"),  # not one of the levels
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("stores.onlineStore=postgres://db", "/stores/onlineStore"),
    ],
)
def test_a_wrong_value_fails_naming_the_field(tmp_path, setting, named):
    for command in (["template", "fti", str(CHART)], ["lint", str(CHART)]):
        result = helm(*command, "--set", setting, check=False, tmp=tmp_path)
        assert result.returncode != 0, f"helm {command[0]} accepted {setting}"
        assert named in result.stderr + result.stdout, result.stderr + result.stdout


# ---- defaults that work, or refuse naming the value to set ---------------------------------


def test_default_stores_live_on_the_data_volume(tmp_path):
    """The default install: artifacts (file://) and the SQLite online store on the PVC fti-data,
    which every pipeline namespace provides (docs/install.md, "Stores")."""
    [deploy] = by_kind(render(tmp_path), "Deployment")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FTI_ARTIFACT_STORE"] == "file:///var/lib/fti/artifacts"
    assert env["FTI_STORE_VOLUME_CLAIM"] == "fti-data" and env["FTI_DATA_VOLUME_PATH"] == "/var/lib/fti"
    assert env["FTI_ONLINE_STORE"] == "sqlite:///var/lib/fti/online.db"
    # The operator accepts what the chart gives it (operator/fti_operator/config.py).
    from fti_operator.config import OperatorConfig

    config = OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    assert config.store_volume_claim == "fti-data" and config.online_store == "sqlite:///var/lib/fti/online.db"


def test_s3_without_a_volume_has_no_default_online_store(tmp_path):
    docs = render(tmp_path, "stores.artifactStore=s3://ml/fti", "stores.volumeClaim=")
    env = {e["name"] for e in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "FTI_ONLINE_STORE" not in env and "FTI_STORE_VOLUME_CLAIM" not in env


@pytest.mark.parametrize(
    "settings, named",
    [
        (["stores.volumeClaim="], "stores.volumeClaim"),  # file:// on no shared volume
        (["stores.artifactStore=file:///data/artifacts"], "stores.dataVolumePath"),  # not on the volume
        (["stores.onlineStore=redis://r:6379/0", "stores.onlineStoreSecret=redis:uri"], "stores.onlineStoreSecret"),
    ],
)
def test_store_values_that_cannot_work_are_refused(tmp_path, settings, named):
    args = ["template", "fti", str(CHART)]
    for s in settings:
        args += ["--set", s]
    result = helm(*args, check=False, tmp=tmp_path)
    assert result.returncode != 0 and named in result.stderr, result.stderr
