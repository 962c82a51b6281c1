"""Root conftest: registers the shared fixture plugins (tests/ is on sys.path) and marks
each test with the pod runner it uses.

Pods run in one of three ways (docs/contributing.md, "Where pods run"): in real containers
on the real node (``node`` fixture, tests/node), as host processes under the in-process
pod runner where a test needs speed (``pod_runner``, tests/controlplane), or on kind where a
Docker engine exists (tests/e2e/test_kind.py). The marks are derived from the fixtures a
test really requests, so they cannot drift from the code: ``pytest -m node``,
``pytest -m pod_runner`` and ``pytest -m kind`` select each group, and the session header
counts them.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["support.redis_server", "support.s3_server", "support.online_stores"]

RUNNERS = {
    "node": "pods in containers on the real node (tests/node)",
    "pod_runner": "pods as host processes under the in-process pod runner (tests/controlplane)",
    "kind": "pods on a kind cluster (needs a Docker engine)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, what in RUNNERS.items():
        config.addinivalue_line("markers", f"{name}: {what}; set from the fixtures the test uses")


def runner_of(item: pytest.Item) -> str | None:
    """The pod runner a collected test uses, from its fixture closure (None: it runs no pods)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    used = [name for name in ("node", "pod_runner") if name in fixtures]
    if len(used) > 1:
        raise pytest.UsageError(f"{item.nodeid} uses both the real node and the in-process pod runner")
    if used:
        return used[0]
    if item.path.name == "test_kind.py":
        return "kind"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    counts = dict.fromkeys(RUNNERS, 0)
    for item in items:
        runner = runner_of(item)
        if runner:
            item.add_marker(runner)
            counts[runner] += 1
    config.stash[RUNNER_COUNTS] = counts


RUNNER_COUNTS = pytest.StashKey[dict[str, int]]()


def pytest_report_collectionfinish(config: pytest.Config) -> str:
    counts = config.stash.get(RUNNER_COUNTS, {})
    return "pod runners: " + ", ".join(f"{counts.get(name, 0)} on {name}" for name in RUNNERS)
