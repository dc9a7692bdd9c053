"""Domain errors: what went wrong, with a stable machine code. No HTTP status lives here.

Each API dialect maps these to its own error body and status in ``chatwell.api.errors``.

    ChatwellError
    ├── InvalidRequest          bad input the caller can fix (invalid_request, ...)
    ├── Unauthenticated         missing, unknown or revoked key (invalid_api_key)
    ├── Forbidden               known caller, not allowed (insufficient_scope, origin_not_allowed, bot_not_public)
    ├── NotFound                missing or foreign resource (bot_not_found, source_not_found, ...)
    ├── Conflict                uniqueness or state conflict (slug_taken, ...)
    ├── PayloadTooLarge         body or upload over its limit (payload_too_large)
    ├── RateLimited             a limit was hit (rate_limited, daily_limit_exceeded); carries retry_after
    └── ServiceUnavailable      a dependency or the credit balance is exhausted (service_unavailable)
"""

from __future__ import annotations

from typing import Any


class ChatwellError(Exception):
    """Base of every error chatwell reports to a caller."""

    default_code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class InvalidRequest(ChatwellError):
    default_code = "invalid_request"


class Unauthenticated(ChatwellError):
    default_code = "invalid_api_key"


class Forbidden(ChatwellError):
    default_code = "forbidden"


class NotFound(ChatwellError):
    default_code = "not_found"


class Conflict(ChatwellError):
    default_code = "conflict"


class PayloadTooLarge(ChatwellError):
    default_code = "payload_too_large"


class RateLimited(ChatwellError):
    default_code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        limit: int | None = None,
        reset_at: int | None = None,
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.limit = limit
        self.reset_at = reset_at


class ServiceUnavailable(ChatwellError):
    default_code = "service_unavailable"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after  # seconds, when the dependency is expected back soon


def database_unavailable(code: str) -> ServiceUnavailable:
    """The error a caller sees when the database is locked (SQLite) or unreachable (PostgreSQL)."""
    if code == "database_busy":
        return ServiceUnavailable(
            "The database is busy; try again in a moment.", code=code, retry_after=1
        )
    return ServiceUnavailable(
        "The database is unavailable; try again shortly.", code=code, retry_after=5
    )
