"""Domain errors to HTTP responses, in one place, in each dialect's own error shape.

Each dialect registers an ``ErrorFormat`` for its path prefixes; everything else gets the native
shape ``{"error": {"code", "message"}}``. Validation errors, unknown routes, oversized bodies and
unexpected exceptions all pass through here, so no caller ever sees a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
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
    database_unavailable,
)
from chatwell.storage.database import unavailable_reason

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
ErrorHeaders = Callable[[Request], Awaitable[dict[str, str]]]


def status_of(error: ChatwellError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def rate_limit_headers(error: ChatwellError) -> dict[str, str]:
    if isinstance(error, ServiceUnavailable) and error.retry_after:
        return {"Retry-After": str(error.retry_after)}
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


NATIVE_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    """How a dialect's error body looks, for the OpenAPI document (its JSON schema, by name)."""

    name: str
    schema: dict[str, Any]
    extra_statuses: tuple[int, ...] = ()


NATIVE_ERROR_DOC = ErrorDoc("Error", NATIVE_ERROR_SCHEMA)
# What any operation may answer besides its success, whichever door it belongs to.
ERROR_RESPONSES = {
    400: "Invalid request: malformed JSON, a parameter or field out of bounds, NUL characters",
    401: "Missing or invalid key",
    403: "The key's scope or origin, or the bot's visibility, does not allow this",
    404: "Not found (a resource of another workspace is reported the same way)",
    409: "Conflict (a slug taken, a resolved conversation)",
    413: "Request body over the size limit",
    429: "A rate limit or quota was hit (Retry-After says when to try again)",
    503: "A dependency or the workspace's credit is unavailable",
}


class ErrorFormats:
    """Which error shape a path gets: the longest registered prefix wins, native otherwise.
    A door may also name headers its errors carry (OpenAI's rate-limit figures)."""

    def __init__(self) -> None:
        self._formats: list[tuple[str, ErrorFormat, ErrorDoc]] = []
        self._headers: dict[str, ErrorHeaders] = {}

    def register(
        self,
        prefix: str,
        fmt: ErrorFormat,
        doc: ErrorDoc = NATIVE_ERROR_DOC,
        headers: ErrorHeaders | None = None,
    ) -> None:
        self._formats.append((prefix, fmt, doc))
        self._formats.sort(key=lambda item: len(item[0]), reverse=True)
        if headers is not None:
            self._headers[prefix] = headers

    async def headers_for(self, request: Request) -> dict[str, str]:
        """The extra headers of an error on ``request``'s path ({} when its door names none, or
        when finding them fails: the error response goes out regardless)."""
        path = request.url.path
        prefix = next(
            (p for p, _, _ in self._formats if path == p or path.startswith(p.rstrip("/") + "/")),
            None,
        )
        headers = self._headers.get(prefix) if prefix is not None else None
        if headers is None:
            return {}
        try:
            return await headers(request)
        except Exception:  # noqa: BLE001 - an error response must not fail on its extras
            log.warning("error headers for %s failed", path, exc_info=True)
            return {}

    def _entry(self, path: str) -> tuple[ErrorFormat, ErrorDoc]:
        for prefix, fmt, doc in self._formats:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return fmt, doc
        return native_error, NATIVE_ERROR_DOC

    def for_path(self, path: str) -> ErrorFormat:
        return self._entry(path)[0]

    def doc_for_path(self, path: str) -> ErrorDoc:
        return self._entry(path)[1]

    def document(self, openapi: dict[str, Any]) -> None:
        """Describe in ``openapi`` the error responses every operation really sends, in its door's
        shape, instead of FastAPI's default 422 (validation errors are 400s here)."""
        components = openapi.setdefault("components", {}).setdefault("schemas", {})
        for path, operations in openapi.get("paths", {}).items():
            doc = self.doc_for_path(path)
            components[doc.name] = doc.schema
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status in sorted({*ERROR_RESPONSES, *doc.extra_statuses}):
                    responses.setdefault(
                        str(status),
                        {
                            "description": ERROR_RESPONSES.get(status, "Error"),
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": f"#/components/schemas/{doc.name}"}
                                }
                            },
                        },
                    )
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)

    def render(self, request: Request, error: ChatwellError) -> JSONResponse:
        return self.for_path(request.url.path)(error, status_of(error))


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidRequest("request body is not valid JSON", code="malformed_json")
    fields = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
            "problem": e.get("msg", ""),
        }
        for e in errors[:MAX_DETAIL_ERRORS]
    ]
    summary = "; ".join(f"{f['field'] or 'body'}: {f['problem']}" for f in fields[:3])
    return InvalidRequest(f"invalid request: {summary}", details={"fields": fields})


def install_error_handlers(app: FastAPI, formats: ErrorFormats) -> None:
    async def with_headers(request: Request, response: JSONResponse) -> JSONResponse:
        for name, value in (await formats.headers_for(request)).items():
            if name not in response.headers:  # a 429's own figures stay
                response.headers[name] = value
        return response

    async def on_chatwell_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ChatwellError)
        return await with_headers(request, formats.render(request, exc))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return await with_headers(request, formats.render(request, validation_error(exc)))

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
        return await with_headers(request, response)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        reason = unavailable_reason(exc)
        if reason is not None:  # a database fault that passes: 503 + Retry-After, not a 500
            log.warning(
                "%s on %s %s: %s", reason, request.method, request.url.path, type(exc).__name__
            )
            return formats.render(request, database_unavailable(reason))
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return formats.for_path(request.url.path)(
            ChatwellError("internal error; the server log has the details", code="internal_error"),
            500,
        )

    app.add_exception_handler(ChatwellError, on_chatwell_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # Database and connection errors are answered here (cleanly, like domain errors); anything
    # else unexpected reaches the last-resort handler below.
    app.add_exception_handler(SQLAlchemyError, on_unexpected)
    app.add_exception_handler(OSError, on_unexpected)
    app.add_exception_handler(Exception, on_unexpected)
