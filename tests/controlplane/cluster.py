"""Start and stop one control plane: etcd, kube-apiserver, kube-controller-manager.

All three listen on free ports on 127.0.0.1 and keep their state in one temp
directory, so parallel sessions never collide and nothing outlives ``stop()``.
There is no kubelet and no scheduler: pods are bound and executed by
pod_runner.py, the way a kubelet would complete them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from support.wait import wait_until

from . import pki as pki_mod
from .binaries import Binaries
from .processes import ManagedProcess

SERVICE_CIDR = "10.0.0.0/24"
STARTUP_TIMEOUT = float(os.environ.get("FTI_CONTROLPLANE_STARTUP_TIMEOUT", "120"))
# No kubelet heartbeats the runner's fake Node, so the node-lifecycle controllers
# would taint it unreachable and evict every pod; everything else runs as upstream.
DISABLED_CONTROLLERS = ("-node-lifecycle-controller", "-taint-eviction-controller")


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


class ControlPlane:
    """A running control plane. Use ``start()``/``stop()`` or ``with``."""

    def __init__(self, binaries: Binaries, workdir: Path, address: str = "127.0.0.1") -> None:
        """``address``: where kube-apiserver listens and what it advertises. Loopback
        for the pod runner; a real node (tests/node/) passes its bridge address, which
        pods reach and which the ``kubernetes`` Service's endpoints may hold."""
        self.binaries = binaries
        self.workdir = Path(workdir)
        self.address = address
        self.processes: list[ManagedProcess] = []
        self.startup_seconds: float | None = None
        self.server = ""
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.pki: pki_mod.Pki | None = None

    # ------------------------------------------------------------------ start
    def start(self, attempts: int = 3) -> ControlPlane:
        t0 = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self._start()
                break
            except ControlPlaneError as exc:
                self.stop()
                # free_ports() releases the ports before the components bind them; a
                # parallel session can take one in between. Only that is retried.
                if "address already in use" not in str(exc) or attempt == attempts:
                    raise
            except BaseException:
                self.stop()
                raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)  # a retry starts from scratch
        self.pki = pki = pki_mod.generate(self.workdir / "pki", extra_ips=(self.address,))
        etcd_client, etcd_peer, api_port, kcm_port = free_ports(4)
        self.server = f"https://{self.address}:{api_port}"
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        logs = self.workdir / "logs"

        etcd = self._spawn(
            "etcd",
            [
                self.binaries.path("etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                # Test data is disposable; skipping fsync makes etcd fast on slow disks.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            logs,
        )
        self._await(etcd, lambda: self._http_json(f"{self.etcd_url}/health").get("health") == "true", "etcd /health")

        apiserver = self._spawn(
            "kube-apiserver",
            [
                self.binaries.path("kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                # The aggregation layer's request-header authentication, as kubeadm sets
                # it up (one CA for everything here); without it every component logs
                # "missing content for CA bundle ...requestheader-client-ca-file".
                f"--requestheader-client-ca-file={pki.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
                f"--proxy-client-key-file={pki.front_proxy_client.key}",
                # PodSecurity and the other defaults stay on; NodeRestriction as in kubeadm.
                # OwnerReferencesPermissionEnforcement as OpenShift and hardened clusters run it:
                # an ownerReference with blockOwnerDeletion needs `update` on the owner's
                # finalizers, which a client running as admin would never notice it lacks.
                "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
                *self._address_flags(),
                "--profiling=false",
                "--v=1",
            ],
            logs,
        )
        self._write_kubeconfig(self.kubeconfig, pki.admin, "fti-test-admin")
        self._await(apiserver, lambda: self._https_text("/readyz") == "ok", "kube-apiserver /readyz")

        kcm_kubeconfig = self.workdir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kcm_kubeconfig, pki.controller_manager, "system:kube-controller-manager")
        kcm = self._spawn(
            "kube-controller-manager",
            [
                self.binaries.path("kube-controller-manager"),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--leader-elect=false",
                "--controllers=" + ",".join(("*", *self._disabled_controllers())),
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca.cert}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # As kubeadm does: each controller acts as its own kube-system
                # ServiceAccount with the bootstrap RBAC role made for it, which is
                # what the controller manager's own identity is not granted.
                "--use-service-account-credentials=true",
                "--profiling=false",
                "--v=1",
            ],
            logs,
        )
        self._await(
            kcm,
            lambda: self._https_text("/healthz", f"https://127.0.0.1:{kcm_port}", verify=False) == "ok",
            "kube-controller-manager /healthz",
        )
        # The service-account controller creating "default" proves the controllers
        # are actually reconciling, not just serving /healthz.
        self._await(
            kcm,
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
            "the default ServiceAccount (controller manager reconciling)",
        )

    def _disabled_controllers(self) -> tuple[str, ...]:
        # A real node (not loopback) heartbeats, and the node-lifecycle controller is
        # what lifts the not-ready taint kubelet registers it with.
        return DISABLED_CONTROLLERS if self.address.startswith("127.") else ()

    def _address_flags(self) -> list[str]:
        if self.address.startswith("127."):
            # The "kubernetes" Endpoints may not hold a loopback address; without
            # this the reconciler logs an error every few seconds.
            return ["--endpoint-reconciler-type=none"]
        # A real node: pods reach the API through the kubernetes Service, and the API
        # server reaches kubelet (logs, exec) as the admin, by the node's InternalIP.
        assert self.pki is not None
        return [
            f"--kubelet-client-certificate={self.pki.admin.cert}",
            f"--kubelet-client-key={self.pki.admin.key}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _spawn(self, name: str, argv: list[str], logs: Path) -> ManagedProcess:
        proc = ManagedProcess(name, argv, logs / f"{name}.log", env=self._base_env(), die_with_parent=True)
        self.processes.append(proc.start())
        return proc

    def _await(self, proc: ManagedProcess, ready, what: str) -> None:
        def check():
            if not proc.alive():
                raise ControlPlaneError(f"{proc.name} exited with {proc.popen.returncode} before {what}:\n{proc.log_tail()}")
            try:
                return ready()
            except (OSError, urllib.error.URLError, ValueError):
                return False  # not listening yet

        try:
            wait_until(check, timeout=STARTUP_TIMEOUT, interval=0.1, description=what)
        except TimeoutError as exc:
            raise ControlPlaneError(f"{exc}\n--- {proc.name} log tail ---\n{proc.log_tail()}") from exc

    # ---------------------------------------------------------------- clients
    def _ssl_context(self, verify: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        if not verify:  # kube-controller-manager serves a self-signed certificate
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return ctx

    def _https_text(self, path: str, base: str | None = None, verify: bool = True) -> str:
        with urllib.request.urlopen(f"{base or self.server}{path}", context=self._ssl_context(verify), timeout=5) as r:
            return r.read().decode()

    @staticmethod
    def _http_json(url: str) -> dict:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def get(self, path: str) -> dict:
        """GET a raw API path as the admin (e.g. ``/version``)."""
        return json.loads(self._https_text(path))

    def _write_kubeconfig(self, path: Path, pair: pki_mod.CertPair, user: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fti-test", "cluster": {"server": self.server, "certificate-authority": str(self.pki.ca.cert)}}
            ],
            "users": [{"name": user, "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
            "contexts": [{"name": "fti-test", "context": {"cluster": "fti-test", "user": user}}],
            "current-context": "fti-test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["PATH"] = f"{self.binaries.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster."""
        env = self._base_env()
        env["KUBECONFIG"] = str(self.kubeconfig)
        # Helm keeps its repositories/cache per session, never in the user's home.
        for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
            env[var] = str(self.workdir / "helm" / sub)
        return env

    def api_client(self):
        """A kubernetes.client.ApiClient for the admin user (a new one per call)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def _run(self, tool: str, args, check: bool, input: str | None, timeout: float) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [self.binaries.path(tool), *map(str, args)],
            env=self.env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def kubectl(self, *args, check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster; raises CalledProcessError (with stderr) if ``check``."""
        return self._run("kubectl", args, check, input, timeout)

    def helm(self, *args, check: bool = True, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run helm against this cluster (KUBECONFIG and private HELM_* homes set)."""
        return self._run("helm", args, check, input, timeout)

    def logs(self, component: str) -> str:
        """The log of one component (``etcd``, ``kube-apiserver``, ``kube-controller-manager``)."""
        return (self.workdir / "logs" / f"{component}.log").read_text(errors="replace")

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        # Reverse order: the controller manager first, etcd last, so nobody logs
        # a storm of connection errors about a dependency that went away.
        for proc in reversed(self.processes):
            proc.stop(grace=10)
        self.processes.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
