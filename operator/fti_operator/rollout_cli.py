"""`kubectl fti rollout ...` and `fti local rollout ...`: small imperative verbs over status.

The verbs only set annotations the reconciler handles once per token (`fti.dev/rollback`,
`fti.dev/promote`, `fti.dev/abort`, `fti.dev/retry`) and read status; they never touch the
spec, so a GitOps tool sees no drift (docs/rollouts.md). The same commands work against a
cluster (through `kubectl`, whose context and credentials they use) and against `fti local`'s
state (through the local driver, which reconciles right away).
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import typer

from .api.identity import ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_RETRY, ANNOTATION_ROLLBACK, INFERENCE_SERVICE

ANNOTATIONS = {"undo": ANNOTATION_ROLLBACK, "promote": ANNOTATION_PROMOTE, "abort": ANNOTATION_ABORT, "retry": ANNOTATION_RETRY}
DONE, FAILED = "RolloutComplete", ("RolledBack", "ProgressDeadlineExceeded", "Aborted")


class Backend(Protocol):
    def get(self, name: str, namespace: str) -> dict[str, Any]: ...
    def annotate(self, name: str, namespace: str, key: str, value: str) -> None: ...


class RolloutError(RuntimeError):
    pass


class KubectlBackend:
    """A cluster through `kubectl` (a kubectl plugin runs where kubectl is configured)."""

    def __init__(self, kubectl: str = "kubectl", run: Callable[..., Any] = subprocess.run):
        self.kubectl, self.run = kubectl, run

    def _call(self, *args: str) -> str:
        proc = self.run([self.kubectl, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RolloutError(proc.stderr.strip() or f"kubectl {' '.join(args)} failed")
        return str(proc.stdout)

    def get(self, name: str, namespace: str) -> dict[str, Any]:
        return dict(json.loads(self._call("get", INFERENCE_SERVICE.crd_name, name, "-n", namespace, "-o", "json")))

    def annotate(self, name: str, namespace: str, key: str, value: str) -> None:
        self._call("annotate", "--overwrite", INFERENCE_SERVICE.crd_name, name, "-n", namespace, f"{key}={value}")


def token() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def progressing(obj: Mapping[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    current = (obj.get("metadata") or {}).get("generation")
    cond: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {})
    if current is not None and status.get("observedGeneration") not in (None, current):
        return {"status": "Unknown", "reason": "Observing", "message": f"waiting for generation {current}"}
    return dict(cond)


def describe(r: Mapping[str, Any] | None) -> str:
    if not r:
        return "-"
    text = f"revision {r.get('revision', '-')}: model {r.get('model')} / feature view {r.get('featureView')}"
    return text + (f" at {r['traffic']} %" if r.get("traffic") not in (None, 100) else "")


def status_lines(obj: Mapping[str, Any]) -> list[str]:
    st = obj.get("status") or {}
    cond = progressing(obj)
    lines = [f"stable:  {describe(st.get('stable'))}", f"target:  {describe(st.get('target'))}"]
    if st.get("pending"):
        lines.append(f"pending: model {st['pending'].get('model')} / feature view {st['pending'].get('featureView')}")
    if st.get("pinned"):
        lines.append(f"pinned:  {describe(st['pinned'])}")
    if st.get("failed"):
        lines.append(f"failed:  {describe(st['failed'])} ({st['failed'].get('reason')}: {st['failed'].get('message', '')})")
    lines.append(f"progress: {cond.get('reason', '-')}: {cond.get('message', '')}")
    return lines


def history_lines(obj: Mapping[str, Any]) -> list[str]:
    st = obj.get("status") or {}
    rows = [("stable", st.get("stable")), *[("history", h) for h in st.get("history") or []]]
    out = []
    for kind, r in rows:
        if r:
            groups = ", ".join(f"{g['name']} v{g['version']}" for g in r.get("featureGroups") or [])
            out.append(f"{r['revision']:>4}  model {r['model']:<4} feature view {r['featureView']:<4} {groups}  ({kind})")
    return out


def wait_status(
    backend: Backend, name: str, namespace: str, timeout: float, interval: float = 1.0, echo: Callable[[str], None] = print
) -> int:
    """0 once the rollout is complete, 1 when it rolled back or missed its deadline, 2 on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        cond = progressing(backend.get(name, namespace))
        line = f"{cond.get('reason', '-')}: {cond.get('message', '')}"
        if line != last:
            echo(line)
            last = line
        if cond.get("reason") == DONE and cond.get("status") == "True":
            return 0
        if cond.get("reason") in FAILED:
            return 1
        if time.monotonic() >= deadline:
            echo(f"timed out after {timeout:.0f}s")
            return 2
        time.sleep(interval)  # polling a remote status with a deadline, not synchronising a test


def make_app(
    backend_factory: Callable[..., Backend], help_: str, errors: tuple[type[Exception], ...] = (RolloutError,)
) -> typer.Typer:
    """The `rollout` verbs over a backend; `fti local` and `kubectl fti` differ only in the backend.

    `errors`: what the backend raises for a missing object or a refused call; printed as one
    line (exit 1), not as a traceback."""
    app = typer.Typer(help=help_, no_args_is_help=True, add_completion=False)
    guard = _one_line_errors(errors)
    ns_option = typer.Option("default", "-n", "--namespace")

    @app.command("status")
    @guard
    def status(
        name: str,
        namespace: str = ns_option,
        watch: bool = typer.Option(True, "--watch/--no-watch"),
        timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for the rollout to finish."),
    ) -> None:
        """Show the rollout; with --watch (default) wait until it completes (exit 0) or fails (exit 1)."""
        backend = backend_factory()
        for line in status_lines(backend.get(name, namespace)):
            typer.echo(line)
        if watch:
            raise typer.Exit(wait_status(backend, name, namespace, timeout, echo=typer.echo))

    @app.command("history")
    @guard
    def history(name: str, namespace: str = ns_option) -> None:
        """Revisions that can be rolled back to, newest first, with the feature versions each reads."""
        for line in history_lines(backend_factory().get(name, namespace)):
            typer.echo(line)

    @app.command("undo")
    @guard
    def undo(
        name: str,
        namespace: str = ns_option,
        to_revision: int = typer.Option(0, "--to-revision", help="A revision from history (default: the previous one)."),
    ) -> None:
        """Roll back to the previous revision (or --to-revision N): model and feature versions together."""
        where = f"revision-{to_revision}" if to_revision else "previous"
        # A new suffix each time makes the same request act again (the operator handles a value once).
        _verb(backend_factory(), name, namespace, "undo", f"{where}@{token()}")

    for verb, doc in (
        ("promote", "Give the canary all traffic."),
        ("abort", "Stop the rollout; the stable revision keeps all traffic."),
        ("retry", "Roll out again a revision that failed."),
    ):
        app.command(verb)(guard(_verb_command(verb, doc, backend_factory, ns_option)))
    return app


def _verb_command(verb: str, doc: str, backend_factory: Callable[[], Any], ns_option: Any) -> Callable[..., None]:
    """The command for one annotation verb; the verb is bound here, not as a parameter (typer
    would offer every parameter as an option)."""

    def command(name: str, namespace: str = ns_option) -> None:
        _verb(backend_factory(), name, namespace, verb, token())

    command.__doc__ = doc
    return command


def _one_line_errors(errors: tuple[type[Exception], ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command that prints a backend error as `error: ...` and exits 1 (typer reads the
    wrapped signature through functools.wraps)."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except errors as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc

        return wrapped

    return decorator


def _verb(backend: Backend, name: str, namespace: str, verb: str, value: str) -> None:
    key = ANNOTATIONS[verb]
    backend.annotate(name, namespace, key, value)
    typer.echo(f"{namespace}/{name}: {key}={value} set")


def kubectl_plugin() -> None:  # pragma: no cover - console entry `kubectl-fti`
    root = typer.Typer(help="kubectl fti: rollouts of fti.dev InferenceServices.", no_args_is_help=True, add_completion=False)
    root.add_typer(make_app(KubectlBackend, "Rollout verbs: status, history, undo, promote, abort, retry."), name="rollout")
    root()
