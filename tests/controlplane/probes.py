"""Readiness probes, executed locally: every pod of the runner lives on 127.0.0.1.

Only readiness matters to the harness (it decides the pod's Ready condition,
which Services, rollouts and the operator's readiness checks read); liveness
and startup probes are not simulated.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path


def _port(container: dict, port) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:  # a named port
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"unknown port {port!r}")


def probe_ready(container: dict, launch, workdir: Path) -> bool:
    """True when the container's readinessProbe passes (or it has none)."""
    probe = container.get("readinessProbe")
    if not probe:
        return True
    try:
        if probe.get("httpGet"):
            get = probe["httpGet"]
            scheme = get.get("scheme", "HTTP").lower()
            url = f"{scheme}://127.0.0.1:{_port(container, get['port'])}{get.get('path', '/')}"
            with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)) as resp:
                return 200 <= resp.status < 400
        if probe.get("tcpSocket"):
            with socket.create_connection(("127.0.0.1", _port(container, probe["tcpSocket"]["port"])), timeout=1):
                return True
        if probe.get("grpc"):
            with socket.create_connection(("127.0.0.1", int(probe["grpc"]["port"])), timeout=1):
                return True  # a listening gRPC port is as close as we get without grpc health
        if probe.get("exec"):
            result = subprocess.run(
                probe["exec"]["command"],
                cwd=workdir,
                env=launch.env,
                capture_output=True,
                timeout=probe.get("timeoutSeconds", 1) + 5,
                check=False,
            )
            return result.returncode == 0
    except (OSError, urllib.error.URLError, ValueError, subprocess.TimeoutExpired):
        return False
    return True
