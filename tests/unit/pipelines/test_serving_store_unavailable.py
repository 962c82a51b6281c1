"""A store that stops answering: bounded socket timeouts, and a retryable 503 instead of a hang or a 500.

The stalled server is a socket that accepts and never replies, as a Redis host behind a
partition (no reset) looks to its clients.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from fti_pipelines.serving.errors import RETRY_AFTER_SECONDS, install_error_handling
from fti_pipelines.store.online import open_online_store, transient_errors
from fti_pipelines.store.online.redis.store import CONNECT_TIMEOUT, READ_TIMEOUT, WRITE_TIMEOUT, RedisOnlineStore


@pytest.fixture
def stalled() -> Iterator[int]:
    """The port of a server that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def timeouts(client) -> tuple[float, float]:
    kwargs = client.connection_pool.connection_kwargs
    return kwargs["socket_connect_timeout"], kwargs["socket_timeout"]


def test_redis_clients_get_bounded_timeouts_unless_the_uri_names_its_own(redis_url: str) -> None:
    store = open_online_store(redis_url)
    assert isinstance(store, RedisOnlineStore)
    assert timeouts(store._r) == (CONNECT_TIMEOUT, WRITE_TIMEOUT), "large pipelined writes: the long one"
    store.entity_reader([])
    assert store._reader is not None and timeouts(store._reader)[1] == READ_TIMEOUT, "a request's read: the short one"
    store.close()
    named = open_online_store(f"{redis_url}?socket_timeout=0.25&socket_connect_timeout=1")
    assert isinstance(named, RedisOnlineStore)
    named.entity_reader([])
    assert timeouts(named._r) == (1.0, 0.25) and timeouts(named._reader)[1] == 0.25, "the URI's own win, everywhere"
    named.close()


def test_a_read_the_store_does_not_answer_is_a_503_with_retry_after(stalled: int) -> None:
    uri = f"redis://127.0.0.1:{stalled}/0?socket_timeout=0.3"
    store = open_online_store(uri)
    app = FastAPI()
    install_error_handling(app, 1 << 20, transient_errors(uri))

    @app.get("/lookup")
    def lookup() -> dict:
        return {"info": store.version_info("g", 1)}

    async def ask() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.get("/lookup")

    answer = asyncio.run(ask())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = answer.json()
    assert body["reason"] == "OnlineStoreUnavailable" and "TimeoutError" in body["error"]
    store.close()
