"""The developer API: chat with ``message``, usage and sessions reports.

- Key: ``api_key`` in the body (or query, for the GET reports) or ``Authorization: Bearer``; the
  key's allowed origins are enforced against ``Origin`` (403 ``origin_not_allowed``). The API has
  no bot field: a bot-scoped key answers for its bot; a workspace key must add ``bot_id`` (a
  chatwell addition; missing: 400 ``bot_required``).
- ``POST /api/v1/chat`` (shared with Chatbase, told apart by the body: ``message`` is this API):
  ``session_id`` keeps context across turns (the latest conversation opened under it continues; a
  new one is made, and a ``sess_...`` id issued, when absent). ``stream`` defaults to false.
  Stream: ``event: message`` / ``data: {"content"}`` per chunk, ``event: replace`` /
  ``data: {"content"}`` when the output filter rewrote the answer, ``event: error`` /
  ``data: {"error", "code"}`` on a failure after the stream opened, and finally ``event: end`` /
  ``data: {"session_id", "conversation_id", "message_id", "citations"}``. JSON (decided here, the
  platform documents only the stream): ``{"success": true, "response", "session_id",
  "conversation_id", "message_id", "citations"}``.
- ``GET /api/v1/usage?api_key=&start_date=&end_date=``: the key's requests, tokens and cost
  (``YYYY-MM-DD`` dates, UTC; end exclusive of the following day) and ``by_model`` rows.
- ``GET /api/v1/sessions?api_key=&include_all=&page=&per_page=``: the key's sessions, newest
  first, with their messages; ``include_all=true`` lists every session of the bots the key
  reaches, whichever door opened them. ``meta``: ``current_page``, ``per_page``, ``has_more``.
- Errors: ``{"success": false, "error": "<message>", "code": "<code>"}`` with the status.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import authenticate, bearer, runtime_of
from chatwell.api.dialect import caller_of, validate
from chatwell.api.encoders import citation_json, failed_reply
from chatwell.api.errors import ErrorDoc
from chatwell.api.params import date_param
from chatwell.api.sse import frame, sse_response
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.errors import ChatwellError, InvalidRequest, RateLimited
from chatwell.services import reports
from chatwell.services.conversations import iso

router = APIRouter(prefix="/api/v1", tags=["devapi"])
PREFIXES = ("/api/v1/usage", "/api/v1/sessions")


def devapi_error(error: ChatwellError, status: int) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "error": error.message, "code": error.code}
    if isinstance(error, RateLimited):
        body["retry_after"] = error.retry_after
    if error.details:
        body["details"] = error.details
    return JSONResponse(body, status_code=status)


ERROR_DOC = ErrorDoc(
    "DevApiError",
    {
        "type": "object",
        "required": ["success", "error", "code"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "retry_after": {"type": "integer"},
            "details": {"type": "object"},
        },
    },
)


class DevChatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(..., min_length=1, max_length=8_000)
    api_key: str | None = Field(
        None, max_length=512, description="The key, when not sent as a Bearer token."
    )
    session_id: str | None = Field(
        None, min_length=1, max_length=200, description="Keeps context across turns."
    )
    stream: bool = False
    bot_id: str | None = Field(
        None, max_length=100, description="chatwell addition: the bot, for workspace keys."
    )


async def _principal(request: Request, api_key: str | None) -> Principal:
    return await authenticate(request, api_key or bearer(request))


def _bot_ref(principal: Principal, bot_ref: str | None) -> str:
    ref = bot_ref or (str(principal.bot_id) if principal.bot_id else None)
    if ref is None:
        raise InvalidRequest(
            "a workspace key needs bot_id (or use a key scoped to one bot)", code="bot_required"
        )
    return ref


async def chat(payload: dict[str, Any], request: Request) -> Any:
    """``POST /api/v1/chat`` with a ``message`` (routed here by ``api.shared_chat``)."""
    api_key = payload.get("api_key") if isinstance(payload.get("api_key"), str) else None
    principal = await _principal(request, api_key)
    data = validate(payload, DevChatIn)
    session_id = data.session_id or "sess_" + secrets.token_urlsafe(9)
    opened = await open_turn(
        runtime_of(request).chat,
        caller_of(request, principal),
        door="devapi",
        bot=_bot_ref(principal, data.bot_id),
        question=data.message,
        client_session_id=session_id,
    )
    turn, headers = opened.turn, opened.limit_headers()

    if not data.stream:
        answer = await turn.collect()
        if (failed := failed_reply(answer.error, devapi_error, headers=headers)) is not None:
            return failed
        return JSONResponse(
            {
                "success": True,
                "response": answer.text,
                "session_id": session_id,
                "conversation_id": _str(answer.conversation_id),
                "message_id": _str(answer.message_id),
                "citations": [citation_json(c) for c in answer.citations],
            },
            headers=headers,
        )

    async def frames() -> AsyncIterator[str]:
        citations: list[dict[str, Any]] = []
        async for event in turn.events():
            match event:
                case ev.Delta(text=text):
                    yield frame({"content": text}, event="message")
                case ev.Replace(text=text):
                    yield frame({"content": text}, event="replace")
                case ev.Citations():
                    citations = [citation_json(c) for c in event.citations]
                case ev.Error(code=code, message=message):
                    yield frame({"error": message, "code": code}, event="error")
                    return
                case ev.Done():
                    end = {
                        "session_id": session_id,
                        "conversation_id": _str(event.conversation_id),
                        "message_id": _str(event.message_id),
                        "citations": citations,
                    }
                    yield frame(end, event="end")

    response = sse_response(frames())
    response.headers.update(headers)
    return response


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


@router.get("/usage")
async def usage(
    request: Request,
    api_key: str | None = Query(None, max_length=512),
    start_date: str | None = Query(None, max_length=10),
    end_date: str | None = Query(None, max_length=10),
) -> dict[str, Any]:
    principal = await _principal(request, api_key)
    start = date_param(start_date, "start_date")
    end = date_param(end_date, "end_date")
    if start and end and end < start:
        raise InvalidRequest("end_date is before start_date", code="invalid_date")
    report = await reports.usage(
        runtime_of(request).db,
        api_key_id=principal.key_id,
        start=start,
        end=end + timedelta(days=1) if end else None,
    )
    return {
        "success": True,
        "usage": {
            "total_requests": report.requests,
            "total_input_tokens": report.input_tokens,
            "total_output_tokens": report.output_tokens,
            "total_tokens": report.input_tokens + report.output_tokens,
            "total_cost": report.cost,
        },
        "by_model": [
            {
                "model": r.model,
                "requests": r.requests,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "total_tokens": r.input_tokens + r.output_tokens,
                "cost": round(r.cost, 6),
            }
            for r in report.by_model
        ],
    }


@router.get("/sessions")
async def sessions(
    request: Request,
    api_key: str | None = Query(None, max_length=512),
    include_all: bool = False,
    page: int = Query(1, ge=1, le=100_000),
    per_page: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    principal = await _principal(request, api_key)
    found, has_more = await reports.sessions(
        runtime_of(request).db,
        principal=principal,
        include_all=include_all,
        page=page,
        per_page=per_page,
    )
    return {
        "success": True,
        "sessions": [
            {
                "session_id": s.session_id,
                "conversation_id": str(s.conversation_id),
                "bot_id": str(s.bot_id),
                "channel": s.channel,
                "created_at": iso(s.created_at),
                "last_at": iso(s.last_at),
                "total_tokens": s.total_tokens,
                "preview": s.preview,
                "messages": [{**m, "created_at": iso(m["created_at"])} for m in s.messages],
            }
            for s in found
        ],
        "meta": {"current_page": page, "per_page": per_page, "has_more": has_more},
    }
