"""report.html: the monitoring report as one self-contained page (inline SVG, no scripts).

Per revision: its status and counts, then per feature (most drifted first) the training
and window distributions side by side over the same buckets, as paired bars.
"""

from __future__ import annotations

import html
from typing import Any

E = html.escape
TRAINING, WINDOW = "#4c72b0", "#dd8452"
STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.3em .6em}.Drifted,.yes{color:#b00;font-weight:bold}.NoDrift{color:green}"
    ".NotEnoughData{color:#888}figure{display:inline-block;margin:.5em 1em .5em 0}figcaption{font-size:.9em}"
)


def bars_svg(labels: list[str], reference: list[float], current: list[float], width: int = 420, height: int = 160) -> str:
    """Paired bars of the two distributions' shares (each side normalised to 1)."""
    ref_total, cur_total = sum(reference) or 1.0, sum(current) or 1.0
    shares = [(r / ref_total, c / cur_total) for r, c in zip(reference, current, strict=True)]
    top = max([max(p) for p in shares] + [1e-9])
    n = max(len(labels), 1)
    slot = (width - 10) / n
    bar = max(slot / 2 - 1, 1)
    plot = height - 30
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"]
    for i, (label, (r, c)) in enumerate(zip(labels, shares, strict=True)):
        x = 5 + i * slot
        for j, (share, colour, side) in enumerate(((r, TRAINING, "training"), (c, WINDOW, "window"))):
            h = plot * share / top
            parts.append(
                f"<rect x='{x + j * bar:.1f}' y='{plot - h:.1f}' width='{bar:.1f}' height='{h:.1f}' fill='{colour}'>"
                f"<title>{E(label)}: {side} {share:.3%}</title></rect>"
            )
    parts.append(f"<line x1='0' y1='{plot}' x2='{width}' y2='{plot}' stroke='#999'/>")
    parts.append(
        f"<text x='5' y='{height - 10}' font-size='11'><tspan fill='{TRAINING}'>■ training</tspan> "
        f"<tspan fill='{WINDOW}'>■ window</tspan> ({n} buckets: {E(labels[0] if labels else '')} … "
        f"{E(labels[-1] if labels else '')})</text></svg>"
    )
    return "".join(parts)


def _revision(r: dict[str, Any]) -> str:
    head = (
        f"<h2>{E(r['role'])}: model v{r['modelVersion']}, feature view v{r['featureViewVersion']} — "
        f"<span class='{E(r['status'])}'>{E(r['status'])}</span></h2>"
        f"<p>{r['rows']} logged rows in the window; {r['driftedFeatures']} drifted features. "
        f"Profile <code>{E(r['profileUri'])}</code>.</p>"
    )
    if r["status"] == "NotEnoughData":
        return head
    rows = "".join(
        f"<tr><td>{E(f['name'])}</td><td>{E(f['kind'])}</td><td>{f['score']:.4f}</td><td>{f['threshold']}</td>"
        f"<td class='{'yes' if f['drifted'] else 'no'}'>{'yes' if f['drifted'] else 'no'}</td><td>{f['defaultedRows']}</td></tr>"
        for f in r["features"]
    )
    table = (
        "<table><tr><th>feature</th><th>kind</th><th>score</th><th>threshold</th><th>drifted</th>"
        f"<th>rows defaulted</th></tr>{rows}</table>"
    )
    if r.get("notLogged"):
        table += f"<p>Not in the log (not scored): {E(', '.join(r['notLogged']))}.</p>"
    figures = []
    if r.get("prediction"):
        p = r["prediction"]
        h = p["histogram"]
        figures.append(
            f"<figure>{bars_svg(h['labels'], h['reference'], h['current'])}"
            f"<figcaption>model score ({E(p['method'])} {p['score']:.4f})</figcaption></figure>"
        )
    for f in r["features"]:
        h = f["histogram"]
        figures.append(
            f"<figure>{bars_svg(h['labels'], h['reference'], h['current'])}"
            f"<figcaption>{E(f['name'])} ({E(f['method'])} {f['score']:.4f}{', drifted' if f['drifted'] else ''})"
            "</figcaption></figure>"
        )
    return head + table + "".join(figures)


def report_html(report: dict[str, Any]) -> str:
    title = f"Monitoring {report['inferenceService']} ({report['namespace']})"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{E(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{E(title)}</h1><p>Window {E(report['windowStart'])} to {E(report['windowEnd'])}; method "
        f"{E(report['method'])}, threshold {report['threshold']}, at least {report['minDriftedFeatures']} drifted "
        f"feature(s) to call a revision Drifted; at least {report['minRows']} rows to judge it. Run {E(report['runId'])}.</p>"
        + "".join(_revision(r) for r in report["revisions"])
        + "</body></html>"
    )


__all__ = ["bars_svg", "report_html"]
