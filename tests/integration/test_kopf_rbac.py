"""Kopf, run as the chart's ServiceAccount, is never refused a request.

What Kopf calls depends on its mode and version, not on our code: with a namespace list its
namespace observer lists and watches all namespaces, cluster-wide it never reads them; its
peering lists, watches and patches the peering object; its poster creates Events. Reading
Kopf once is not enough (the chart used to grant namespaces in the wrong mode, and Kopf
retried the refused list for about a minute before starting any watch), so this runs Kopf
with handlers on the same resources the operator registers (controller/indexes.py and triggers.py: indexes and
event handlers on our three kinds, event handlers on managed Jobs and KServe
InferenceServices) with the chart's credentials in both chart modes, waits until it has
watched, peered and posted, and fails on any refused request Kopf logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from pathlib import Path

import kopf
import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane.fixtures import CREDENTIAL_MODES
from support.wait import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "fti.dev", "v1alpha1"
KINDS = ("featurepipelines", "trainingpipelines", "inferenceservices")
MANAGED = {"app.kubernetes.io/managed-by": "fti-operator"}
PEERING = "fti-operator"  # the chart's default peering.name
REFUSAL_MARKS = ("403", "forbidden", "not enough permissions")


class Refusals(logging.Handler):
    """Kopf's log records that speak of a refused request (it logs each attempt, then gives up)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(mark in message.lower() for mark in REFUSAL_MARKS):
            self.records.append(f"{record.name}: {message[:300]}")


def _registry(creds, seen: set[str], target: str, note: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_):
        return kopf.ConnectionInfo(
            server=creds.server, ca_path=str(creds.ca_file), token=creds.token, default_namespace=creds.namespace
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_):
        settings.posting.level = logging.WARNING  # as controller/app.py configure()
        settings.watching.server_timeout = 60

    async def index(name, namespace, **_):
        return {(namespace, name): True}

    async def event(name, body, **_):
        if name == target and name not in seen:  # Kopf's poster creates it (as for handler logs with posting.loggers)
            kopf.warn(body, reason="RBACTest", message=note)
        seen.add(name)

    async def ignore(**_):
        return None

    for plural in KINDS:
        kopf.index(GROUP, VERSION, plural, id=f"by_name_{plural}", registry=registry)(index)
        kopf.on.event(GROUP, VERSION, plural, id=f"event_{plural}", registry=registry)(event)
    kopf.on.event("batch", "v1", "jobs", labels=MANAGED, registry=registry)(ignore)
    kopf.on.event("serving.kserve.io", "v1beta1", "inferenceservices", labels=MANAGED, registry=registry)(ignore)
    return registry


def _ensure_peering(k8s, creds) -> None:
    """The peering objects the chart creates (templates/peering.yaml)."""
    custom = client.CustomObjectsApi(k8s)
    try:
        if creds.cluster_wide:
            custom.create_cluster_custom_object(
                "kopf.dev",
                "v1",
                "clusterkopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}},
            )
        for ns in creds.watch_namespaces:
            custom.create_namespaced_custom_object(
                "kopf.dev",
                "v1",
                ns,
                "kopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING, "namespace": ns}},
            )
    except ApiException as exc:
        if exc.status != 409:
            raise


def _peers(k8s, creds) -> dict:
    custom = client.CustomObjectsApi(k8s)
    if creds.cluster_wide:
        return custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", PEERING).get("status") or {}
    ns = creds.watch_namespaces[0]
    return custom.get_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", PEERING).get("status") or {}


@pytest.mark.parametrize("mode", CREDENTIAL_MODES)
def test_kopf_is_never_refused(mode, chart_credentials, fti_crds, k8s, namespace):
    creds = chart_credentials(mode)
    ns = namespace if creds.cluster_wide else creds.watch_namespaces[0]
    _ensure_peering(k8s, creds)
    body = yaml.safe_load((ROOT / "examples" / "fraud" / "feature-pipeline-transactions.yaml").read_text())
    name = f"kopf-rbac-{uuid.uuid4().hex[:6]}"
    body["metadata"] = {"name": name, "namespace": ns}
    note = f"seen by {name}"
    identity = f"rbac-test-{mode}-{uuid.uuid4().hex[:4]}"

    seen: set[str] = set()
    refusals = Refusals()
    kopf_logger = logging.getLogger("kopf")
    kopf_logger.addHandler(refusals)
    level = kopf_logger.level
    kopf_logger.setLevel(logging.DEBUG)  # each refused attempt is logged at ERROR, the give-up at WARNING
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        name=f"kopf-{mode}",
        daemon=True,
        target=lambda: asyncio.run(
            kopf.operator(
                registry=_registry(creds, seen, name, note),
                clusterwide=creds.cluster_wide,
                namespaces=list(creds.watch_namespaces),
                peering_name=PEERING,
                priority=0,
                identity=identity,
                stop_flag=stop,
                ready_flag=ready,
            )
        ),
    )
    thread.start()
    try:
        assert ready.wait(60), "Kopf did not start"
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(GROUP, VERSION, ns, "featurepipelines", body)
        wait_until(lambda: name in seen, timeout=60, description=f"Kopf's watch delivering {ns}/{name}")
        wait_until(lambda: identity in _peers(k8s, creds), timeout=60, description="Kopf's peering keep-alive")
        core = client.CoreV1Api(k8s)
        wait_until(
            lambda: [
                e for e in core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items if e.message == note
            ],
            timeout=60,
            description="the Event Kopf's poster creates",
        )
    finally:
        stop.set()
        thread.join(60)
        kopf_logger.removeHandler(refusals)
        kopf_logger.setLevel(level)
    assert not thread.is_alive(), "Kopf did not stop"
    assert not refusals.records, "Kopf was refused with the chart's credentials:\n  " + "\n  ".join(refusals.records)
