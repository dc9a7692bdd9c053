"""Domain errors to HTTP responses, in one place, in each dialect's own error shape.

Each dialect registers an ``ErrorFormat`` for its path prefixes; everything else gets the native
shape ``{"error": {"code", "message"}}``. Validation errors, unknown routes, oversized bodies and
unexpected exceptions all pass through here, so no caller ever sees a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatwell.errors import (
    ChatwellError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
)

log = logging.getLogger("chatwell.api")

STATUS_BY_ERROR: tuple[tuple[type[ChatwellError], int], ...] = (
    (InvalidRequest, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (ServiceUnavailable, 503),
)
MAX_DETAIL_ERRORS = 20

ErrorFormat = Callable[[ChatwellError, int], JSONResponse]


def status_of(error: ChatwellError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def rate_limit_headers(error: ChatwellError) -> dict[str, str]:
    if not isinstance(error, RateLimited):
        return {}
    headers = {"Retry-After": str(error.retry_after)}
    if error.limit is not None:
        headers["X-RateLimit-Limit"] = str(error.limit)
        headers["X-RateLimit-Remaining"] = "0"
    if error.reset_at is not None:
        headers["X-RateLimit-Reset"] = str(error.reset_at)
    return headers


def native_error(error: ChatwellError, status: int) -> JSONResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return JSONResponse({"error": body}, status_code=status, headers=rate_limit_headers(error))


class ErrorFormats:
    """Which error shape a path gets: the longest registered prefix wins, native otherwise."""

    def __init__(self) -> None:
        self._formats: list[tuple[str, ErrorFormat]] = []

    def register(self, prefix: str, fmt: ErrorFormat) -> None:
        self._formats.append((prefix, fmt))
        self._formats.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> ErrorFormat:
        for prefix, fmt in self._formats:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return fmt
        return native_error

    def render(self, request: Request, error: ChatwellError) -> JSONResponse:
        return self.for_path(request.url.path)(error, status_of(error))


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidRequest("request body is not valid JSON", code="malformed_json")
    fields = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg", "")}
        for e in errors[:MAX_DETAIL_ERRORS]
    ]
    summary = "; ".join(f"{f['field'] or 'body'}: {f['problem']}" for f in fields[:3])
    return InvalidRequest(f"invalid request: {summary}", details={"fields": fields})


def install_error_handlers(app: FastAPI, formats: ErrorFormats) -> None:
    async def on_chatwell_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ChatwellError)
        return formats.render(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return formats.render(request, validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: ChatwellError
        if exc.status_code == 404:
            error = NotFound("no such endpoint", code="not_found")
        elif exc.status_code == 405:
            error = InvalidRequest("method not allowed on this endpoint", code="method_not_allowed")
        elif exc.status_code == 413:
            error = PayloadTooLarge("request body too large")
        else:
            error = InvalidRequest(str(exc.detail), code="bad_request")
        response = formats.render(request, error)
        if exc.status_code < 500:
            response.status_code = exc.status_code
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return formats.for_path(request.url.path)(
            ChatwellError("internal error; the server log has the details", code="internal_error"), 500
        )

    app.add_exception_handler(ChatwellError, on_chatwell_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

