"""The lead-management chatbots API (seed 002): ``POST /api/v1/chatbots/{chatbotId}/chat``.

- Auth: ``Authorization: Bearer <key>``, a workspace key (or a key scoped to this very bot).
  ``chatbotId`` is the bot's id or slug; a bot the key cannot reach is 404 ``CHATBOT_NOT_FOUND``.
- Body: ``message``, ``conversationId`` (continue: one of ours, or the client's own id for a
  conversation — unknown ids start a conversation kept under that id, and the reply echoes it),
  ``stream`` (overrides the bot's
  ``model.stream_default``; absent: the bot's default is used), ``metadata`` (an object stored with
  the user's message and, for a new conversation, with the conversation).
- JSON: ``{"success": true, "data": {"response", "conversationId", "messageId"}}`` (+ ``citations``
  inside ``data``, a chatwell addition).
- Streaming (the document names SSE without a format; decided here): ``data: {"content": "..."}``
  per chunk, ``data: {"replace": "..."}`` when the output filter rewrote the answer, then
  ``data: {"done": true, "conversationId", "messageId", "citations"}``, then ``data: [DONE]``; a
  failure after the stream opened is ``data: {"success": false, "error", "code"}`` then ``[DONE]``.
- Errors: ``{"success": false, "error": "<message>", "code": "<CODE>"}``: 400 ``VALIDATION_ERROR``,
  401 ``INVALID_API_KEY``, 402 ``INSUFFICIENT_CREDITS`` (checked before answering), 403
  ``FORBIDDEN`` / ``ORIGIN_NOT_ALLOWED``, 404 ``CHATBOT_NOT_FOUND``, 429
  ``RATE_LIMIT_EXCEEDED`` with ``retryAfter`` (seconds) and Retry-After.
- ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (unix seconds) on every chat reply that got
  past authentication: per key and bot, the server's ``api_rate_limits`` and the bot's own
  ``rate_limits`` (the one with the fewest requests left is reported).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.dialect import (
    admit_keyed_chat,
    chat_service,
    client_ip,
    db_of,
    key_principal,
    limit_headers,
    turn_error,
)
from chatwell.api.errors import ErrorDoc
from chatwell.api.native.chat import citation_json, collect
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import ChatRequest
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.domain.models import ModelSettings
from chatwell.errors import ChatwellError, NotFound, RateLimited
from chatwell.services import bots, sessions
from chatwell.services.sessions import SessionRef
from chatwell.storage.tables import Bot

router = APIRouter(prefix="/api/v1/chatbots", tags=["chatbots_v1"])
PREFIXES = ("/api/v1/chatbots",)

CODES = {
    "invalid_api_key": "INVALID_API_KEY",
    "missing_api_key": "INVALID_API_KEY",
    "bot_not_found": "CHATBOT_NOT_FOUND",
    "rate_limited": "RATE_LIMIT_EXCEEDED",
    "insufficient_credits": "INSUFFICIENT_CREDITS",
    "service_unavailable": "INSUFFICIENT_CREDITS",
    "invalid_request": "VALIDATION_ERROR",
    "malformed_json": "VALIDATION_ERROR",
}
MESSAGES = {
    "INVALID_API_KEY": "Invalid or inactive API key",
    "CHATBOT_NOT_FOUND": "Chatbot not found or access denied",
    "INSUFFICIENT_CREDITS": "Insufficient credits to generate AI response. Please upgrade your plan.",
}
STATUS_OVERRIDES = {"INSUFFICIENT_CREDITS": 402}


def v1_code(code: str) -> str:
    return CODES.get(code, code.upper())


def chatbots_v1_error(error: ChatwellError, status: int) -> JSONResponse:
    code = v1_code(error.code)
    body: dict[str, Any] = {
        "success": False,
        "error": MESSAGES.get(code, error.message),
        "code": code,
    }
    if isinstance(error, RateLimited):
        body["retryAfter"] = error.retry_after
    if error.details:
        body["details"] = error.details
    return JSONResponse(body, status_code=STATUS_OVERRIDES.get(code, status))


ERROR_DOC = ErrorDoc(
    "ChatbotsError",
    {
        "type": "object",
        "required": ["success", "error", "code"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "retryAfter": {"type": "integer"},
            "details": {"type": "object"},
        },
    },
    extra_statuses=(402,),
)


class ChatbotChatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(..., min_length=1, max_length=8_000, description="The user's message.")
    conversationId: str | None = Field(
        None, max_length=100, description="Continue an existing conversation."
    )
    stream: bool | None = Field(
        None, description="Overrides the chatbot's default streaming setting."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, max_length=50, description="Stored with the message."
    )


async def _session(
    request: Request, bot: Bot, principal: Principal, given: str | None
) -> SessionRef:
    """The conversation a client's conversationId continues: one of ours this key owns, else the
    latest kept under that id in this key's namespace (none yet: a new one kept under it)."""
    db = db_of(request)
    if given is not None:
        with contextlib.suppress(NotFound):
            return await sessions.resolve_session(
                db, bot=bot, door="chatbots_v1", principal=principal, conversation_id=given
            )
    return await sessions.resolve_session(
        db, bot=bot, door="chatbots_v1", principal=principal, client_session_id=given
    )


@router.post("/{chatbot_id}/chat", responses={200: {"content": {"text/event-stream": {}}}})
async def chat(
    chatbot_id: str,
    data: ChatbotChatIn,
    request: Request,
    principal: Principal = Depends(key_principal),
) -> Any:
    bot = await bots.get_bot(db_of(request), principal=principal, ref=chatbot_id)
    decision = await admit_keyed_chat(request, bot, principal)
    headers = limit_headers(decision)
    service = chat_service(request)
    await service.ensure_credit(bot)
    stream = (
        data.stream
        if data.stream is not None
        else ModelSettings.model_validate(bot.model_settings or {}).stream_default
    )
    ref = await _session(request, bot, principal, data.conversationId)
    turn = await service.start(
        ChatRequest(
            bot=bot,
            question=data.message,
            channel="chatbots_v1",
            conversation_id=ref.conversation_id,
            session_id=ref.session_id,
            session_scope=ref.scope,
            api_key_id=principal.key_id,
            client_ip=client_ip(request),
            metadata=data.metadata,
        )
    )
    reply_id = data.conversationId
    if not stream:
        summary = await collect(turn)
        if (
            failed := turn_error(
                summary, chatbots_v1_error, headers=headers, statuses={"service_unavailable": 402}
            )
        ) is not None:
            return failed
        return JSONResponse(
            {
                "success": True,
                "data": {
                    "response": summary["answer"],
                    "conversationId": reply_id or summary["conversation_id"],
                    "messageId": summary["message_id"],
                    "citations": summary["citations"],
                },
            },
            headers=headers,
        )

    async def frames() -> AsyncIterator[str]:
        citations: list[dict[str, Any]] = []
        async for event in turn.events():
            if isinstance(event, ev.Delta):
                yield frame({"content": event.text})
            elif isinstance(event, ev.Replace):
                yield frame({"replace": event.text})
            elif isinstance(event, ev.Citations):
                citations = [citation_json(c) for c in event.citations]
            elif isinstance(event, ev.Error):
                code = v1_code(event.code)
                yield frame(
                    {"success": False, "error": MESSAGES.get(code, event.message), "code": code}
                )
                break
            elif isinstance(event, ev.Done):
                yield frame(
                    {
                        "done": True,
                        "conversationId": reply_id or _str(event.conversation_id),
                        "messageId": _str(event.message_id),
                        "citations": citations,
                    }
                )
        yield "data: [DONE]\n\n"

    response = sse_response(frames())
    response.headers.update(headers)
    return response


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None
