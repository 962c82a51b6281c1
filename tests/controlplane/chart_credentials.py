"""The operator's own identity on the test control plane: the chart's ServiceAccount and RBAC.

An operator run with the admin kubeconfig can call anything, so no integration test would
notice a verb charts/fti-operator/templates/rbac.yaml forgot (or one it grants for nothing);
on a cluster the operator runs as the chart's ServiceAccount. This renders the chart with
the built helm, applies only its ServiceAccount and RBAC objects (no Deployment: the
operator under test runs in the test process), asks the TokenRequest API for a token of
that ServiceAccount (`kubectl create token`) and writes a kubeconfig holding the token and
the control plane's CA. Whatever is pointed at that kubeconfig (KUBECONFIG for the
operator, `ChartCredentials.api_client()`, raw HTTP with `.token`) has exactly the rights
the chart gives the operator.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "fti-operator"
RBAC_KINDS = frozenset({"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
# The peering objects Kopf meets its peers in; they need the kopf.dev CRDs (crds/) installed.
PEERING_KINDS = frozenset({"ClusterKopfPeering", "KopfPeering"})
FIELD_MANAGER = "fti-test-chart-credentials"


@dataclass(frozen=True)
class ChartCredentials:
    """One release's ServiceAccount, its token and a kubeconfig for it."""

    kubeconfig: Path
    release: str
    namespace: str  # the release namespace: where the ServiceAccount lives
    service_account: str
    watch_namespaces: tuple[str, ...]  # empty: the chart's cluster-wide mode
    token: str
    server: str
    ca_file: Path
    applied: tuple[dict, ...]  # the chart's objects this created (removed by `remove`)
    created_namespaces: tuple[str, ...]

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @property
    def cluster_wide(self) -> bool:
        return not self.watch_namespaces

    def api_client(self):
        """A kubernetes.client.ApiClient authenticated as the ServiceAccount (a new one per call)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", query: str = ""
    ) -> tuple[int, dict]:
        """One raw HTTP request as the ServiceAccount: (status, decoded JSON body), errors included.

        Raw on purpose: a test of what the API server allows must send the exact verb and
        Content-Type the operator sends (a server-side apply PATCH, a PUT), not what a client
        library's helper happens to choose.
        """
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.server}{path}{'?' + query if query else ''}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **({"Content-Type": content_type} if data is not None else {}),
            },
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(req, context=context, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def render(
    control_plane, release: str, namespace: str, watch_namespaces: Iterable[str] = (), sets: Iterable[str] = ()
) -> list[dict]:
    """`helm template` of the chart, as parsed documents."""
    args: list[Any] = ["template", release, CHART, "--namespace", namespace]
    watch = list(watch_namespaces)
    if watch:
        args += ["--set", "watchNamespaces={" + ",".join(watch) + "}"]
    for value in sets:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(control_plane.helm(*args).stdout) if doc]


def _ensure_namespaces(control_plane, names: Iterable[str]) -> list[str]:
    """Create the namespaces that do not exist yet; returns those it created."""
    created = []
    for name in dict.fromkeys(names):
        if control_plane.kubectl("get", "namespace", name, check=False).returncode != 0:
            control_plane.kubectl("create", "namespace", name)
            created.append(name)
    return created


def write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fti-test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "fti-test", "context": {"cluster": "fti-test", "user": user}}],
        "current-context": "fti-test",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)  # the token is a credential: never readable by others
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def install(
    control_plane,
    namespace: str,
    watch_namespaces: Iterable[str] = (),
    release: str = "fti",
    peering: bool = False,
    sets: Iterable[str] = (),
    duration: str = "2h",
    directory: Path | None = None,
) -> ChartCredentials:
    """Apply the chart's ServiceAccount and RBAC (and with `peering` its peering objects) for
    `release` in `namespace`, and return credentials for that ServiceAccount.

    Namespaces that do not exist yet (the release's, the watched ones) are created and
    removed again by `remove`. ClusterRoles are named after the release: two installs on
    one control plane need two release names.
    """
    watch = tuple(watch_namespaces)
    docs = render(control_plane, release, namespace, watch, sets)
    kinds = RBAC_KINDS | (PEERING_KINDS if peering else frozenset())
    objects = tuple(doc for doc in docs if doc["kind"] in kinds)
    [sa] = [doc["metadata"]["name"] for doc in objects if doc["kind"] == "ServiceAccount"]
    created = _ensure_namespaces(control_plane, (namespace, *watch))
    control_plane.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", input=yaml.safe_dump_all(objects)
    )
    # TokenRequest: a bound, expiring token, as the kubelet would mount into the operator's pod.
    token = control_plane.kubectl("create", "token", sa, "-n", namespace, "--duration", duration).stdout.strip()
    ca_file = Path(control_plane.pki.ca.cert)
    path = (directory or control_plane.workdir / "credentials") / f"{release}.{namespace}.kubeconfig"
    write_kubeconfig(path, control_plane.server, ca_file, f"system:serviceaccount:{namespace}:{sa}", token)
    return ChartCredentials(
        kubeconfig=path,
        release=release,
        namespace=namespace,
        service_account=sa,
        watch_namespaces=watch,
        token=token,
        server=control_plane.server,
        ca_file=ca_file,
        applied=objects,
        created_namespaces=tuple(created),
    )


def remove(control_plane, credentials: ChartCredentials) -> None:
    """Delete what `install` created: the applied objects, then the namespaces it created."""
    control_plane.kubectl(
        "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=yaml.safe_dump_all(credentials.applied), check=False
    )
    for name in credentials.created_namespaces:
        control_plane.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false", check=False)
    credentials.kubeconfig.unlink(missing_ok=True)
