"""Where the control-plane binaries live and whether they are usable.

build.sh is the single source of truth for the pinned versions; this module
reads its defaults instead of repeating them, so the fixture always looks for
exactly what the build script produces.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")


class MissingBinaries(RuntimeError):
    """The binaries are not built (or were built for other versions)."""


def pinned_versions() -> dict[str, str]:
    """The versions build.sh builds, honouring the same environment overrides."""
    text = BUILD_SCRIPT.read_text()
    versions = {}
    for key in ("K8S_VERSION", "ETCD_VERSION", "HELM_VERSION"):
        match = re.search(rf'^{key}="\$\{{{key}:-([^}}]+)\}}"', text, re.MULTILINE)
        if not match:
            raise RuntimeError(f"cannot find the default {key} in {BUILD_SCRIPT}")
        versions[key] = os.environ.get(key, match.group(1))
    return versions


def cache_root() -> Path:
    return Path(os.environ.get("FTI_CACHE_DIR") or Path.home() / ".cache" / "fti-operator")


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the built binaries plus the release they report."""

    bin_dir: Path
    k8s_version: str
    etcd_version: str
    helm_version: str

    def path(self, name: str) -> str:
        return str(self.bin_dir / name)


def go_available() -> bool:
    return bool(shutil.which("go") or Path("/usr/local/go/bin/go").exists())


def find_binaries() -> Binaries:
    """Return the built binaries, or raise MissingBinaries saying how to get them."""
    versions = pinned_versions()
    bin_dir = Path(os.environ.get("FTI_CONTROLPLANE_BIN") or cache_root() / "controlplane" / versions["K8S_VERSION"] / "bin")
    missing = [n for n in NAMES if not os.access(bin_dir / n, os.X_OK)]
    hint = "run `make controlplane` (tests/controlplane/build.sh; needs Go >= 1.26 and the Go module proxy)"
    if not go_available():
        hint += " -- no Go toolchain found on this machine"
    if missing:
        raise MissingBinaries(f"control plane binaries missing in {bin_dir}: {', '.join(missing)}; {hint}")
    stamp = bin_dir / "VERSIONS"
    want = f"k8s={versions['K8S_VERSION']} etcd={versions['ETCD_VERSION']} helm={versions['HELM_VERSION']}"
    if not stamp.exists() or not stamp.read_text().startswith(want):
        raise MissingBinaries(f"control plane binaries in {bin_dir} are not stamped for {want}; {hint}")
    return Binaries(bin_dir, versions["K8S_VERSION"], versions["ETCD_VERSION"], versions["HELM_VERSION"])


def build(force: bool = False) -> None:
    """Run build.sh (used by the bench script; tests never build implicitly)."""
    subprocess.run(["bash", str(BUILD_SCRIPT), *(["--force"] if force else [])], check=True)
