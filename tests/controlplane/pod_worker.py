"""One pod's life under the test pod runner: bind, run, report, clean up.

A ``PodWorker`` thread does for one pod what kubelet and a container runtime
would: it binds the pod to the runner's node, runs its (init) containers as
local processes, restarts them per ``restartPolicy``, writes the status through
``pods/status`` and, when the pod is deleted, kills the processes and confirms
the deletion (grace period 0) as kubelet does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from kubernetes.client.rest import ApiException

from fti_operator.local.kubelet import (
    TERMINATION_LOG_ENV,
    ContainerConfigError,
    Launch,
    UnsupportedImage,
    container_launch,
    exit_code,
    termination_message,
)

from .pod_status import Conditions, ContainerState, now
from .probes import probe_ready
from .processes import ManagedProcess

log = logging.getLogger(__name__)

# Kubelet backs off 10s..5min between restarts; tests want the behaviour, not the wait.
RESTART_BACKOFF = (0.5, 1.0, 2.0, 4.0)
MAX_KILL_GRACE = 10.0
_SETPRIV = shutil.which("setpriv")  # util-linux; sets PR_SET_PDEATHSIG, then execs
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE")


class _Deleted(Exception):
    """The pod was deleted before its containers could start."""


class _Run:
    """One container's current process plus the files it writes."""

    def __init__(self, state: ContainerState, launch: Launch, workdir: Path, logdir: Path) -> None:
        self.state = state
        self.launch = launch
        self.spec = launch.container
        self.message_file = workdir / f".termination-log.{state.name}"
        self.log_file = logdir / f"{state.name}.log"
        self.proc: ManagedProcess | None = None
        self.started_at: str | None = None

    def start(self, workdir: Path) -> None:
        self.message_file.unlink(missing_ok=True)
        env = {**self.launch.env, TERMINATION_LOG_ENV: str(self.message_file)}
        with open(self.log_file, "ab") as f:
            f.write(f"--- {now()} start (restart {self.state.restart_count}): {self.launch.argv!r}\n".encode())
        argv = list(self.launch.argv)
        if _SETPRIV:  # die with the runner even if pytest is SIGKILLed (no preexec_fn in threads)
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        self.proc = ManagedProcess(self.state.name, argv, self.log_file, env=env, cwd=workdir)
        try:
            self.proc.start()
        except OSError as exc:  # e.g. executable not found: runtimes report 127/128
            with open(self.log_file, "ab") as f:
                f.write(f"cannot start: {exc}\n".encode())
            self.proc = None
            self.state.terminated(128, f"StartError: {exc}", now())
            return
        self.state.running(self.proc.pid)
        self.started_at = self.state.started_at

    def poll(self) -> int | None:
        """The exit code once the process ended (and records it), else None."""
        if self.proc is None:
            return self.state.exit_code
        rc = self.proc.popen.poll()
        if rc is None:
            return None
        self._finish(exit_code(rc))
        return self.state.exit_code

    def _finish(self, code: int) -> None:
        self.proc.stop(grace=0)  # reap stragglers left in the process group
        self.proc = None
        msg = termination_message(self.message_file, self.log_file, code, self.spec.get("terminationMessagePolicy"))
        self.state.terminated(code, msg, self.started_at)

    def kill(self, grace: float) -> None:
        if self.proc is not None:
            rc = self.proc.stop(grace=grace)
            self._finish(exit_code(rc if rc is not None else -9))


class PodWorker(threading.Thread):
    """Runs one pod; ``stop()`` is called when the pod gets a deletionTimestamp."""

    def __init__(self, runner, pod: dict, bind: bool = True) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True)
        self.runner = runner
        self.core = runner.core
        self.pod = pod
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.bind = bind  # False when the pod named our node itself (spec.nodeName)
        self.deleted = threading.Event()
        self.shutting_down = False  # the runner stops: kill, but do not delete the pod
        self.finished = threading.Event()
        self.workdir = runner.root / "work" / self.namespace / self.name
        self.logdir = runner.log_dir(self.namespace, self.name)
        self.conditions = Conditions()
        spec = pod["spec"]
        self.init = [ContainerState(c["name"], c["image"], init=True) for c in spec.get("initContainers") or []]
        self.main = [ContainerState(c["name"], c["image"]) for c in spec["containers"]]
        self.phase = "Pending"
        self.reason = self.message = ""
        self._next_probe: dict[str, float] = {}

    # -------------------------------------------------------------- reporting
    def _write_status(self) -> None:
        status = {
            "phase": self.phase,
            "conditions": self.conditions.as_list(),
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "qosClass": self.pod.get("status", {}).get("qosClass", "BestEffort"),
            "initContainerStatuses": [c.as_status() for c in self.init] or None,
            "containerStatuses": [c.as_status() for c in self.main],
            "reason": self.reason or None,
            "message": self.message or None,
        }
        try:
            self.core.patch_namespaced_pod_status(
                self.name, self.namespace, {"status": status}, _content_type="application/merge-patch+json"
            )
        except ApiException as exc:
            if exc.status != 404:  # gone already: nothing left to report to
                raise

    # ------------------------------------------------------------------- life
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # report, never kill the runner
            log.exception("pod runner failed on %s/%s", self.namespace, self.name)
            self.phase, self.reason, self.message = "Failed", "RunnerError", f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                self._write_status()
        finally:
            self.finished.set()
            if self.deleted.is_set() and not self.shutting_down:
                self._confirm_deletion()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_time = now()
        if self.bind:
            self.runner.bind(self.pod)
        self.conditions.set("PodScheduled", True)
        self.conditions.set("PodReadyToStartContainers", True)
        self.conditions.set("Initialized", not self.init, "" if not self.init else "ContainersNotInitialized")
        self.conditions.set("ContainersReady", False, "ContainersNotReady")
        self.conditions.set("Ready", False, "ContainersNotReady")
        self._write_status()

        spec = self.pod["spec"]
        try:
            init_runs = [self._prepare(s, c) for s, c in zip(self.init, spec.get("initContainers") or [], strict=False)]
            main_runs = [self._prepare(s, c) for s, c in zip(self.main, spec["containers"], strict=False)]
        except UnsupportedImage as exc:
            self._fail("UnsupportedImage", str(exc))
            return
        except _Deleted:
            return
        policy = spec.get("restartPolicy", "Always")
        for run in init_runs:  # one after another, each must succeed
            if not self._supervise([run], "Never" if policy == "Never" else "OnFailure"):
                return
        if init_runs:
            self.conditions.set("Initialized", True)
        self._supervise(main_runs, policy)

    def _prepare(self, state: ContainerState, container: dict) -> _Run:
        """Resolve env, argv and image; wait (like kubelet) while a reference is missing."""
        base = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        base.update(HOME=str(self.workdir), HOSTNAME=self.name)
        while True:
            try:
                launch = container_launch(container, self.pod, self.runner.source, self.runner.images, base_env=base)
                return _Run(state, launch, self.workdir, self.logdir)
            except ContainerConfigError as exc:
                state.waiting("CreateContainerConfigError", str(exc))
                self._write_status()
                if self.deleted.wait(1.0):
                    raise _Deleted() from None

    def _fail(self, reason: str, message: str) -> None:
        for state in self.init + self.main:
            if "waiting" in state.state:
                state.waiting(reason, message)
        self.phase, self.reason, self.message = "Failed", reason, message
        self._write_status()

    def _supervise(self, runs: list[_Run], policy: str) -> bool:
        """Run ``runs`` concurrently until done; True when all exited 0."""
        for run in runs:
            run.start(self.workdir)
        self.phase = "Running" if not runs[0].state.init else "Pending"
        self._write_status()
        backoff: dict[str, int] = {}
        restart_at: dict[str, float] = {}
        while True:
            changed = False
            for run in runs:
                if run.proc is None and run.state.name in restart_at and time.monotonic() >= restart_at[run.state.name]:
                    del restart_at[run.state.name]
                    run.state.restart()
                    run.start(self.workdir)
                    changed = True
                code = run.poll() if run.proc is not None else None
                if code is not None:
                    changed = True
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        step = backoff.get(run.state.name, 0)
                        backoff[run.state.name] = step + 1
                        restart_at[run.state.name] = time.monotonic() + RESTART_BACKOFF[min(step, len(RESTART_BACKOFF) - 1)]
                        run.state.last_state = run.state.state
                        run.state.waiting("CrashLoopBackOff", f"back-off restarting {run.state.name}")
                due = run.proc is not None and not run.state.ready and not run.state.init and self._probe_due(run)
                if due and probe_ready(run.spec, run.launch, self.workdir):
                    run.state.ready = True
                    changed = True
            if not runs[0].state.init:
                all_ready = all(r.state.ready for r in runs)
                self.conditions.set("ContainersReady", all_ready, "" if all_ready else "ContainersNotReady")
                self.conditions.set("Ready", all_ready, "" if all_ready else "ContainersNotReady")
            done = all(r.proc is None and r.state.name not in restart_at for r in runs)
            if done:
                ok = all(r.state.exit_code == 0 for r in runs)
                if not runs[0].state.init or not ok:
                    self.phase = "Succeeded" if ok else "Failed"
                self._write_status()
                return ok
            if changed:
                self._write_status()
            if self.deleted.wait(0.1):
                self._terminate(runs)
                return False

    def _probe_due(self, run: _Run) -> bool:
        """Probe at the spec's period, but at least once a second (tests want speed)."""
        period = min(float((run.spec.get("readinessProbe") or {}).get("periodSeconds", 1)), 1.0)
        now_ = time.monotonic()
        if now_ < self._next_probe.get(run.state.name, 0.0):
            return False
        self._next_probe[run.state.name] = now_ + period
        return True

    def _terminate(self, runs: list[_Run]) -> None:
        """Pod deleted: SIGTERM, SIGKILL after its grace period, report terminal phase."""
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        grace = min(float(grace if grace is not None else 30), MAX_KILL_GRACE)
        for run in runs:
            run.kill(grace)
        ok = all(r.state.exit_code == 0 for r in runs)
        self.phase = "Succeeded" if ok else "Failed"
        self._write_status()

    def _confirm_deletion(self) -> None:
        from kubernetes.client import V1DeleteOptions, V1Preconditions

        try:
            self.core.delete_namespaced_pod(
                self.name,
                self.namespace,
                body=V1DeleteOptions(grace_period_seconds=0, preconditions=V1Preconditions(uid=self.uid)),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def stop(self, pod: dict | None = None, shutdown: bool = False) -> None:
        """The pod got a deletionTimestamp (or vanished), or the runner stops: wind down."""
        if pod is not None:
            self.pod = pod
        self.shutting_down = shutdown
        self.deleted.set()
