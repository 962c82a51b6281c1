"""A real node beside the test control plane: kubelet, kube-proxy and kube-scheduler.

``TestNode.start()`` brings up, in order: the host network (a bridge whose address is
the node IP and the API server's address, the service range routed to it), the control
plane bound to that address, containerd (runtime.py), kube-scheduler, kubelet, then
kube-proxy in nftables mode, and waits for the Node to be Ready. ``stop()`` goes in
reverse, removes every container, and restores the host (host.py). One node per
machine at a time: fixed names (the bridge, /var/log/pods) are guarded by a lock file.
See tests/node/README.md for the settings and why each is needed.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import yaml

from controlplane import pki as pki_mod
from controlplane.binaries import Binaries
from controlplane.cluster import ControlPlane, free_ports
from controlplane.processes import ManagedProcess
from support.wait import wait_until

from . import host
from .runtime import Containerd, cni_config

NODE_NAME = "fti-node"
BRIDGE = "fti0"
POD_SUBNET = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's address: pods' gateway, node IP, API server address
CGROUP = "fti-node"
LOCK = Path("/run/fti-node.lock")
READY_TIMEOUT = float(os.environ.get("FTI_NODE_READY_TIMEOUT", "120"))


class NodeUnavailable(RuntimeError):
    """This machine cannot run the node (not root, tools missing)."""


def check_host() -> None:
    if os.geteuid() != 0:
        raise NodeUnavailable("the node runs containers, so it needs root")
    from .runtime import RuntimeMissing, check_installed

    try:
        check_installed()
    except RuntimeMissing as exc:
        raise NodeUnavailable(str(exc)) from None
    if not any(Path(d, "nft").exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
        raise NodeUnavailable("kube-proxy (nftables mode) needs nft (apt-get install nftables)")


class TestNode:
    """The control plane plus one node. ``with TestNode(...) as node: node.plane.kubectl(...)``."""

    __test__ = False  # not a pytest test class

    def __init__(self, binaries: Binaries, workdir: Path) -> None:
        self.binaries = binaries
        self.workdir = Path(workdir)
        self.plane = ControlPlane(binaries, self.workdir / "controlplane", address=NODE_IP)
        self.containerd = Containerd(self.workdir, cni_config(BRIDGE, POD_SUBNET, NODE_IP, self.workdir / "cni" / "ipam"))
        self.processes: list[ManagedProcess] = []
        self.host_state: host.HostState | None = None
        self.timings: dict[str, float] = {}
        self._lock = None
        self.dns = None

    # ------------------------------------------------------------------ start
    def start(self) -> TestNode:
        check_host()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _timed(self, step: str, fn):
        t0 = time.monotonic()
        result = fn()
        self.timings[step] = time.monotonic() - t0
        return result

    def _start(self) -> None:
        self._lock = open(LOCK, "w")  # noqa: SIM115 - held until stop(), which closes it
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeUnavailable(f"another test node runs on this machine (lock {LOCK})") from None
        self.host_state = host.HostState()
        self._timed("network", self._network)
        self._timed("control plane", self.plane.start)
        self._timed("containerd", self.containerd.start)
        certs = self.workdir / "pki"
        certs.mkdir(parents=True, exist_ok=True)
        pki = self.plane.pki
        kubeconfigs = {}
        for user, cn, org in (
            ("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
            ("kube-proxy", "system:kube-proxy", None),
            ("kube-scheduler", "system:kube-scheduler", None),
        ):
            pair = pki_mod.issue(pki, certs, user, cn, org)
            kubeconfigs[user] = self.workdir / f"{user}.kubeconfig"
            self.plane._write_kubeconfig(kubeconfigs[user], pair, cn)
        serving = pki_mod.issue(pki, certs, "kubelet-serving", NODE_NAME, None, server=True)
        self._timed("cluster DNS", self._dns)
        self._timed("kube-scheduler", lambda: self._scheduler(kubeconfigs["kube-scheduler"]))
        self._timed("kubelet", lambda: self._kubelet(kubeconfigs["kubelet"], serving))
        self._timed("kube-proxy", lambda: self._proxy(kubeconfigs["kube-proxy"]))
        self._timed("node Ready", self._await_ready)

    def _network(self) -> None:
        host.write_sysctl("net.ipv4.ip_forward", "1")
        ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)  # noqa: E731
        if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False).returncode == 0:
            ip("link", "del", BRIDGE)  # a crashed session's; the lock says nobody uses it
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{NODE_IP}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        # Traffic from the host to a ClusterIP needs a route before kube-proxy's DNAT.
        from controlplane.cluster import SERVICE_CIDR

        ip("route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)

    def _dns(self) -> None:
        from .dns import ClusterDNS

        self._dns_api = self.plane.api_client()
        self.dns = ClusterDNS(self._dns_api, NODE_IP).start()

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log", die_with_parent=False).start()
        self.processes.append(proc)
        return proc

    def _scheduler(self, kubeconfig: Path) -> None:
        (port,) = free_ports(1)
        proc = self._spawn(
            "kube-scheduler",
            [
                self.binaries.path("kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--v=1",
            ],
        )
        self._await(proc, lambda: self._get(f"https://127.0.0.1:{port}/healthz") == "ok", "kube-scheduler /healthz")

    def _kubelet(self, kubeconfig: Path, serving: pki_mod.CertPair) -> None:
        port, healthz = free_ports(2)
        host.make_cgroup(CGROUP)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This machine has cgroup v1, which kubelet 1.35 refuses unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP}",
            "containerRuntimeEndpoint": self.containerd.endpoint,
            "address": NODE_IP,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.plane.pki.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [NODE_IP],  # the stand-in of dns.py
            "resolvConf": "",
            "failSwapOn": False,
            "podPidsLimit": -1,
            # A shared CI disk: never evict test pods for disk usage of other tenants.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "imageMinimumGCAge": "24h",
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "serializeImagePulls": False,
            "staticPodPath": "",
        }
        path = self.workdir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = self._spawn(
            "kubelet",
            [
                self.binaries.path("kubelet"),
                f"--config={path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.workdir / 'kubelet'}",
                f"--cert-dir={self.workdir / 'kubelet-certs'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )
        self._await(proc, lambda: self._get(f"http://127.0.0.1:{healthz}/healthz") == "ok", "kubelet /healthz")

    def _proxy(self, kubeconfig: Path) -> None:
        metrics, healthz = free_ports(2)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "clusterCIDR": POD_SUBNET,
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            "healthzBindAddress": f"127.0.0.1:{healthz}",
            # Zero: leave the host's conntrack settings alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            # Pod -> Service -> pod on the same bridge: masquerading makes the reply
            # come back through the node, where conntrack undoes the DNAT.
            "nftables": {"masqueradeAll": True},
            "nodePortAddresses": [f"{NODE_IP}/32"],
        }
        path = self.workdir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = self._spawn("kube-proxy", [self.binaries.path("kube-proxy"), f"--config={path}", "--v=1"])
        self._await(proc, lambda: "lastUpdated" in self._get(f"http://127.0.0.1:{healthz}/healthz"), "kube-proxy /healthz")

    def _await_ready(self) -> None:
        def ready():
            out = self.plane.kubectl(
                "get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False
            )
            return out.stdout.strip() == "True"

        wait_until(ready, timeout=READY_TIMEOUT, interval=0.2, description=f"Node {NODE_NAME} Ready")

    def _await(self, proc: ManagedProcess, ready, what: str) -> None:
        def check():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before {what}:\n{proc.log_tail()}")
            try:
                return ready()
            except OSError:
                return False

        wait_until(check, timeout=READY_TIMEOUT, interval=0.1, description=what)

    def _get(self, url: str) -> str:
        import ssl
        import urllib.request

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.read().decode()

    # ------------------------------------------------------------------- stop
    def stop(self) -> list[str]:
        """Stop everything in reverse order and restore the host; returns leftovers."""
        problems: list[str] = []
        for proc in reversed(self.processes):
            proc.stop(grace=10)
        self.processes.clear()
        if self.dns is not None:
            self.dns.stop()
            self._dns_api.close()
            self.dns = None
        self.containerd.stop()
        self.plane.stop()
        subprocess.run(["nft", "delete", "table", "ip", "kube-proxy"], capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", "ip6", "kube-proxy"], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        host.unmount_under(self.workdir)
        problems += [f"cgroup left: {c}" for c in host.remove_cgroup(CGROUP)]
        if self.host_state is not None:
            problems += self.host_state.restore()
            self.host_state = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return problems

    def __enter__(self) -> TestNode:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
