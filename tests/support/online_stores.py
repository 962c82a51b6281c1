"""`online_store`: one fixture, every online-store backend (SQLite file, real redis-server).

Tests of backend-independent semantics take it and run once per backend; the Redis
case carries the `redis` mark so it follows the redis-server fixture's skip rules.
A new backend adds its case here, named like its folder under
fti_pipelines/store/online/ (test_store_online_layout checks they match; docs/stores.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fti_pipelines.store.online import OnlineStore, open_online_store

CASES = ("sqlite", "redis")  # one per backend folder
MARKS = {"redis": pytest.mark.redis}  # a case that needs a server follows that server's skip rules


@pytest.fixture(params=[pytest.param(case, marks=MARKS.get(case, ())) for case in CASES])
def online_store(request, tmp_path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        store = open_online_store(f"sqlite:///{tmp_path}/online.db")
    else:
        store = open_online_store(request.getfixturevalue("redis_url"))
    yield store
    store.close()
