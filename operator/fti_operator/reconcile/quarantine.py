"""Quarantined rows of a FeaturePipeline run -> the DataQuarantined condition, Ready and the run's Event.

A run that quarantines rows (its batch failed validation with onFailure=quarantine, or rows
were beyond allowedLateness) still succeeds: the rows are kept in the artifact store, never
dropped. What the run reported in its termination message becomes visible here (pure
functions; docs/data-quality.md):

- `DataQuarantined` describes the last run of the current version: True when it quarantined
  rows (how many, where, the first failing checks and rows), False/NoRowsQuarantined when it
  quarantined none, so a clean later run clears it. Older versions' runs keep their counts in
  `status.versions[].lastRun` and do not set the condition.
- `Ready` stays True with quarantined rows only while their share of the rows read is within
  `spec.validation.maxRejectedFraction` (default 0: any quarantined row makes Ready False,
  reason DataQuarantined).
- the Event recording a run that quarantined rows is a Warning (reason DataQuarantined)
  instead of a Normal RunSucceeded: one per run, written with the status that records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .conditions import condition

MAX_MESSAGE = 1024


def quarantined_rows(run: Mapping[str, Any]) -> int:
    """Rows a run set aside: its failed-validation batch plus its rows beyond the allowed lateness."""
    return int(run.get("rowsRejected") or 0) + int(run.get("rowsTooLate") or 0)


def quarantined_fraction(run: Mapping[str, Any]) -> float:
    """The share of the rows read that the run quarantined (1.0 when it did not say how many it read)."""
    rows = quarantined_rows(run)
    read = int(run.get("rowsRead") or 0)
    if not rows:
        return 0.0
    return min(1.0, rows / read) if read else 1.0


def allowed_fraction(spec: Mapping[str, Any]) -> float:
    return float((spec.get("validation") or {}).get("maxRejectedFraction") or 0.0)


def describe(version: int, run: Mapping[str, Any]) -> str:
    """`v3: 12 rows quarantined by <job>: 10 failed validation at <uri> (<checks>; <rows>); 2 beyond
    allowedLateness at <uri>` — what a user needs to find and inspect the rows (`fti quarantine show`)."""
    parts = []
    if run.get("rowsRejected"):
        where = f" at {run['quarantineUri']}" if run.get("quarantineUri") else ""
        detail = "; ".join(x for x in (run.get("message"), *(run.get("rejectedExamples") or [])) if x)
        parts.append(f"{run['rowsRejected']} failed validation{where}" + (f" ({detail})" if detail else ""))
    if run.get("rowsTooLate"):
        where = f" at {run['lateQuarantineUri']}" if run.get("lateQuarantineUri") else ""
        parts.append(f"{run['rowsTooLate']} beyond allowedLateness (LateRow){where}")
    text = f"v{version}: {quarantined_rows(run)} rows quarantined by {run.get('job')}: " + "; ".join(parts)
    return text[:MAX_MESSAGE]


def data_quarantined(version: int, run: Mapping[str, Any] | None) -> dict[str, Any]:
    """The DataQuarantined condition for the current version's last run (pure)."""
    if run is None:
        return condition("DataQuarantined", None, "WaitingForFirstRun", f"v{version}: no run has finished yet")
    if quarantined_rows(run):
        return condition("DataQuarantined", True, "RowsQuarantined", describe(version, run))
    if not run.get("succeeded") and run.get("rowsRejected") is None:
        return condition("DataQuarantined", None, "NoRunResult", f"v{version}: {run.get('job')} failed before reporting its rows")
    return condition("DataQuarantined", False, "NoRowsQuarantined", f"v{version}: {run.get('job')} quarantined no rows")


def ready(
    materialized: dict[str, Any], quarantine: dict[str, Any], spec: Mapping[str, Any], run: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Ready from Materialized and DataQuarantined: quarantined rows beyond the allowed share make it False."""
    if materialized["status"] != "True":
        ok = False if materialized["status"] == "False" else None
        return condition("Ready", ok, materialized["reason"], materialized["message"])
    if quarantine["status"] == "True" and run is not None:
        share, allowed = quarantined_fraction(run), allowed_fraction(spec)
        if share > allowed:
            return condition(
                "Ready",
                False,
                "DataQuarantined",
                f"{quarantine['message']} - {share:.1%} of the rows read, above maxRejectedFraction {allowed:g}"[:MAX_MESSAGE],
            )
        return condition(
            "Ready",
            True,
            "Materialized",
            f"{materialized['message']}; {share:.1%} quarantined, within maxRejectedFraction {allowed:g}"[:MAX_MESSAGE],
        )
    return condition("Ready", True, "Materialized", materialized["message"])


def run_event(group: str, version: int, run: Mapping[str, Any]) -> tuple[str, str, str]:
    """(reason, message, type) of the Event that records a finished run."""
    if not run.get("succeeded"):
        return "RunFailed", f"{group} v{version}: Job {run['job']} failed: {run.get('message', '')}", "Warning"
    if quarantined_rows(run):
        return "DataQuarantined", f"{group} {describe(version, run)}; wrote {run.get('rowsWritten', 0)} rows", "Warning"
    return (
        "RunSucceeded",
        f"{group} v{version}: Job {run['job']} wrote {run.get('rowsWritten', 0)} rows, rejected {run.get('rowsRejected', 0)}",
        "Normal",
    )
