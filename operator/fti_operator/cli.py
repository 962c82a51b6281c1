"""`fti`: the command line. `fti local ...` runs the same manifests without a cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape as escape_markup
from rich.table import Table

from .api import FeaturePipeline, InferenceService, ManifestError, TrainingPipeline, load_manifests, trust
from .cli_common import DEFAULT_STATE_DIR, STATE_DIR_OPTION, console, fail, out
from .monitor_cli import local_monitor
from .predict_cli import post, predict_samples, send_shifted
from .quarantine_cli import app as quarantine_app

app = typer.Typer(
    help="fti-operator: feature, training and inference pipelines with versions in sync.",
    no_args_is_help=True,
    add_completion=False,
)
local_app = typer.Typer(help="Run fti.dev manifests on this machine, without a cluster.", no_args_is_help=True)
app.add_typer(local_app, name="local")

_fail = fail  # the commands below exit through the shared error line


def _load(paths: list[Path]) -> list[Any]:
    """The manifests' resources, or every problem as `FILE:doc#N: field.path: message` and exit 1.

    Bad input never ends in a traceback: anything the validation did not anticipate is still
    reported against the files, as a problem to report upstream (docs/security.md)."""
    try:
        return load_manifests(paths)
    except ManifestError as exc:
        lines = str(exc).splitlines()
        console.print(f"[bold red]error:[/] {len(lines)} problem(s) in the manifests", highlight=False)
        for line in lines:  # whole lines, never wrapped: editors and CI logs link FILE:doc#N
            print(line, file=sys.stderr)
        raise typer.Exit(1) from None
    except FileNotFoundError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - the promise above
        _fail(f"{', '.join(map(str, paths))}: could not validate ({type(exc).__name__}: {exc}); please report this")
    return []


def _mounted(uri: str, mounts: dict[str, Path]) -> bool:
    return any(uri.startswith(f"file://{src.rstrip('/')}/") for src in mounts)


def _trust_report(resources: list[Any], mounts: dict[str, Path], everything: bool = False) -> list[str]:
    """What will run and be touched on this host (docs/security.md): callables that are not the
    project's own and file:// paths outside the local data volumes (all of them if `everything`)."""
    lines = []
    for r in resources:
        lines += [
            f"{u.resource}: runs {u.value} ({u.what}) on this host" for u in trust.callables(r) if everything or not u.known
        ]
        lines += [
            f"{u.resource}: uses host path {u.value.removeprefix('file://')} ({u.what})"
            for u in trust.file_locations(r)
            if everything or not _mounted(u.value, mounts)
        ]
    return lines


@local_app.command("validate")
def local_validate(
    filename: list[Path] = typer.Option(..., "-f", "--filename", help="Manifest file or directory (repeatable)."),
) -> None:
    """Check manifests as `fti local apply` and the API server do, and list the code and host paths
    they name; runs nothing. Problems print as FILE:doc#N: field.path: message (exit code 1)."""
    resources = _load(filename)
    if not resources:
        _fail(f"no fti.dev resources in {', '.join(map(str, filename))}")
    for r in resources:
        print(f"{r.kind}/{r.metadata.name}: valid")
    for line in _trust_report(resources, {}, everything=True):
        print(line)


@local_app.command("apply")
def local_apply(
    filename: list[Path] = typer.Option(..., "-f", "--filename", help="Manifest file or directory (repeatable)."),
    state_dir: Path = STATE_DIR_OPTION,
    serve: bool = typer.Option(False, "--serve", help="Keep online InferenceServices running until Ctrl-C."),
    predict: int = typer.Option(0, "--predict", help="Send N real requests to each online service and print the answers."),
    shifted: int = typer.Option(
        0,
        "--shifted",
        help="Also send N requests with deliberately shifted request features (numbers x5, categories all one), "
        "so that `fti local monitor` reports drift (docs/monitoring.md).",
    ),
    retrain: bool = typer.Option(False, "--retrain", help="Train a new model version even if the spec is unchanged."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show the pipelines' logs."),
    volume: list[str] = typer.Option(
        [],
        "--volume",
        help="PATH=DIR: file:// URIs under PATH in the manifests "
        "refer to local DIR (default /var/lib/fti=<state-dir>/volume, the chart's data volume).",
    ),
) -> None:
    """Run feature pipelines, then training, then inference (batch runs; online services start)."""
    from .local.apply import run_feature_pipelines, run_inference, run_training_pipelines
    from .local.driver import LocalDriver, LocalRunError

    resources = _load(filename)
    if not resources:
        _fail(f"no fti.dev resources in {', '.join(map(str, filename))}")
    mounts = {}
    for item in volume:
        src, sep, dst = item.partition("=")
        if not sep or not src.startswith("/") or not dst:
            _fail(f"--volume {item!r}: expected /path/in/manifests=local/dir")
        mounts[src] = Path(dst).resolve()
    try:
        driver = LocalDriver(
            state_dir, progress=lambda m: console.print(f"[cyan]>[/] {m}", highlight=False), echo_logs=verbose, mounts=mounts
        )
    except LocalRunError as exc:
        _fail(str(exc))
    # fti local runs the manifests' code as the user: say so when it is not the project's own.
    for line in _trust_report(resources, driver.mounts):
        console.print(f"[yellow]![/] {escape_markup(line)}", highlight=False)
    pipelines = [r for r in resources if isinstance(r, FeaturePipeline)]
    trainings = [r for r in resources if isinstance(r, TrainingPipeline)]
    services = [r for r in resources if isinstance(r, InferenceService)]
    # Serve from the start when asked: a revision rolled out while training settles is started
    # then, not refused as "not served locally".
    driver.cluster.serving = serve or bool(predict) or bool(shifted)
    # SIGTERM stops what we started as Ctrl-C does (servers run in their own sessions).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with console.status("running feature pipelines") as status:
            status.update("feature pipelines")
            run_feature_pipelines(driver, pipelines)
            status.update("training pipelines")
            run_training_pipelines(driver, trainings, retrain=retrain)
            status.update("inference")
            run_inference(driver, services, serve=driver.cluster.serving)
        _print_summary(driver.resources())
        for isvc in services:
            if predict and isvc.spec.mode == "online":
                predict_samples(driver, isvc, predict)
            if shifted and isvc.spec.mode == "online":
                send_shifted(driver, isvc, shifted)
        servers = driver.cluster.servers_state()
        if serve and servers:
            console.print("serving: " + ", ".join(f"{k} at {v['url']}" for k, v in servers.items()) + " — Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                driver.cluster.wait_servers()
    except LocalRunError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        driver.stop()


def _print_summary(resources: list[dict[str, Any]]) -> None:
    from .render.pods import child_name

    fg = Table(title="Feature groups")
    for col in ("pipeline", "feature group", "version", "state", "rows written", "rows rejected", "watermark"):
        fg.add_column(col)
    models = Table(title="Model versions")
    for col in ("pipeline", "model", "version", "phase", "feature view", "metrics"):
        models.add_column(col)
    serving = Table(title="Inference")
    for col in ("service", "mode", "stable", "target", "ready", "detail"):
        serving.add_column(col)
    monitoring = Table(title="Monitoring")
    for col in ("service", "cronjob", "schedule", "last run", "drifted", "detail"):
        monitoring.add_column(col)
    for r in resources:
        st, name = r.get("status") or {}, r["metadata"]["name"]
        if r["kind"] == "FeaturePipeline":
            for v in st.get("versions", []):
                lr = v.get("lastRun") or {}
                fg.add_row(
                    name,
                    r["spec"]["featureGroup"]["name"],
                    str(v["version"]),
                    v["state"],
                    str(lr.get("rowsWritten", "")),
                    str(lr.get("rowsRejected", "")),
                    str(lr.get("watermark", "")),
                )
        elif r["kind"] == "TrainingPipeline":
            for mv in st.get("modelVersions", []):
                fv = mv.get("featureView") or {}
                metrics = ", ".join(f"{k}={v:.3f}" for k, v in (mv.get("metrics") or {}).items())
                models.add_row(
                    name,
                    r["spec"]["model"]["name"],
                    str(mv["version"]),
                    mv["phase"],
                    f"{fv.get('name')} v{fv.get('version')}",
                    metrics or mv.get("message", ""),
                )
        else:
            ready: dict[str, Any] = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
            stable, target = st.get("stable") or {}, st.get("target") or {}
            serving.add_row(
                name,
                r["spec"].get("mode", "online"),
                f"model {stable['model']} / fv {stable['featureView']}" if stable else "-",
                f"model {target['model']} / fv {target['featureView']}" if target else "-",
                ready.get("status", "-"),
                ready.get("message", ""),
            )
            if r["spec"].get("monitoring") is not None:
                drifted: dict[str, Any] = next((c for c in st.get("conditions", []) if c["type"] == "Drifted"), {})
                monitoring.add_row(
                    name,
                    child_name(name, "monitor"),  # render/monitoring.py monitoring_name
                    (r["spec"]["monitoring"] or {}).get("schedule", "@hourly"),
                    (st.get("monitoring") or {}).get("job") or "-",
                    drifted.get("status", "-"),
                    drifted.get("message", ""),
                )
    for table in (fg, models, serving, monitoring):
        if table.row_count:
            out.print(table)


@local_app.command("status")
def local_status(
    state_dir: Path = STATE_DIR_OPTION, output: str = typer.Option("table", "-o", "--output", help="table | json")
) -> None:
    """Print the state of every resource (as the operator would write it in a cluster)."""
    from .local.driver import STATE_FILE, LocalRunError, read_resources

    try:
        items = read_resources(state_dir)
    except LocalRunError as exc:
        _fail(str(exc))
    if not items:
        # Say where we looked: an empty answer from the wrong directory looks like a broken demo.
        found = "has no state file" if not (state_dir / STATE_FILE).exists() else "holds no fti resources"
        console.print(
            f"no resources: {state_dir.resolve()} {found} (set by --state-dir or FTI_STATE_DIR, default "
            f"{DEFAULT_STATE_DIR}). Run `make demo` or `fti local apply -f examples/fraud/` from the repository first.",
            highlight=False,
        )
    if output == "json":
        out.print_json(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, default=str))
    elif output == "table":
        _print_summary(items)
    else:
        _fail(f"--output: expected table or json, got {output!r}")


@local_app.command("serve")
def local_serve(
    name: str, filename: list[Path] = typer.Option(..., "-f", "--filename"), state_dir: Path = STATE_DIR_OPTION
) -> None:
    """Start the online InferenceService NAME (already trained with `fti local apply`) until Ctrl-C."""
    from .local.apply import run_inference
    from .local.driver import LocalDriver, LocalRunError

    isvc = next((r for r in _load(filename) if isinstance(r, InferenceService) and r.metadata.name == name), None)
    if isvc is None or isvc.spec.mode != "online":
        _fail(f"no online InferenceService named {name!r} in {', '.join(map(str, filename))}")
    assert isvc is not None  # _fail exits
    driver = LocalDriver(state_dir, progress=lambda m: console.print(f"[cyan]>[/] {m}", highlight=False))
    # SIGTERM stops the server as Ctrl-C does (it runs in its own session, so it would outlive us).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run_inference(driver, [isvc], serve=True)
        status = (driver.get("InferenceService", isvc.metadata.namespace, name) or {}).get("status") or {}
        console.print(f"{name} serving at {status.get('url')} — Ctrl-C to stop")
        driver.cluster.wait_servers()
    except LocalRunError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        driver.stop()


@local_app.command("predict")
def local_predict(
    name: str,
    data: str = typer.Option(..., "--data", help='JSON: one instance or {"instances": [...]}'),
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Send a request to a running local InferenceService and print the answer."""
    from .local.driver import read_servers

    server = next((v for k, v in read_servers(state_dir).items() if k.split("/", 1)[-1] == name), None)
    if not server or not _alive(server.get("pid")):
        _fail(
            f"{name} is not running; start it with `fti local serve {name} -f <manifests>` "
            "or `fti local apply -f <manifests> --serve`"
        )
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        _fail(f"--data is not valid JSON: {exc}")
    if isinstance(body, dict) and "instances" not in body and "inputs" not in body:
        body = {"instances": [body]}
    assert server is not None  # _fail exits
    code, answer = post(f"{server['url']}/v1/models/{name}:predict", body)
    out.print_json(json.dumps(answer) if not isinstance(answer, str) else json.dumps({"error": answer}))
    if code != 200:
        raise typer.Exit(1)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError, PermissionError):
        return False


def _local_rollout_app() -> typer.Typer:
    from .local.driver import LocalRunError
    from .rollout_cli import RolloutError, make_app

    def backend() -> Any:
        from .local.apply import LocalRolloutBackend

        return LocalRolloutBackend(Path(os.environ.get("FTI_STATE_DIR") or DEFAULT_STATE_DIR))

    return make_app(
        backend,
        f"Rollout verbs on the state of fti local apply (FTI_STATE_DIR, default {DEFAULT_STATE_DIR}): "
        "status, history, undo, promote, abort, retry.",
        errors=(RolloutError, LocalRunError),
    )


local_app.command("monitor")(local_monitor)
local_app.add_typer(_local_rollout_app(), name="rollout")
app.add_typer(quarantine_app, name="quarantine")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
