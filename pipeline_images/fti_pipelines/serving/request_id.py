"""Request ids: every answer of the model server carries `X-Request-Id`, errors included.

The id is the caller's `X-Request-Id` when it sent a usable one (up to 128 visible ASCII
characters), else a new random one. It is put into the request's headers too, so KServe's
own latency log and a transformer's call to its predictor carry the same id, and into a
context variable (with the time the request arrived) for the prediction log
(serving/prediction_log.py, docs/monitoring.md): a logged row and the answer the caller got
share the id.

A pure ASGI middleware, outermost of ours: an exception no handler turned into a response
(a 500) is answered here, in KServe's shape, so that answer carries the id as well
(Starlette would otherwise answer it outside every middleware).
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.responses import JSONResponse

log = logging.getLogger("fti_pipelines.serving")

HEADER = b"x-request-id"
MAX_LENGTH = 128
# (request id, time.perf_counter() when the request arrived) of the request being handled.
CURRENT: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar("fti_request", default=None)


def new_request_id() -> str:
    return os.urandom(16).hex()


def usable(value: bytes) -> bool:
    return 0 < len(value) <= MAX_LENGTH and all(33 <= b <= 126 for b in value)


def current(headers: dict | None = None) -> tuple[str, float | None]:
    """(request id, arrival time or None) of this request: from the middleware, else the headers, else new."""
    found = CURRENT.get()
    if found is not None:
        return found
    text = (headers or {}).get("x-request-id")
    return (text if isinstance(text, str) and usable(text.encode(errors="replace")) else new_request_id()), None


class RequestIdMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        rid = None
        for name, value in scope.get("headers", ()):
            if name == HEADER:
                rid = value if usable(value) else None
                break
        if rid is None:
            rid = new_request_id().encode()
            # Replaces an unusable id; the handlers (and a predictor behind a transformer) see this one.
            scope["headers"] = [(n, v) for n, v in scope.get("headers", ()) if n != HEADER] + [(HEADER, rid)]
        token = CURRENT.set((rid.decode(), arrived))
        started = False

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            log.error("unhandled error answering request %s", rid.decode(), exc_info=exc)
            response = JSONResponse(status_code=500, content={"error": f"{type(exc).__name__} : {exc}"})
            await response(scope, receive, send_with_id)
        finally:
            CURRENT.reset(token)
