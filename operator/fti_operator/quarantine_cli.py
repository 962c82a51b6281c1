"""`fti quarantine list|show|replay`: the quarantined batches of a namespace's artifact store.

A user of the store runs it where the store is reachable: on their machine for `fti local`
(the default store, `<state-dir>/store`), or against the cluster's store with its URI and
credentials (`--store s3://...`, the same environment a pipeline pod gets). It reads and
writes the store only through the pipelines' own code (fti_pipelines.feature.replay), so a
replay takes exactly the ingestion path of a run (docs/data-quality.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from .api import FeaturePipeline

app = typer.Typer(
    help="Quarantined feature batches (failed validation, or beyond allowedLateness): list, show, replay.",
    no_args_is_help=True,
)
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)


def _state_dir() -> Path:
    return Path(os.environ.get("FTI_STATE_DIR") or ".fti/local")


STORE = typer.Option(
    None,
    "--store",
    envvar="FTI_ARTIFACT_STORE",
    help="Artifact store root URI (file:///... or s3://...); default: fti local's <state-dir>/store.",
)
NAMESPACE = typer.Option("default", "-n", "--namespace", help="The namespace whose batches to read.")
OUTPUT = typer.Option("table", "-o", "--output", help="table | json")


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape_markup(message)}", highlight=False)
    raise typer.Exit(1)


def _root(store: str | None) -> str:
    return store or f"file://{(_state_dir() / 'store').resolve()}"


def _store(store: str | None, namespace: str) -> Any:
    from fti_pipelines.contract import PipelineError
    from fti_pipelines.store.tenancy import namespace_store

    try:
        return namespace_store(_root(store), namespace)
    except PipelineError as exc:
        _fail(f"{exc.reason}: {exc.message}")
    except ValueError as exc:
        _fail(str(exc))


def _check_output(output: str) -> None:
    if output not in ("table", "json"):
        _fail(f"--output: expected table or json, got {output!r}")


@app.command("list")
def list_batches(
    store: str | None = STORE,
    namespace: str = NAMESPACE,
    group: str | None = typer.Option(None, "--group", help="Only this feature group."),
    version: int | None = typer.Option(None, "--version", help="Only this version (with --group)."),
    output: str = OUTPUT,
) -> None:
    """The quarantined batches per feature group and version: run, reason, rows, time, replayed."""
    from fti_pipelines.store.quarantine import list_batches as batches

    _check_output(output)
    found = batches(_store(store, namespace), group, version if group else None)
    if output == "json":
        out.print_json(
            json.dumps(
                [
                    {
                        "batch": b.ref,
                        "uri": b.uri,
                        "reason": b.reason,
                        "rows": b.rows,
                        "quarantinedAt": b.quarantined_at,
                        "replay": b.replay,
                    }
                    for b in found
                ]
            )
        )
        return
    if not found:
        console.print(f"no quarantined batches in namespace {namespace} of {_root(store)}", highlight=False)
        return
    table = Table("BATCH", "REASON", "ROWS", "QUARANTINED", "REPLAYED")
    for b in found:
        replayed = "-"
        if b.replay:
            replayed = f"{b.replay.get('replayedAt')}: {b.replay.get('rowsWritten', 0)} written"
            if b.replay.get("quarantined"):
                replayed += f", {b.replay.get('rowsQuarantined', 0)} again in {', '.join(b.replay['quarantined'])}"
        table.add_row(b.ref, b.reason, str(b.rows), b.quarantined_at or "-", replayed)
    out.print(table)


@app.command("show")
def show(
    batch: str = typer.Argument(..., help="<group>/v<version>/<name>, as `fti quarantine list` prints it."),
    store: str | None = STORE,
    namespace: str = NAMESPACE,
    limit: int = typer.Option(50, "--limit", help="Rows to print (0: all)."),
    output: str = OUTPUT,
) -> None:
    """The batch's rows, each with the checks it failed."""
    from fti_pipelines.contract import PipelineError
    from fti_pipelines.feature.replay import show as show_batch

    _check_output(output)
    try:
        info, rows = show_batch(_store(store, namespace), batch, limit or None)
    except PipelineError as exc:
        _fail(f"{exc.reason}: {exc.message}")
    if output == "json":
        out.print_json(rows.to_json(orient="records", date_format="iso", default_handler=str))
        return
    console.print(
        f"{info.ref}: {info.rows} rows, reason {info.reason}, quarantined {info.quarantined_at or '-'} at {info.uri}"
        + (f"; replayed {info.replay.get('replayedAt')}" if info.replay else ""),
        highlight=False,
    )
    table = Table(*map(str, rows.columns))
    for record in rows.itertuples(index=False):
        table.add_row(*(escape_markup(str(v)) for v in record))
    out.print(table)
    if limit and info.rows > limit:
        console.print(f"(first {limit} of {info.rows} rows; --limit 0 prints all)", highlight=False)


@app.command("replay")
def replay(
    batch: str = typer.Argument(..., help="<group>/v<version>/<name>, as `fti quarantine list` prints it."),
    filename: list[Path] = typer.Option(
        ..., "-f", "--filename", help="The FeaturePipeline manifest (file or directory): its current rules apply."
    ),
    rows: Path | None = typer.Option(None, "--rows", help="Corrected rows (.parquet, .csv, .jsonl) instead of the batch's."),
    store: str | None = STORE,
    namespace: str | None = typer.Option(None, "-n", "--namespace", help="Default: the manifest's namespace, else default."),
    online_store: str | None = typer.Option(
        None,
        "--online-store",
        envvar="FTI_ONLINE_STORE",
        help="Online store URI for an online group; default: fti local's <state-dir>/online.db.",
    ),
) -> None:
    """Re-ingest a batch through the pipeline's validation and ingestion; rows failing again stay quarantined."""
    from fti_pipelines.contract import PipelineError
    from fti_pipelines.feature.replay import replay as replay_batch
    from fti_pipelines.store.quarantine import parse_ref

    from .cli import _load

    try:
        group, version, _ = parse_ref(batch)
    except ValueError as exc:
        _fail(str(exc))
    pipelines = [r for r in _load(filename) if isinstance(r, FeaturePipeline)]
    matching = [p for p in pipelines if (p.spec.feature_group.name, p.spec.feature_group.version) == (group, version)]
    if len(matching) != 1:
        seen = ", ".join(f"{p.metadata.name} ({p.spec.feature_group.name} v{p.spec.feature_group.version})" for p in pipelines)
        _fail(
            f"{batch}: {'no' if not matching else 'more than one'} FeaturePipeline in {', '.join(map(str, filename))} "
            f"writes {group} v{version} (found: {seen or 'none'})"
        )
    pipeline = matching[0]
    ns = namespace or pipeline.metadata.namespace or "default"
    online = online_store or (f"sqlite:///{(_state_dir() / 'online.db').resolve()}" if not store else None)
    try:
        result = replay_batch(
            _store(store, ns), batch, pipeline.spec, artifact_store=_root(store), namespace=ns, online_store=online, rows=rows
        )
    except PipelineError as exc:
        _fail(f"{exc.reason}: {exc.message}")
    record = result["replay"]
    console.print(
        f"replayed {batch}: {record['rowsRead']} rows read, {record['rowsWritten']} written, "
        f"{record['rowsDuplicate']} already stored, {record['rowsQuarantined']} quarantined again"
        + (f" as {', '.join(record['quarantined'])}" if record["quarantined"] else ""),
        highlight=False,
    )
    if result.get("message"):
        console.print(escape_markup(str(result["message"])), highlight=False)
