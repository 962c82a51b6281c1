"""`fti local monitor`: the monitoring job once, locally, for an InferenceService of `fti local`'s state.

The job is the one the operator's monitoring CronJob runs (docs/monitoring.md), started as a
process of its own with the same contract environment; its spec is built from the local
InferenceService's status the way the operator builds it from the cluster's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .cli_common import STATE_DIR_OPTION, fail, out
from .render.monitoring import profile_uri


def monitor_spec(
    isvc: dict[str, Any], window: str | None, min_rows: int | None, method: str | None, threshold: float | None
) -> dict[str, Any]:
    """FTI_SPEC of the monitoring job (docs/monitoring.md) for a local InferenceService's serving revisions.

    The stable revision, and the target while it takes traffic (a canary), each with its own
    model version, feature-view version and storage URI (the profile lies beside the model).
    Window, minRows and drift come from spec.monitoring when it is set (what the CronJob would
    run), the options given here override them, and the job's defaults fill the rest.
    """
    status = isvc.get("status") or {}
    revisions = []
    for role, rev in (("stable", status.get("stable")), ("canary", status.get("target"))):
        if not rev or not rev.get("storageUri") or (role == "canary" and not rev.get("traffic")):
            continue
        revisions.append(
            {
                "role": role,
                "modelVersion": rev["model"],
                "featureViewVersion": rev["featureView"],
                "modelUri": rev["storageUri"],
                "profileUri": profile_uri(rev["storageUri"], rev.get("profileUri")),
            }
        )
    monitoring = (isvc.get("spec") or {}).get("monitoring") or {}
    drift: dict[str, Any] = dict(monitoring.get("drift") or {})
    if method:
        drift["method"] = method
        if threshold is None:  # the spec's threshold belongs to the spec's method
            drift.pop("threshold", None)
    if threshold is not None:
        drift["threshold"] = threshold
    return {
        "inferenceService": isvc["metadata"]["name"],
        "window": window or monitoring.get("window") or "24h",
        "minRows": min_rows if min_rows is not None else monitoring.get("minRows", 1000),
        "drift": drift,
        "revisions": revisions,
    }


def local_monitor(
    name: str,
    state_dir: Path = STATE_DIR_OPTION,
    namespace: str = typer.Option("default", "-n", "--namespace"),
    window: str | None = typer.Option(None, help="How far back from now the log is read (default: spec.monitoring.window, 24h)."),
    min_rows: int | None = typer.Option(None, "--min-rows", help="Fewer logged rows: NotEnoughData (default: spec, 1000)."),
    method: str | None = typer.Option(None, help="psi (default) | js | wasserstein | ks"),
    threshold: float | None = typer.Option(None, help="Drift threshold (default per method, docs/monitoring.md)."),
) -> None:
    """Run the monitoring job once for InferenceService NAME: drift of its logged requests against training."""
    import subprocess
    import tempfile

    from .api.identity import (
        ENV_ARTIFACT_STORE,
        ENV_NAMESPACE,
        ENV_RESOURCE,
        ENV_RUN_ID,
        ENV_SPEC,
        ENV_TERMINATION_LOG,
    )
    from .local.driver import LocalRunError, local_config, read_resources

    try:
        items = read_resources(state_dir)
    except LocalRunError as exc:
        fail(str(exc))
    isvc = next(
        (
            i
            for i in items
            if i.get("kind") == "InferenceService"
            and i["metadata"]["name"] == name
            and i["metadata"].get("namespace") == namespace
        ),
        None,
    )
    if isvc is None:
        fail(f"no InferenceService {namespace}/{name} in {state_dir.resolve()}; run `fti local apply` first")
    assert isvc is not None  # _fail exits
    spec = monitor_spec(isvc, window, min_rows, method, threshold)
    if not spec["revisions"]:
        fail(f"InferenceService {name} serves no model yet (no stable revision with a storage URI)")
    with tempfile.TemporaryDirectory(prefix="fti-monitor-") as tmp:
        result_file = Path(tmp) / "result.json"
        env = {
            **os.environ,
            ENV_SPEC: json.dumps(spec),
            ENV_ARTIFACT_STORE: local_config(state_dir).artifact_store,
            ENV_NAMESPACE: namespace,
            ENV_RESOURCE: name,
            ENV_RUN_ID: f"{name}-monitor-{os.getpid()}",
            ENV_TERMINATION_LOG: str(result_file),
        }
        # A process of its own, as the CronJob's pod would be: the same module, the same contract.
        # Its log is a pod's log: kept out of the report, shown when the job fails.
        job = subprocess.run(
            [sys.executable, "-m", "fti_pipelines.monitoring"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        result: dict[str, Any] = (
            json.loads(result_file.read_text()) if result_file.exists() else {"ok": False, "error": "no result"}
        )
    if not result.get("ok"):
        log_tail = "\n".join(job.stderr.strip().splitlines()[-20:])
        fail(f"monitoring failed: {result.get('reason', '')}: {result.get('error', '')}" + (f"\n{log_tail}" if log_tail else ""))
    print_report(spec, result)


def print_report(spec: dict[str, Any], result: dict[str, Any]) -> None:
    """The drift report: per revision its verdict, then its top features with score, method and
    threshold (drifted ones marked), and where report.json and report.html lie."""
    drift = spec.get("drift") or {}
    out.print(
        f"drift of {spec['inferenceService']}'s logged predictions over the last {spec['window']} "
        f"against its training profile (method {drift.get('method') or 'psi'}, minRows {spec['minRows']})",
        highlight=False,
    )
    table = Table("revision", "model", "rows", "status", "drifted features")
    for r in result["revisions"]:
        table.add_row(r["role"], f"v{r['modelVersion']}", str(r["rows"]), r["status"], str(r["driftedFeatures"]))
    out.print(table)
    for r in result["revisions"]:
        if not r["features"]:
            continue
        features = Table(
            "feature", "method", "score", "threshold", "drifted", title=f"{r['role']} v{r['modelVersion']}: top features"
        )
        for f in r["features"]:
            features.add_row(f["name"], f["method"], f"{f['score']:.3f}", f"{f['threshold']:g}", "yes" if f["drifted"] else "no")
        out.print(features)
    report = result["revisions"][0]["reportUri"]
    # Whole lines, never wrapped: a terminal or a script opens the path as printed.
    out.print(f"report: {report.removesuffix('.json')}.html", highlight=False, soft_wrap=True)
    out.print(f"report data: {report}", highlight=False, soft_wrap=True)
