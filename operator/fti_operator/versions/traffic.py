"""Which of our revisions KServe still routes requests to, read back from its traffic table.

Status moves on when KServe reports a revision ready, but the requests do not always move
with it at once: a canary shares traffic with the stable revision, an aborted canary keeps
its share until the revision that replaces it is ready, and Knative may still route to a
revision the status already dropped (with `revisionHistoryLimit: 0` the old stable pair
leaves status as soon as the new one is stable). A pair that still answers requests must
still find its feature-group versions, so retention reads `status.routed` as well as the
other revisions (docs/rollouts.md, "Feature versions follow the revisions").

KServe's traffic table names its own revisions (`<isvc>-predictor-00003`). Each of our
revisions records KServe's name for it once KServe had it ready (`kserveRevision`), so a
routed KServe revision is mapped back to one of our revisions by that name, and the
entry keeps the whole snapshot of the pair: it stays self-contained after the revision it
was copied from leaves status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .rollout import Revision

# What a routed entry keeps of a revision: the pair's snapshot, not its rollout bookkeeping.
_BOOKKEEPING = ("since", "traffic", "reason", "message", "generation", "pinnedFor")


def routed_revisions(traffic: Iterable[Mapping[str, Any]], known: Iterable[Mapping[str, Any] | None]) -> list[Revision]:
    """Our revisions that KServe's `traffic` routes a share of requests to, newest first.

    traffic: KServe's `status.components.predictor.traffic[]` entries (`revisionName`,
    `percent`, `latestRevision`, `tag`). An entry without a percentage, or with 0 (a tag
    kept only for its own URL), routes no requests.
    known: revisions with their snapshots (the status before and after this step, and the
    entries routed before); the first one recording a KServe revision name wins.
    An entry whose KServe revision no revision records (never reported ready to us) is left
    out: nothing is known about its pair.
    """
    by_name: dict[str, Mapping[str, Any]] = {}
    for r in known:
        name = (r or {}).get("kserveRevision")
        if r and name and name not in by_name and r.get("revision") is not None:
            by_name[str(name)] = r
    shares: dict[int, Revision] = {}
    for t in traffic:
        percent = int(t.get("percent") or 0)
        found = by_name.get(str(t.get("revisionName") or ""))
        if percent <= 0 or found is None:
            continue
        number = int(found["revision"])
        entry = shares.get(number)
        if entry is None:
            entry = {k: v for k, v in found.items() if k not in _BOOKKEEPING}
            entry["traffic"] = 0
            shares[number] = entry
        entry["traffic"] = min(100, int(entry["traffic"]) + percent)
    return [shares[n] for n in sorted(shares, reverse=True)]
