"""What a benchmark run cost, from the API server's and the kernel's own counters.

Shared by bench/operator_bench.py: apiserver_request_total by verb and resource (every
client, not just the operator), CPU seconds and RSS from /proc, the load average (the
machines are shared, so every run records it), and metadata-only counting of children.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from kubernetes import client

WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE", "APPLY", "REPLACE")


def writes(counts: dict[str, float]) -> float:
    """Write requests in a {"VERB resource": n} map (verbs as the API server or the operator names them)."""
    return sum(n for key, n in counts.items() if key.split(" ", 1)[0].upper() in WRITE_VERBS)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def metric_labels(line: str) -> dict[str, str]:
    """Labels of one Prometheus text-format sample (no commas inside our label values)."""
    pairs = (part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
    return {k: v.strip('"') for k, v in pairs}


def apiserver_requests(api: client.ApiClient) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total by (verb, group/resource, subresource), every client, not just the operator."""
    method, url, headers, body, _ = api.param_serialize(
        "GET", "/metrics", header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
    )
    text = api.call_api(method, url, header_params=headers, body=body, _request_timeout=30).read().decode()
    out: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = metric_labels(line)
        if not labels.get("resource"):
            continue  # /metrics, /healthz, discovery
        key = (labels.get("verb", ""), f"{labels.get('group') or 'core'}/{labels['resource']}", labels.get("subresource", ""))
        out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


def by_verb_resource(counts: dict[tuple[str, str, str], float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (verb, resource, sub), n in counts.items():
        key = f"{verb} {resource}" + (f"/{sub}" if sub else "")
        out[key] = out.get(key, 0) + n
    return out


def apiserver_writes(api: client.ApiClient) -> dict[str, float]:
    """Write requests by group/resource (subresources counted with their resource)."""
    out: dict[str, float] = {}
    for (verb, resource, _sub), n in apiserver_requests(api).items():
        if verb in WRITE_VERBS:
            out[resource] = out.get(resource, 0) + n
    return out


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] - before.get(k, 0)}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """utime + stime of each process (the control plane's Go binaries are single processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        if pid == os.getpid():
            t = os.times()
            out[name] = t.user + t.system
            continue
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_split(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 1) for k in after}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# The poll only counts children: metadata-only lists, not thousands of full objects turned into
# client models every half second (that cost the 2-core box ~20 CPU-s per run, taken from the
# processes being measured).
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def count(api: client.ApiClient, path: str, selector: str | None = None) -> int:
    method, url, headers, body, _ = api.param_serialize(
        "GET",
        path,
        query_params=[("labelSelector", selector)] if selector else [],
        header_params={"Accept": METADATA_ONLY},
        auth_settings=["BearerToken"],
    )
    return len(json.loads(api.call_api(method, url, header_params=headers, body=body, _request_timeout=60).read())["items"])


def stop_operator(operator: subprocess.Popen | None) -> int | str | None:
    """SIGTERM, then SIGKILL after a minute: the operator's exit code, or "killed"."""
    if operator is None:
        return None
    operator.terminate()
    try:
        return operator.wait(timeout=60)
    except subprocess.TimeoutExpired:
        operator.kill()
        return "killed"


def report(results: dict, out: Path | None, workdir: Path) -> None:
    """Print the run's JSON (and write it to `out`), then remove the work directory unless FTI_BENCH_KEEP."""
    results["loadavg_end"] = loadavg()
    print(json.dumps(results, indent=2))
    if out:
        out.write_text(json.dumps(results, indent=2))
    if os.environ.get("FTI_BENCH_KEEP"):
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
