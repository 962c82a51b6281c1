"""pytest fixtures for the real control plane (docs/contributing.md).

- ``control_plane`` (session): etcd + kube-apiserver + kube-controller-manager
  with the KServe CRD installed; a ``ControlPlane`` (``.kubeconfig``,
  ``.server``, ``.api_client()``, ``.kubectl()``, ``.helm()``, ``.env()``).
- ``pod_runner`` (session): the kubelet stand-in; ``.add_image()``, ``.logs()``.
- ``namespace`` (function): a fresh namespace per test, deleted afterwards.
- ``module_namespace`` (module): one namespace for a module whose tests leave nothing in it.
- ``k8s`` (session): one shared ``ApiClient``.
- ``chart_credentials`` (session): ``chart_credentials(mode)`` -> the chart's ServiceAccount,
  RBAC and a kubeconfig with its token (chart_credentials.py); mode ``cluster-wide`` or
  ``watch-namespaces`` (two fresh watched namespaces), made once per session.
- ``fti_crds`` (session): the repository's crds/ (our three kinds, Kopf's peerings) applied
  and Established.
- ``operator_kubeconfig`` (session): the path of that kubeconfig, cluster-wide by default;
  ``@pytest.mark.parametrize("operator_kubeconfig", ["watch-namespaces"], indirect=True)``
  asks for the other mode.

Missing binaries skip the tests with instructions, unless
``FTI_REQUIRE_CONTROLPLANE=1`` (CI), which turns that into a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from .binaries import MissingBinaries, find_binaries
from .cluster import ControlPlane
from .processes import stop_all

REQUIRE_ENV = "FTI_REQUIRE_CONTROLPLANE"
KEEP_ENV = "FTI_KEEP_CONTROLPLANE_DIR"  # keep the temp dir (logs, etcd) for debugging


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").lower() in ("1", "true", "yes")


def _report(request, line: str) -> None:
    """Print past pytest's capture, so the startup time shows in every run."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():  # fd 1 is redirected during setup
        reporter.write_line(line)


@pytest.fixture(scope="session")
def control_plane(request):
    try:
        binaries = find_binaries()
    except MissingBinaries as exc:
        if _required():
            pytest.fail(f"{REQUIRE_ENV}=1 but the control plane is unavailable: {exc}", pytrace=False)
        pytest.skip(f"integration tests need the test control plane: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="fti-controlplane-"))
    plane = ControlPlane(binaries, workdir)
    try:
        plane.start()
        _report(
            request,
            f"control plane {binaries.k8s_version} up in {plane.startup_seconds:.1f}s at {plane.server} "
            f"(kubeconfig {plane.kubeconfig})",
        )
        from .kserve import install_crd

        with plane.api_client() as api:
            install_crd(api)
        yield plane
    finally:
        plane.stop()
        stop_all()  # anything a test started and forgot
        if os.environ.get(KEEP_ENV):
            _report(request, f"control plane files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def k8s(control_plane):
    """A kubernetes ``ApiClient`` for the admin, shared by the session."""
    api = control_plane.api_client()
    try:
        yield api
    finally:
        api.close()


CREDENTIAL_MODES = ("cluster-wide", "watch-namespaces")
# The store objects the chart's releases are configured with: the operator may `get` exactly
# these names (charts/fti-operator/templates/rbac.yaml), and tests that run the operator with
# them (test_store_access.py) configure it alike.
STORE_CREDENTIALS_SECRET = "fti-store-credentials"
ONLINE_STORE_SECRET, ONLINE_STORE_KEY = "fti-online-store", "uri"
STORE_VOLUME_CLAIM = "fti-data"  # the chart's default stores.volumeClaim
STORE_SETS = (
    f"stores.credentialsSecret={STORE_CREDENTIALS_SECRET}",
    f"stores.onlineStoreSecret={ONLINE_STORE_SECRET}:{ONLINE_STORE_KEY}",
    f"stores.volumeClaim={STORE_VOLUME_CLAIM}",
)
CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def fti_crds(control_plane, k8s):
    from kubernetes import client

    from support.wait import wait_until

    control_plane.kubectl("apply", "--server-side", "-f", str(CRDS))
    ext = client.ApiextensionsV1Api(k8s)
    for doc in control_plane.kubectl("get", "-f", str(CRDS), "-o", "name").stdout.split():
        name = doc.split("/", 1)[1]
        wait_until(
            lambda name=name: any(
                c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(name).status.conditions or []
            ),
            timeout=30,
            description=f"CRD {name} Established",
        )


@pytest.fixture(scope="session")
def chart_credentials(control_plane):
    """``chart_credentials(mode="cluster-wide")`` -> ``ChartCredentials`` of the chart's ServiceAccount.

    Each mode is its own release (ClusterRoles are cluster-scoped and named after it) in its
    own release namespace; ``watch-namespaces`` also creates the two namespaces it watches.
    """
    from .chart_credentials import install, remove

    made: dict = {}

    def get(mode: str = "cluster-wide"):
        if mode not in CREDENTIAL_MODES:
            raise ValueError(f"mode {mode!r}: one of {CREDENTIAL_MODES}")
        if mode not in made:
            tag = "cw" if mode == "cluster-wide" else "wn"
            suffix = uuid.uuid4().hex[:6]
            watch = (f"fti-watched-a-{suffix}", f"fti-watched-b-{suffix}") if mode == "watch-namespaces" else ()
            made[mode] = install(
                control_plane, f"fti-op-{tag}-{suffix}", watch_namespaces=watch, release=f"fti-{tag}", sets=STORE_SETS
            )
        return made[mode]

    try:
        yield get
    finally:
        for credentials in made.values():
            remove(control_plane, credentials)


@pytest.fixture(scope="session")
def operator_kubeconfig(request, chart_credentials) -> Path:
    """A kubeconfig holding a token of the chart's ServiceAccount: run the operator with it."""
    return chart_credentials(getattr(request, "param", "cluster-wide")).kubeconfig


@pytest.fixture(scope="session")
def pod_runner(control_plane):
    from .pod_runner import PodRunner

    api = control_plane.api_client()
    runner = PodRunner(api, root=control_plane.workdir / "pod-runner").start()
    try:
        yield runner
    finally:
        runner.stop()
        api.close()


@contextlib.contextmanager
def _namespace(k8s, base: str, labels: dict[str, str]):
    """Create a uniquely named namespace, wait for its default ServiceAccount, delete it at the end."""
    from kubernetes import client

    from support.wait import wait_until

    core = client.CoreV1Api(k8s)
    base = base.lower().replace("_", "-")
    name = "t-" + "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    try:
        # ServiceAccount admission rejects pods until the controller made "default".
        wait_until(
            lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
            timeout=30,
            description=f"ServiceAccount {name}/default",
        )
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def namespace(request, k8s):
    """A unique namespace with its default ServiceAccount, deleted after the test.

    Labels can be requested with ``@pytest.mark.namespace_labels({...})``.
    """
    marker = request.node.get_closest_marker("namespace_labels")
    labels = {"fti.dev/test": "true", **(marker.args[0] if marker else {})}
    with _namespace(k8s, request.node.name, labels) as name:
        try:
            yield name
        finally:
            runner = request.getfixturevalue("pod_runner") if "pod_runner" in request.fixturenames else None
            failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
            if runner is not None and failed:
                request.node.add_report_section("call", "pod logs", runner.dump(name) or "(no pod ran)")


@pytest.fixture(scope="module")
def module_namespace(request, k8s):
    """One namespace for a whole module, for tests that leave nothing in it (server-side dry
    runs): the same namespace as ``namespace`` gives, without a create and a delete per test."""
    with _namespace(k8s, request.module.__name__.rpartition(".")[2], {"fti.dev/test": "true"}) as name:
        yield name


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so teardown knows the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_configure(config):
    config.addinivalue_line("markers", "namespace_labels(labels): labels for the `namespace` fixture's namespace")


__all__ = [
    "chart_credentials",
    "control_plane",
    "fti_crds",
    "k8s",
    "module_namespace",
    "namespace",
    "operator_kubeconfig",
    "pod_runner",
    "pytest_configure",
    "pytest_runtest_makereport",
]
