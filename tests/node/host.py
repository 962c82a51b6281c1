"""Host state a node changes, recorded before it starts and put back when it stops.

kubelet and kube-proxy tune kernel settings (kubelet: ``vm.overcommit_memory``,
``kernel.panic``, ``kernel.panic_on_oops``...; the node needs ``net.ipv4.ip_forward``),
and kubelet, containerd and the CNI plugins write fixed paths (``/var/log/pods``,
``/var/log/containers``, ``/var/lib/cni``, ``/run/netns``). A test bed must leave the
machine as it found it, so ``HostState`` snapshots those settings and which paths
existed, and ``restore()`` writes the old values back and removes what the node
created (tests/node/README.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)
FIXED_PATHS = (
    Path("/var/log/pods"),
    Path("/var/log/containers"),
    Path("/var/lib/cni"),
    Path("/var/lib/kubelet"),
    Path("/etc/kubernetes"),
)
NETNS_DIR = Path("/run/netns")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    _sysctl_path(name).write_text(value + "\n")


class HostState:
    """What the node may change, as it was before the node started."""

    def __init__(self) -> None:
        self.sysctls = {name: value for name in SYSCTLS if (value := read_sysctl(name)) is not None}
        self.absent = [p for p in FIXED_PATHS if not p.exists()]
        self.netns = set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set()
        self.netns_dir_existed = NETNS_DIR.is_dir()

    def restore(self) -> list[str]:
        """Put everything back; returns what could not be restored (for the report)."""
        problems = []
        for name, value in self.sysctls.items():
            try:
                if read_sysctl(name) != value:
                    write_sysctl(name, value)
            except OSError as exc:
                problems.append(f"sysctl {name}={value}: {exc}")
        if NETNS_DIR.is_dir():
            for name in set(os.listdir(NETNS_DIR)) - self.netns:
                path = NETNS_DIR / name
                subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
                try:
                    path.unlink()
                except OSError as exc:
                    problems.append(f"{path}: {exc}")
            if not self.netns_dir_existed and not os.listdir(NETNS_DIR):
                subprocess.run(["umount", "-l", str(NETNS_DIR)], capture_output=True, check=False)
                shutil.rmtree(NETNS_DIR, ignore_errors=True)
        for path in self.absent:
            unmount_under(path)
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"could not remove {path}")
        return problems


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    prefix = str(root).rstrip("/")
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(root: Path) -> None:
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def processes_mentioning(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (a path unique to this node, so
    only processes this node started match: containerd's shims outlive containerd)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry))
    return pids


CGROUP_ROOT = Path("/sys/fs/cgroup")


def make_cgroup(name: str) -> None:
    """Create ``name`` in every cgroup v1 hierarchy (kubelet's --cgroup-root must exist)."""
    for hierarchy in CGROUP_ROOT.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink():
            (hierarchy / name).mkdir(exist_ok=True)


def remove_cgroup(name: str) -> list[str]:
    """Remove the cgroup tree ``name`` everywhere (deepest first); returns leftovers."""
    left = []
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                left.append(dirpath)
    return left
