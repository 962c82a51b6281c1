"""containerd (Debian's, with runc and the CNI plugins) for the test bed's node.

Everything containerd owns is private to one node: root, state, socket, CNI config and
IPAM data live in the node's work directory, so it never touches a containerd the
machine may run. The CRI settings are the ones this machine needs (tests/node/README.md):
``restrict_oom_score_adj`` (otherwise every sandbox fails with "can't get final
child's PID from pipe: EOF" without CAP_SYS_RESOURCE), cgroupfs rather than systemd,
overlayfs, and a sandbox image built here from tests/node/pause, since no registry
serves registry.k8s.io/pause.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from controlplane.binaries import cache_root
from controlplane.processes import ManagedProcess
from support.wait import wait_until

HERE = Path(__file__).resolve().parent
PAUSE_IMAGE = "localhost/fti-pause:1"
CNI_BIN = Path(os.environ.get("FTI_CNI_BIN", "/usr/lib/cni"))


class RuntimeMissing(RuntimeError):
    """containerd, runc or the CNI plugins are not installed."""


def check_installed() -> None:
    missing = [tool for tool in ("containerd", "ctr", "runc") if not shutil.which(tool)]
    missing += [f"{CNI_BIN}/{p}" for p in ("bridge", "host-local", "loopback") if not (CNI_BIN / p).exists()]
    if missing:
        raise RuntimeMissing(
            "the node needs " + ", ".join(missing) + " (apt-get install containerd runc containernetworking-plugins)"
        )


def pause_archive() -> Path:
    """A docker-archive tarball of the pause image, built once per source change."""
    source = (HERE / "pause" / "main.go").read_bytes() + (HERE / "pause" / "go.mod").read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    out = cache_root() / "node" / f"pause-{digest}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    go = shutil.which("go") or "/usr/local/go/bin/go"
    binary = out.with_suffix(".bin")
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-buildvcs=false",
        "GOCACHE": str(cache_root() / "node" / "gocache"),
    }
    subprocess.run(
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), "."],
        cwd=HERE / "pause",
        env=env,
        check=True,
        capture_output=True,
    )
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname="pause")
        info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = 0o755, 0, 0, "", "", 0
        with open(binary, "rb") as f:
            tar.addfile(info, f)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": ["layer/layer.tar"]}]).encode()
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in ((config_name, config), ("layer/layer.tar", layer_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(out)
    binary.unlink()
    return out


CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"""


def cni_config(bridge: str, subnet: str, gateway: str, data_dir: Path) -> dict:
    """One bridge network; host-local keeps its leases in the node's own directory.

    No ipMasq and no portmap: pods only talk to the node (API server, Redis) and to each
    other through Services, and both would add iptables rules outside kube-proxy's table.
    """
    return {
        "cniVersion": "1.0.0",
        "name": "fti-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(data_dir),
                    "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }
        ],
    }


class Containerd:
    """One private containerd; ``ctr()`` runs ctr against it in the k8s.io namespace."""

    def __init__(self, workdir: Path, cni: dict) -> None:
        self.workdir = workdir
        self.root = workdir / "containerd" / "root"
        self.state = workdir / "containerd" / "state"
        self.sock = workdir / "containerd" / "containerd.sock"
        self.cni_conf = workdir / "cni" / "net.d"
        self.cni = cni
        self.process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> Containerd:
        check_installed()
        for d in (self.root, self.state, self.cni_conf):
            d.mkdir(parents=True, exist_ok=True)
        (self.cni_conf / "10-fti-node.conflist").write_text(json.dumps(self.cni, indent=1))
        config = self.workdir / "containerd" / "config.toml"
        config.write_text(
            CONFIG.format(
                root=self.root, state=self.state, sock=self.sock, pause=PAUSE_IMAGE, cni_bin=CNI_BIN, cni_conf=self.cni_conf
            )
        )
        self.process = ManagedProcess(
            "containerd", ["containerd", "--config", str(config)], self.workdir / "logs" / "containerd.log"
        ).start()
        wait_until(
            lambda: self._alive() and self.ctr("version", check=False).returncode == 0,
            timeout=60,
            interval=0.1,
            description="containerd answering on its socket",
        )
        self.import_archive(pause_archive())
        return self

    def _alive(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"containerd exited:\n{self.process.log_tail()}")
        return True

    def ctr(self, *args: str, check: bool = True, input=None, stdin=None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ctr", "--address", str(self.sock), "--namespace", "k8s.io", *args],
            check=check,
            capture_output=True,
            input=input,
            stdin=stdin,
        )

    def import_archive(self, archive: Path) -> None:
        with open(archive, "rb") as f:
            self.ctr("images", "import", "--no-unpack", "-", stdin=f)

    def images(self) -> list[str]:
        out = self.ctr("images", "list", "--quiet").stdout.decode()
        return [line for line in out.splitlines() if line and not line.startswith("sha256:")]

    def stop(self) -> None:
        """Kill every container, stop containerd, then the shims that outlive it."""
        if self.process is None:
            return
        if self.process.alive():
            tasks = self.ctr("tasks", "list", "--quiet", check=False).stdout.decode().split()
            for task in tasks:
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
            self.process.stop(grace=10)
        from .host import processes_mentioning

        for pid in processes_mentioning(str(self.sock)):
            with contextlib.suppress(OSError):
                os.killpg(pid, 9)
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        self.process = None
