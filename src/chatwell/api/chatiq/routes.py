"""ChatIQ's chat API: ``POST /api/chat`` over the chat engine.

- Auth: ``Authorization: Bearer <key>``. A bot-scoped key must name its own bot in ``bot_slug``
  (another slug: 403 ``BOT_ACCESS_DENIED``, without saying whether that bot exists); a workspace
  key reaches every bot of its workspace. ``bot_slug`` also accepts the bot's id.
- ``stream`` defaults to true: SSE frames ``{"choices":[{"delta":{"content":...}}]}``, then
  ``{"conversationId": ..., "citations": [...]}`` (``citations`` is a chatwell addition; the frame is
  left out in private mode), then ``[DONE]``. An answer the output filter rewrote arrives as one
  more content chunk after a blank line (the format cannot retract text); a failure after the
  stream opened arrives as ``{"error": {...}}`` followed by ``[DONE]``.
- JSON: ``{"response", "conversationId"}`` (+ ``citations``); ``conversationId`` is omitted in
  private mode.
- Errors: ``{"error": {"code", "message", "details"}}`` with upper-case codes (``INVALID_API_KEY``,
  ``INVALID_REQUEST``, ``RATE_LIMIT_EXCEEDED``, ...); 400, 401, 403, 404, 429 (with Retry-After),
  and 500 ``INTERNAL_ERROR`` when the model fails in JSON mode, as ChatIQ answers it.
- Limits: the key's ``daily_message_limit`` per UTC day, plus the keyed per-key-and-bot limits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import PrincipalDep, RuntimeDep
from chatwell.api.dialect import caller_of
from chatwell.api.encoders import citation_json, failed_reply
from chatwell.api.errors import NATIVE_ERROR_SCHEMA, ErrorDoc
from chatwell.api.sse import frame, sse_response
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.errors import ChatwellError, Forbidden, NotFound, RateLimited
from chatwell.services import bots

router = APIRouter(tags=["chatiq"])
PREFIXES = ("/api/chat",)

CODES = {
    "invalid_api_key": "INVALID_API_KEY",
    "missing_api_key": "INVALID_API_KEY",
    "rate_limited": "RATE_LIMIT_EXCEEDED",
    "malformed_json": "INVALID_REQUEST",
    "invalid_request": "INVALID_REQUEST",
}


def chatiq_code(code: str) -> str:
    return CODES.get(code, code.upper())


def chatiq_error(error: ChatwellError, status: int) -> JSONResponse:
    details: dict[str, Any] = dict(error.details or {})
    if isinstance(error, RateLimited):
        details.setdefault("retry_after", error.retry_after)
    return JSONResponse(
        {"error": {"code": chatiq_code(error.code), "message": error.message, "details": details}},
        status_code=status,
    )


# The native shape, with ``details`` always present.
ERROR_DOC = ErrorDoc(
    "ChatIQError",
    {
        **NATIVE_ERROR_SCHEMA,
        "properties": {
            "error": {
                **NATIVE_ERROR_SCHEMA["properties"]["error"],
                "required": ["code", "message", "details"],
            }
        },
    },
)


class HistoryItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant", "system"]
    content: str = Field(..., max_length=8_000)


class ChatIQIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(..., min_length=1, max_length=8_000, description="The user's message.")
    bot_slug: str = Field(..., min_length=1, max_length=100, description="The bot's slug (or id).")
    stream: bool = Field(
        True, description="false: one JSON reply; true (default): server-sent events."
    )
    history: list[HistoryItem] = Field(default_factory=list, max_length=100)
    conversation_id: uuid.UUID | None = None
    private_mode: bool = Field(False, description="Store nothing; no conversationId is returned.")


@router.post("/api/chat", responses={200: {"content": {"text/event-stream": {}}}})
async def chat(
    data: ChatIQIn, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Any:
    try:
        bot = await bots.get_bot(runtime.db, principal=principal, ref=data.bot_slug)
    except NotFound:
        if principal.bot_id is None:
            raise
        # ChatIQ answers a bot key asking for any other bot (or none) with 403, not 404.
        raise Forbidden(
            f"this API key does not have access to the bot {data.bot_slug!r}",
            code="bot_access_denied",
        ) from None
    opened = await open_turn(
        runtime.chat,
        caller_of(request, principal),
        door="chatiq",
        bot=bot,
        question=data.message,
        history=[(h.role, h.content) for h in data.history],
        private=data.private_mode,
        conversation_id=data.conversation_id,
    )
    turn = opened.turn

    if not data.stream:
        answer = await turn.collect()
        # ChatIQ answers a failing model with 500.
        if (failed := failed_reply(answer.error, chatiq_error, default=500)) is not None:
            return failed
        body: dict[str, Any] = {"response": answer.text}
        if not data.private_mode:
            body["conversationId"] = _str(answer.conversation_id)
        body["citations"] = [citation_json(c) for c in answer.citations]
        return body

    async def frames() -> AsyncIterator[str]:
        citations: list[dict[str, Any]] = []
        async for event in turn.events():
            match event:
                case ev.Delta(text=text):
                    yield frame({"choices": [{"delta": {"content": text}}]})
                case ev.Replace(text=text):  # the format cannot retract text
                    yield frame({"choices": [{"delta": {"content": "\n\n" + text}}]})
                case ev.Citations():
                    citations = [citation_json(c) for c in event.citations]
                case ev.Error(code=code, message=message):
                    error = {"code": chatiq_code(code), "message": message, "details": {}}
                    yield frame({"error": error})
                    break
                case ev.Done() if not data.private_mode:
                    conversation = str(event.conversation_id)
                    yield frame({"conversationId": conversation, "citations": citations})
        yield "data: [DONE]\n\n"

    return sse_response(frames())


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None
