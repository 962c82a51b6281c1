"""deploy/install.yaml on a control plane of its own: applied with `kubectl apply
--server-side` as docs/install.md says, every object there and usable, then deleted with
`kubectl delete` until nothing of it is left.

Its own control plane, not the session's: the file installs cluster-scoped objects (the
CRDs, the ClusterRole, the ClusterKopfPeering) that the session's other tests share, and
deleting them is part of what is tested.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from controlplane.binaries import MissingBinaries, find_binaries
from controlplane.cluster import ControlPlane
from support.wait import WaitTimeout, wait_until

pytestmark = pytest.mark.integration

INSTALL = Path(__file__).resolve().parents[2] / "deploy" / "install.yaml"
SA = "system:serviceaccount:fti-system:fti-operator"


@pytest.fixture(scope="module")
def plane(control_plane):  # the session fixture decides whether to skip or fail when binaries are missing
    try:
        binaries = find_binaries()
    except MissingBinaries as exc:  # pragma: no cover - control_plane already skipped
        pytest.skip(str(exc))
    workdir = Path(tempfile.mkdtemp(prefix="fti-install-yaml-"))
    try:
        with ControlPlane(binaries, workdir) as own:
            yield own
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _left(plane) -> list[str]:
    """The objects of install.yaml that still exist (a kind whose CRD is gone has none)."""
    left = []
    for doc in yaml.safe_load_all(INSTALL.read_text()):
        if not doc:
            continue
        group = doc["apiVersion"].rpartition("/")[0]
        ref = f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"
        ns = ["-n", doc["metadata"]["namespace"]] if "namespace" in doc["metadata"] else []
        got = plane.kubectl("get", ref, *ns, "-o", "name", check=False)
        if got.returncode == 0:
            left.append(ref)
        elif "NotFound" not in got.stderr and "doesn't have a resource type" not in got.stderr:
            raise AssertionError(f"kubectl get {ref}: {got.stderr}")
    return left


def _served(plane) -> None:
    """Wait until every CRD of install.yaml lists its objects. A CRD deleted in the second or so
    before the API server's storage for it is ready keeps a Terminating condition reading
    "could not list instances: storage is (re)initializing" for minutes, retried with backoff
    (the API server's behaviour, seen here 1 run in 3): a user never deletes that fast, the test did."""
    for doc in yaml.safe_load_all(INSTALL.read_text()):
        if doc and doc["kind"] == "CustomResourceDefinition":
            resource = f"{doc['spec']['names']['plural']}.{doc['spec']['group']}"
            wait_until(
                lambda r=resource: plane.kubectl("get", r, "-A", "-o", "name", check=False).returncode == 0,
                timeout=30,
                description=f"{resource} served",
            )


def test_install_yaml_applies_and_deletes_cleanly(plane):
    applied = plane.kubectl("apply", "--server-side", "-f", str(INSTALL), check=False)
    assert applied.returncode == 0, applied.stderr
    for crd in ("featurepipelines.fti.dev", "trainingpipelines.fti.dev", "inferenceservices.fti.dev"):
        plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    _served(plane)
    found = _left(plane)
    for ref in (
        "namespace/fti-system",
        "serviceaccount/fti-operator",
        "clusterrole.rbac.authorization.k8s.io/fti-operator-cluster",
        "clusterrolebinding.rbac.authorization.k8s.io/fti-operator-cluster",
        "deployment.apps/fti-operator",
        "service/fti-operator-metrics",
    ):
        assert ref in found, f"{ref} not installed; found {found}"
    # The Deployment is accepted as written: the controller manager made its ReplicaSet.
    wait_until(
        lambda: plane.kubectl("get", "rs", "-n", "fti-system", "-l", "app.kubernetes.io/name=fti-operator", "-o", "name").stdout,
        timeout=30,
        description="the operator's ReplicaSet",
    )
    deploy = json.loads(plane.kubectl("get", "deploy", "fti-operator", "-n", "fti-system", "-o", "json").stdout)
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "fti-operator"

    # The ServiceAccount has the operator's rights, cluster-wide, and no more.
    def can(verb: str, resource: str, *extra: str) -> bool:
        return plane.kubectl("auth", "can-i", verb, resource, "--as", SA, *extra, check=False).stdout.strip() == "yes"

    assert can("watch", "featurepipelines.fti.dev", "-A")
    assert can("patch", "cronjobs.batch", "-n", "default")
    assert not can("get", "secrets", "-n", "default")

    # Uninstall as docs/install.md says, with no fti.dev object left (step 1 there): `kubectl
    # delete` of the same file, waiting until every object it created is gone. It returns: the
    # namespace and the CRDs have nothing that waits for the operator. (With a FeaturePipeline
    # still carrying fti.dev/feature-versions-in-use the CRD's deletion would wait for the
    # operator the same command removes: that is why the docs delete the resources first.)
    deleted = plane.kubectl(
        "delete", "-f", str(INSTALL), "--ignore-not-found", "--wait=true", "--timeout=120s", check=False, timeout=150
    )
    assert deleted.returncode == 0, deleted.stderr
    assert _left(plane) == []


def test_a_feature_pipeline_left_with_its_finalizer_holds_the_uninstall_until_released(plane):
    """Why docs/install.md deletes the resources before the operator: a CRD goes only once its
    objects are gone, and a FeaturePipeline whose versions a model served carries
    fti.dev/feature-versions-in-use, which only the operator lifts. Removed by the same
    `kubectl delete`, the operator never does, and the CRD (and a `--wait`) waits forever.
    The docs' remedy, the finalizer removed by hand, lets the uninstall finish."""
    applied = plane.kubectl("apply", "--server-side", "-f", str(INSTALL), check=False)
    assert applied.returncode == 0, applied.stderr
    plane.kubectl("wait", "--for=condition=Established", "crd/featurepipelines.fti.dev", "--timeout=30s")
    plane.kubectl("create", "namespace", "fraud-left")
    fp = yaml.safe_load((INSTALL.parents[1] / "examples" / "fraud" / "feature-pipeline-transactions.yaml").read_text())
    # As the operator leaves it while an InferenceService reads its versions (reconcile/feature.py).
    fp["metadata"].update(namespace="fraud-left", finalizers=["fti.dev/feature-versions-in-use"])
    plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(fp))
    _served(plane)

    deleted = plane.kubectl("delete", "-f", str(INSTALL), "--ignore-not-found", "--wait=false", check=False)
    assert deleted.returncode == 0, deleted.stderr

    def crd_waits_for_its_objects() -> bool:
        crd = json.loads(plane.kubectl("get", "crd", "featurepipelines.fti.dev", "-o", "json").stdout)
        terminating = next((c for c in crd["status"].get("conditions") or [] if c["type"] == "Terminating"), {})
        return terminating.get("status") == "True" and terminating.get("reason") == "InstanceDeletionInProgress"

    wait_until(crd_waits_for_its_objects, timeout=60, description="the FeaturePipeline CRD waiting for its object")
    left = json.loads(plane.kubectl("get", "fp", fp["metadata"]["name"], "-n", "fraud-left", "-o", "json").stdout)
    assert left["metadata"].get("deletionTimestamp") and left["metadata"]["finalizers"] == ["fti.dev/feature-versions-in-use"]

    # docs/install.md, "Uninstall": the finalizer removed by hand.
    plane.kubectl(
        "patch", "fp", fp["metadata"]["name"], "-n", "fraud-left", "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    left_now: list[str] = []

    def all_gone() -> bool:
        left_now[:] = _left(plane)
        return not left_now

    try:
        wait_until(all_gone, timeout=120, description="nothing of install.yaml left")
    except WaitTimeout:
        states = [plane.kubectl("get", ref, "-o", "json", check=False).stdout for ref in left_now]
        raise AssertionError(f"still there after 120 s: {left_now}: {states}") from None
    plane.kubectl("delete", "namespace", "fraud-left", "--wait=false")
