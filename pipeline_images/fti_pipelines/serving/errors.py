"""Request errors of the model server: always a 4xx naming the field, never a 500.

`RequestError` subclasses KServe's `InvalidInput`, so even where our handler is not
installed KServe still answers 400. Where it is installed (`install_error_handling`)
the status (400, 404, 413, 422) and the field reach the client as JSON:
`{"error": "...", "reason": "UnknownEntity", "field": "instances[0].cc_num"}`.

The body-size limit is enforced while the body streams in (an ASGI middleware), so
an oversized request is refused before anything parses it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from kserve.errors import InvalidInput
from starlette.responses import JSONResponse


class RequestError(InvalidInput):
    """A bad request: `status` is the HTTP code, `field` the path of the offending input."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400, reason: str = "InvalidInput"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status
        self.reason_code = reason

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "reason": self.reason_code}
        if self.field is not None:
            out["field"] = self.field
        return out


def bad_field(field: str, message: str) -> RequestError:
    return RequestError(f"{field}: {message}", field=field, status=400, reason="InvalidField")


def unknown_entity(field: str, message: str) -> RequestError:
    return RequestError(f"{field}: {message}", field=field, status=404, reason="UnknownEntity")


def too_large(field: str, message: str) -> RequestError:
    return RequestError(f"{field}: {message}", field=field, status=413, reason="RequestTooLarge")


class PredictorError(Exception):
    """The predictor behind a transformer failed: a gateway problem, not the caller's."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.message = message
        self.status = status


async def _request_error_handler(_: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content=exc.body())


async def _predictor_error_handler(_: Request, exc: PredictorError) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content={"error": exc.message, "reason": "PredictorFailed"})


class BodyLimitMiddleware:
    """Refuse bodies above `max_bytes` with 413, by Content-Length or while streaming."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send, declared)
                    return
                break
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the endpoint's body read, so the exception handlers answer 413.
                    raise too_large("body", f"request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Any, size: int) -> None:  # the body is not read: it is too large
        err = too_large("body", f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes")
        response = JSONResponse(status_code=413, content=err.body())
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.disconnect"}


# How long a client is asked to wait before retrying a request the online store could not answer.
RETRY_AFTER_SECONDS = 1


async def _store_unavailable_handler(_: Request, exc: Exception) -> JSONResponse:
    # The store is down or too slow for now (its socket timeout): a retryable 503, not a 500
    # that reads like a bug in the request or the model; the readiness probe says the same.
    return JSONResponse(
        status_code=503,
        content={"error": f"the online store is unavailable: {type(exc).__name__}: {exc}", "reason": "OnlineStoreUnavailable"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_error_handling(app: FastAPI, max_body_bytes: int, store_unavailable: tuple[type[BaseException], ...] = ()) -> None:
    """Add our handlers and the body limit to KServe's FastAPI app (before the server starts).

    store_unavailable: the online store's transient errors (`registry.transient_errors`),
    answered 503 with Retry-After when a lookup meets one."""
    # Starlette types every handler as taking any Exception; ours take the one they are for.
    app.add_exception_handler(RequestError, _request_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(PredictorError, _predictor_error_handler)  # type: ignore[arg-type]
    for error in store_unavailable:
        if issubclass(error, Exception):  # Starlette's handlers are for Exceptions (all stores' are)
            app.add_exception_handler(error, _store_unavailable_handler)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
