"""The chart's RBAC on the real API server: every call the operator makes is allowed, nothing else.

The operator runs as the chart's ServiceAccount (tests/controlplane/chart_credentials.py), in
both of the chart's modes. `CALLS` is the table of every (verb, resource, subresource) the
operator and Kopf use, each with the code path that needs it; the API server answers a
SelfSubjectAccessReview for each, asked with the ServiceAccount's own token. `REFUSED` lists
what the operator must not be able to do. Then the ServiceAccount does what the operator does
when a child changes: a server-side apply of a CronJob and of a KServe InferenceService,
twice, the second time with a changed field; a PUT of the same object is refused.

When the operator starts calling something new, add a row here and a rule to
charts/fti-operator/templates/rbac.yaml together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from controlplane.fixtures import CREDENTIAL_MODES, ONLINE_STORE_SECRET, STORE_CREDENTIALS_SECRET, STORE_VOLUME_CLAIM

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FTI = "fti.dev"
KINDS = ("featurepipelines", "trainingpipelines", "inferenceservices")
KSERVE = "serving.kserve.io"
PEERING = "fti-operator"  # the chart's default peering.name
KSERVE_NAMESPACE, KSERVE_CONFIG = "kserve", "inferenceservice-config"  # the chart's default kserve.namespace
FIELD_MANAGER = "fti-operator"
BOTH, CLUSTER_WIDE, WATCH_NAMESPACES = CREDENTIAL_MODES, ("cluster-wide",), ("watch-namespaces",)


@dataclass(frozen=True)
class Call:
    """One authorisation question. `scope`: "ns" = in a watched namespace; "watch" = a list or
    watch the way Kopf runs it (all namespaces at once when cluster-wide, per watched namespace
    otherwise); "kserve" = KServe's namespace; "cluster" = a cluster-scoped resource; "unwatched" = a namespace the operator
    does not watch; "all" = all namespaces at once."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    scope: str = "ns"
    name: str = ""
    modes: tuple[str, ...] = BOTH
    why: str = ""


def _kinds(verb: str, scope: str = "ns", subresource: str = "", why: str = "") -> list[Call]:
    return [Call(verb, FTI, kind, subresource, scope, why=why) for kind in KINDS]


# Every call the operator makes, and who makes it.
CALLS: list[Call] = [
    *_kinds("list", "watch", why="Kopf: watches and indexes of our kinds (controller/indexes.py, triggers.py)"),
    *_kinds("watch", "watch", why="Kopf: watches and indexes of our kinds (controller/indexes.py, triggers.py)"),
    *_kinds("get", why="a queued key not in the body cache (controller/runtime.py); status conflict (reconcile/writes.py)"),
    Call("patch", FTI, "featurepipelines", why="metadata.finalizers while a version is served (reconcile/feature.py)"),
    Call("patch", FTI, "trainingpipelines", why="a run-now token when drift asks for retraining (reconcile/monitoring.py)"),
    *_kinds("patch", subresource="status", why="status merge patch (reconcile/writes.py)"),
    *_kinds(
        "update",
        subresource="finalizers",
        why="admission: children's ownerReferences carry blockOwnerDeletion (render/pods.py owner_reference)",
    ),
    Call("get", "batch", "jobs", why="reconcile/children.py apply_child: a run's Job, read back after a 409"),
    Call("create", "batch", "jobs", why="reconcile/children.py apply_child: a run's Job (immutable: created only)"),
    Call("list", "batch", "jobs", why="a resource's runs by label (reconcile/feature.py, training.py, inference.py)"),
    Call("list", "batch", "jobs", scope="watch", why="Kopf: job_event watch (controller/triggers.py)"),
    Call("watch", "batch", "jobs", scope="watch", why="Kopf: job_event watch (controller/triggers.py)"),
    Call("delete", "batch", "jobs", why="a batch InferenceService's Job after a mode switch (reconcile/inference.py)"),
    Call("get", "batch", "cronjobs", why="reconcile/children.py apply_child: compare before applying"),
    Call("patch", "batch", "cronjobs", why="apply_child (server-side apply); (un)suspending a version (reconcile/feature.py)"),
    Call("create", "batch", "cronjobs", why="server-side apply of a CronJob that does not exist yet"),
    Call("list", "batch", "cronjobs", why="a FeaturePipeline's versions (reconcile/feature.py)"),
    Call("delete", "batch", "cronjobs", why="schedule removed (reconcile/feature.py); mode switch (reconcile/inference.py)"),
    Call("get", KSERVE, "inferenceservices", why="apply_child; the other mode's child (reconcile/inference.py)"),
    Call("patch", KSERVE, "inferenceservices", why="reconcile/children.py apply_child: server-side apply"),
    Call("create", KSERVE, "inferenceservices", why="server-side apply of one that does not exist yet"),
    Call("delete", KSERVE, "inferenceservices", why="a switch to batch mode (reconcile/inference.py)"),
    Call("list", KSERVE, "inferenceservices", scope="watch", why="Kopf: kserve_event watch (controller/triggers.py)"),
    Call("watch", KSERVE, "inferenceservices", scope="watch", why="Kopf: kserve_event watch (controller/triggers.py)"),
    Call("list", "", "pods", why="a finished Job's pod for its termination message (reconcile/runs.py)"),
    Call(
        "get",
        "",
        "configmaps",
        scope="kserve",
        name=KSERVE_CONFIG,
        why="KServe's default deployment mode for a canary (reconcile/kserve.py)",
    ),
    Call("create", "", "events", why="reconcile/writes.py emit_event; Kopf's event poster"),
    # The releases are installed with stores.credentialsSecret, onlineStoreSecret and volumeClaim
    # (controlplane/fixtures.py STORE_SETS): each is checked by name before pods are rendered.
    Call(
        "get",
        "",
        "secrets",
        name=STORE_CREDENTIALS_SECRET,
        why="the credentials Secret exists, metadata only (reconcile/store_access.py)",
    ),
    Call("get", "", "secrets", name=ONLINE_STORE_SECRET, why="the online-store Secret has its key (reconcile/store_access.py)"),
    Call(
        "get",
        "",
        "persistentvolumeclaims",
        name=STORE_VOLUME_CLAIM,
        why="the data volume's PVC exists, metadata only (reconcile/store_access.py)",
    ),
    Call("list", "apiextensions.k8s.io", "customresourcedefinitions", scope="cluster", why="Kopf: resource observer"),
    Call("watch", "apiextensions.k8s.io", "customresourcedefinitions", scope="cluster", why="Kopf: resource observer"),
    Call("list", "", "namespaces", scope="cluster", modes=WATCH_NAMESPACES, why="Kopf: namespace observer"),
    Call("watch", "", "namespaces", scope="cluster", modes=WATCH_NAMESPACES, why="Kopf: namespace observer"),
    Call("list", "kopf.dev", "clusterkopfpeerings", scope="cluster", modes=CLUSTER_WIDE, why="Kopf: peering watch"),
    Call("watch", "kopf.dev", "clusterkopfpeerings", scope="cluster", modes=CLUSTER_WIDE, why="Kopf: peering watch"),
    Call(
        "patch",
        "kopf.dev",
        "clusterkopfpeerings",
        scope="cluster",
        name=PEERING,
        modes=CLUSTER_WIDE,
        why="Kopf: peering keep-alive",
    ),
    Call("list", "kopf.dev", "kopfpeerings", modes=WATCH_NAMESPACES, why="Kopf: peering watch"),
    Call("watch", "kopf.dev", "kopfpeerings", modes=WATCH_NAMESPACES, why="Kopf: peering watch"),
    Call("patch", "kopf.dev", "kopfpeerings", name=PEERING, modes=WATCH_NAMESPACES, why="Kopf: peering keep-alive"),
]

# What the operator must not be able to do, and why it never needs to.
REFUSED: list[Call] = [
    Call("update", "batch", "cronjobs", why="children are applied server-side, never replaced (PUT)"),
    Call("update", "batch", "jobs", why="Jobs are immutable: created, never replaced"),
    Call("patch", "batch", "jobs", why="Jobs are immutable: created, never patched"),
    Call("update", KSERVE, "inferenceservices", why="children are applied server-side, never replaced (PUT)"),
    Call("watch", "batch", "cronjobs", why="nothing watches CronJobs"),
    *_kinds("create", why="users create our objects, the operator never does"),
    *_kinds("delete", why="users delete our objects, the operator never does"),
    *_kinds("update", why="metadata is merge-patched, never replaced"),
    Call("patch", FTI, "inferenceservices", why="only FeaturePipelines (finalizers) and TrainingPipelines (run-now) are patched"),
    *_kinds("update", subresource="status", why="status is merge-patched"),
    *_kinds("get", subresource="status", why="status comes with the object"),
    Call("get", "", "secrets", why="only the configured Secrets, by name"),
    Call("get", "", "secrets", name=f"{STORE_CREDENTIALS_SECRET}-other", why="a neighbouring Secret is not ours to read"),
    Call("get", "", "secrets", name="default-token", why="no Secret but the configured ones"),
    Call("list", "", "secrets", why="secrets only by reference: checked by name, never listed"),
    Call("watch", "", "secrets", why="secrets only by reference"),
    Call("update", "", "secrets", name=STORE_CREDENTIALS_SECRET, why="the operator never writes a Secret"),
    Call("patch", "", "secrets", name=ONLINE_STORE_SECRET, why="the operator never writes a Secret"),
    Call("get", "", "secrets", scope="unwatched", name=STORE_CREDENTIALS_SECRET, modes=WATCH_NAMESPACES, why="outside"),
    Call("get", "", "persistentvolumeclaims", why="only the data volume's PVC, by name"),
    Call("get", "", "persistentvolumeclaims", name=f"{STORE_VOLUME_CLAIM}-other", why="only the configured PVC"),
    Call("list", "", "persistentvolumeclaims", why="checked by name, never listed"),
    Call("watch", "", "persistentvolumeclaims", why="checked by name, never watched"),
    Call("patch", "", "persistentvolumeclaims", name=STORE_VOLUME_CLAIM, why="the operator never writes a PVC"),
    Call("get", "", "configmaps", why="configuration comes from the environment"),
    Call("get", "", "configmaps", scope="kserve", why="of KServe's ConfigMaps only inferenceservice-config"),
    Call("get", "", "configmaps", scope="kserve", name="config-deployment", why="only inferenceservice-config"),
    Call("list", "", "configmaps", scope="kserve", why="one ConfigMap, read by name"),
    Call("watch", "", "configmaps", scope="kserve", why="one ConfigMap, read by name"),
    Call("patch", "", "configmaps", scope="kserve", name=KSERVE_CONFIG, why="KServe's configuration is only read"),
    Call("get", "", "pods", why="pods are only listed by job-name"),
    Call("watch", "", "pods", why="pods are only listed by job-name"),
    Call("create", "", "pods", why="Jobs create pods, not the operator"),
    Call("delete", "", "pods", why="Jobs own their pods"),
    Call("get", "", "pods", "log", why="the result is the termination message, not the log"),
    Call("create", "", "pods", "exec", why="never"),
    Call("patch", "", "events", why="events are only created"),
    Call("create", "events.k8s.io", "events", why="events go through core/v1"),
    Call("create", "apps", "deployments", why="not a child kind"),
    Call("create", "", "serviceaccounts", "token", why="no minting of tokens"),
    Call("create", "rbac.authorization.k8s.io", "rolebindings", why="no escalation"),
    Call("create", "rbac.authorization.k8s.io", "clusterrolebindings", scope="cluster", why="no escalation"),
    Call("create", "apiextensions.k8s.io", "customresourcedefinitions", scope="cluster", why="CRDs come with the chart"),
    Call("delete", "apiextensions.k8s.io", "customresourcedefinitions", scope="cluster", why="CRDs come with the chart"),
    Call("create", "", "namespaces", scope="cluster", why="never"),
    Call("delete", "", "namespaces", scope="cluster", why="never"),
    Call("list", "", "nodes", scope="cluster", why="never"),
    Call("list", "", "namespaces", scope="cluster", modes=CLUSTER_WIDE, why="cluster-wide Kopf never reads namespaces"),
    Call(
        "patch",
        "kopf.dev",
        "clusterkopfpeerings",
        scope="cluster",
        name="someone-else",
        modes=CLUSTER_WIDE,
        why="only our own peering object",
    ),
    Call("create", "kopf.dev", "clusterkopfpeerings", scope="cluster", why="the chart creates the peering object"),
    Call("delete", "kopf.dev", "clusterkopfpeerings", scope="cluster", why="the chart owns the peering object"),
    Call("patch", "kopf.dev", "kopfpeerings", name="someone-else", modes=WATCH_NAMESPACES, why="only our own"),
    Call("create", "kopf.dev", "kopfpeerings", why="the chart creates the peering objects"),
    # watchNamespaces: nothing outside the watched namespaces.
    *[
        Call(verb, group, resource, scope=scope, modes=WATCH_NAMESPACES, why="outside the watched namespaces")
        for verb, group, resource, scope in [
            ("list", FTI, "featurepipelines", "unwatched"),
            ("get", FTI, "featurepipelines", "unwatched"),
            ("create", "batch", "cronjobs", "unwatched"),
            ("create", "batch", "jobs", "unwatched"),
            ("create", KSERVE, "inferenceservices", "unwatched"),
            ("create", "", "events", "unwatched"),
            ("list", "", "pods", "unwatched"),
            ("list", FTI, "featurepipelines", "all"),
            ("watch", "batch", "jobs", "all"),
            ("list", "kopf.dev", "clusterkopfpeerings", "cluster"),
        ]
    ],
]


@pytest.fixture(scope="module", params=CREDENTIAL_MODES)
def creds(request, chart_credentials):
    return chart_credentials(request.param)


def _namespaces(creds, scope: str, unwatched: str) -> list[str]:
    """The namespaces (\"\" = all, or cluster scope) a question is asked in."""
    if scope == "cluster" or scope == "all":
        return [""]
    if scope == "unwatched":
        return [unwatched]
    if scope == "kserve":
        return [KSERVE_NAMESPACE]
    if creds.cluster_wide:
        return [""] if scope == "watch" else [unwatched]  # cluster-wide: any namespace will do
    return list(creds.watch_namespaces)


def allowed(creds, call: Call, namespace: str) -> bool:
    attributes = {"verb": call.verb, "group": call.group, "resource": call.resource, "namespace": namespace}
    attributes.update({k: v for k, v in (("subresource", call.subresource), ("name", call.name)) if v})
    status, body = creds.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": attributes}},
    )
    assert status == 201, body
    return bool(body["status"].get("allowed"))


def _describe(call: Call, namespace: str) -> str:
    what = f"{call.verb} {call.resource}{'/' + call.subresource if call.subresource else ''}"
    where = f"{call.group or 'core'}" + (f" name={call.name}" if call.name else "")
    return f"{what} ({where}) in {namespace or 'all namespaces / cluster'}: {call.why}"


def _answers(creds, calls: list[Call]) -> list[tuple[Call, str, bool]]:
    mode = "cluster-wide" if creds.cluster_wide else "watch-namespaces"
    unwatched = f"not-watched-{uuid.uuid4().hex[:6]}"
    return [
        (call, ns, allowed(creds, call, ns))
        for call in calls
        if mode in call.modes
        for ns in _namespaces(creds, call.scope, unwatched)
    ]


def test_the_token_is_the_charts_service_account(creds):
    status, body = creds.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status == 201, body
    assert body["status"]["userInfo"]["username"] == creds.username
    # The kubeconfig is what the operator is started with: a client built from it works as the ServiceAccount.
    ns = creds.watch_namespaces[0] if creds.watch_namespaces else creds.namespace
    with creds.api_client() as api:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        # Listing works (what the operator needs); what is listed is not this test's business: the
        # watched namespaces are shared by the session, and a CronJob applied there by an earlier
        # module (the example's feature schedule, its monitoring check) may have started a Job.
        assert isinstance(batch.list_namespaced_job(ns).items, list)
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_secret(ns)
        assert refused.value.status == 403


def test_every_call_the_operator_makes_is_allowed(creds):
    denied = [_describe(call, ns) for call, ns, ok in _answers(creds, CALLS) if not ok]
    assert not denied, "the chart's RBAC refuses calls the operator makes:\n  " + "\n  ".join(denied)


def test_what_the_operator_never_does_is_refused(creds):
    granted = [_describe(call, ns) for call, ns, ok in _answers(creds, REFUSED) if ok]
    assert not granted, "the chart's RBAC grants more than the operator uses:\n  " + "\n  ".join(granted)


# ---- server-side apply with the chart's credentials ---------------------------------------------
def _owner(k8s, example: str, plural: str, namespace: str) -> dict:
    """One of our objects, created as the admin (as a user would), to own the children below."""
    body = yaml.safe_load((ROOT / "examples" / "fraud" / example).read_text())
    body["metadata"] = {"name": f"{body['metadata']['name']}-{uuid.uuid4().hex[:6]}", "namespace": namespace}
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(FTI, "v1alpha1", namespace, plural, body)


def _owner_reference(owner: dict) -> dict:
    # As the operator renders it (render/pods.py owner_reference): blockOwnerDeletion is what
    # needs `update` on the owner's finalizers under OwnerReferencesPermissionEnforcement.
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _path(obj: dict) -> str:
    api, meta = obj["apiVersion"], obj["metadata"]
    plural = {"CronJob": "cronjobs", "InferenceService": "inferenceservices"}[obj["kind"]]
    return f"/apis/{api}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def server_side_apply(creds, obj: dict) -> tuple[int, dict]:
    """The operator's write of a child: PATCH application/apply-patch+yaml (JSON is YAML)."""
    return creds.request(
        "PATCH", _path(obj), obj, content_type="application/apply-patch+yaml", query=f"fieldManager={FIELD_MANAGER}&force=true"
    )


def _workspace(creds, namespace: str) -> str:
    return namespace if creds.cluster_wide else creds.watch_namespaces[0]


def _cronjob(name: str, namespace: str, owner: dict, schedule: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "fti-operator"},
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "suspend": True,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "feature", "image": "ghcr.io/fti-dev/fti-feature:test", "command": ["true"]}],
                        }
                    }
                }
            },
        },
    }


def _kserve(name: str, namespace: str, owner: dict, max_replicas: int) -> dict:
    return {
        "apiVersion": f"{KSERVE}/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "fti-operator"},
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": max_replicas,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://ml/fti/models/fraud/1"},
            }
        },
    }


def _apply_twice_then_put(creds, first: dict, second: dict, changed) -> None:
    status, created = server_side_apply(creds, first)
    assert status == 201, created.get("message", created)
    status, updated = server_side_apply(creds, second)
    assert status == 200, updated
    assert changed(updated), updated["spec"]
    managers = {(m["manager"], m["operation"]) for m in updated["metadata"]["managedFields"]}
    assert (FIELD_MANAGER, "Apply") in managers, managers
    # What the operator did before server-side apply: a PUT of the whole object. Refused.
    status, refused = creds.request("PUT", _path(second), {**updated, "spec": first["spec"]})
    assert status == 403 and refused.get("reason") == "Forbidden", refused
    assert "update" in refused["message"], refused["message"]


def test_a_cronjob_is_applied_server_side_and_never_replaced(creds, fti_crds, k8s, namespace):
    ns = _workspace(creds, namespace)
    owner = _owner(k8s, "feature-pipeline-transactions.yaml", "featurepipelines", ns)
    name = f"{owner['metadata']['name']}-v1"
    _apply_twice_then_put(
        creds,
        _cronjob(name, ns, owner, "*/15 * * * *"),
        _cronjob(name, ns, owner, "*/30 * * * *"),
        lambda obj: obj["spec"]["schedule"] == "*/30 * * * *",
    )


def test_a_kserve_inferenceservice_is_applied_server_side_and_never_replaced(creds, fti_crds, k8s, namespace):
    ns = _workspace(creds, namespace)
    owner = _owner(k8s, "inference-online.yaml", "inferenceservices", ns)
    name = owner["metadata"]["name"]
    _apply_twice_then_put(
        creds, _kserve(name, ns, owner, 2), _kserve(name, ns, owner, 3), lambda obj: obj["spec"]["predictor"]["maxReplicas"] == 3
    )


def test_outside_the_watched_namespaces_nothing_is_applied(chart_credentials, fti_crds, k8s, namespace):
    creds = chart_credentials("watch-namespaces")
    assert namespace not in creds.watch_namespaces
    owner = _owner(k8s, "feature-pipeline-transactions.yaml", "featurepipelines", namespace)
    status, body = server_side_apply(creds, _cronjob(f"{owner['metadata']['name']}-v1", namespace, owner, "*/15 * * * *"))
    assert status == 403 and body.get("reason") == "Forbidden", body
