"""What the doors' encoders share: the JSON of a citation and a failed turn's error.

A turn that fails after it started ends its stream with an ``ev.Error``; :func:`turn_failure`
turns it into the domain error and status once, and each door renders that in its own shape
(:func:`failed_reply` for a one-piece reply, the door's error frame for a stream).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi.responses import JSONResponse

from chatwell.chat.citations import citation_json as citation_json  # the doors' one JSON
from chatwell.domain import events as ev
from chatwell.errors import ChatwellError, database_unavailable

# Statuses for a turn that failed after it started; anything else is the model's failure.
TURN_ERROR_STATUS = {
    "content_filtered": 400,
    "service_unavailable": 503,
    "database_busy": 503,
    "database_unavailable": 503,
}
UPSTREAM_FAILURE_STATUS = 502

ErrorFormat = Callable[[ChatwellError, int], JSONResponse]


def turn_failure(
    error: ev.Error,
    *,
    statuses: Mapping[str, int] | None = None,
    default: int = UPSTREAM_FAILURE_STATUS,
) -> tuple[ChatwellError, int]:
    """The domain error and HTTP status of a turn's error event (``statuses`` overrides)."""
    status = {**TURN_ERROR_STATUS, **(statuses or {})}.get(error.code, default)
    if error.code in ("database_busy", "database_unavailable"):  # with its Retry-After
        return database_unavailable(error.code), status
    return ChatwellError(error.message, code=error.code), status


def failed_reply(
    error: ev.Error | None,
    fmt: ErrorFormat,
    *,
    headers: Mapping[str, str] | None = None,
    statuses: Mapping[str, int] | None = None,
    default: int = UPSTREAM_FAILURE_STATUS,
) -> JSONResponse | None:
    """The door's error reply for a collected turn that ended in ``error``, or None."""
    if error is None:
        return None
    fault, status = turn_failure(error, statuses=statuses, default=default)
    response = fmt(fault, status)
    retry_after = getattr(fault, "retry_after", None)
    if error.code in ("database_busy", "database_unavailable") and retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    response.headers.update(headers or {})
    return response
