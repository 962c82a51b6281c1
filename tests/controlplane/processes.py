"""Child processes that never outlive the test session.

Every process is started in its own session (process group) so that stopping it
also stops anything it forked; a module-level registry stops the survivors at
interpreter exit (atexit), and control-plane processes additionally get
PR_SET_PDEATHSIG so that even a SIGKILLed pytest takes them down with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # Not Linux/glibc (OSError): atexit and the fixtures' finally blocks still apply.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """A subprocess with its output in a log file and a reliable ``stop``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        # preexec_fn is unsafe once other threads run, so only the control plane
        # (started before any pod-runner thread) asks for it.
        self.die_with_parent = die_with_parent
        self.popen: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                # PR_SET_PDEATHSIG can only be set in the child; prctl is async-signal-safe.
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
            )
        with _live_lock:
            _live.add(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the whole process group, SIGKILL it after ``grace`` seconds."""
        if self.popen is None:
            return None
        try:
            if self.popen.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self.popen.wait(5)
            # Grandchildren that ignored SIGTERM must not survive their leader.
            self._signal_group(signal.SIGKILL)
            return self.popen.returncode
        finally:
            with _live_lock:
                _live.discard(self)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid}>"


def stop_all(grace: float = 5.0) -> None:
    """Stop every process still registered (atexit, and on fixture failure)."""
    with _live_lock:
        survivors = list(_live)
    for proc in survivors:
        proc.stop(grace)


atexit.register(stop_all)
