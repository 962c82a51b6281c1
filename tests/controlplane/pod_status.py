"""Pure builders for the pod status a kubelet would report.

Kept apart from the process handling so the shape of ``status`` (what the Job
controller and the operator read) is in one small place; the exit code and the
termination message come from the product's local kubelet.
"""

from __future__ import annotations

import datetime
import signal
from dataclasses import dataclass, field


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """What the runner knows about one container, rendered by ``as_status``."""

    name: str
    image: str
    init: bool = False
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    container_id: str = ""

    def waiting(self, reason: str, message: str = "") -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        self.ready = False

    def running(self, pid: int) -> None:
        self.container_id = f"fti-runner://{pid}"
        self.state = {"running": {"startedAt": now()}}

    def terminated(self, code: int, message: str, started_at: str | None) -> None:
        reason = "Completed" if code == 0 else "Error"
        if code == 128 + signal.SIGKILL and not message:
            message = "killed"
        term = {"exitCode": code, "reason": reason, "startedAt": started_at or now(), "finishedAt": now()}
        if message:
            term["message"] = message
        if self.container_id:
            term["containerID"] = self.container_id
        self.state = {"terminated": term}
        self.ready = False

    def restart(self) -> None:
        self.last_state = self.state
        self.restart_count += 1

    @property
    def started_at(self) -> str | None:
        return (self.state.get("running") or {}).get("startedAt")

    @property
    def exit_code(self) -> int | None:
        term = self.state.get("terminated")
        return term["exitCode"] if term else None

    def as_status(self) -> dict:
        status = {
            "name": self.name,
            "image": self.image,
            "imageID": f"fti-runner://{self.image}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": "running" in self.state,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


class Conditions:
    """Pod conditions with lastTransitionTime that only moves on a change."""

    TYPES = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")

    def __init__(self) -> None:
        self._state: dict[str, tuple[str, str, str]] = {}

    def set(self, type_: str, ok: bool, reason: str = "") -> None:
        status = "True" if ok else "False"
        old = self._state.get(type_)
        if old is None or old[0] != status or old[2] != reason:
            self._state[type_] = (status, now() if old is None or old[0] != status else old[1], reason)

    def as_list(self) -> list[dict]:
        out = []
        for type_ in self.TYPES:
            if type_ in self._state:
                status, when, reason = self._state[type_]
                cond = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": when}
                if reason:
                    cond["reason"] = reason
                out.append(cond)
        return out
