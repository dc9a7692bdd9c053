"""The lead-management platform's chatbots API: ``POST /api/v1/chatbots/{chatbotId}/chat``.

- Auth: ``Authorization: Bearer <key>``, a workspace key (or a key scoped to this very bot).
  ``chatbotId`` is the bot's id or slug; a bot the key cannot reach is 404 ``CHATBOT_NOT_FOUND``.
- Body: ``message``, ``conversationId`` (continue: one of ours, or the client's own id for a
  conversation — unknown ids start a conversation kept under that id, and the reply echoes it),
  ``stream`` (overrides the bot's
  ``model.stream_default``; absent: the bot's default is used), ``metadata`` (an object stored with
  the user's message and, for a new conversation, with the conversation).
- JSON: ``{"success": true, "data": {"response", "conversationId", "messageId"}}`` (+ ``citations``
  inside ``data``, a chatwell addition).
- Streaming (the platform names SSE without a format; decided here): ``data: {"content": "..."}``
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

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import PrincipalDep, RuntimeDep
from chatwell.api.dialect import caller_of
from chatwell.api.encoders import citation_json, failed_reply
from chatwell.api.errors import ErrorDoc
from chatwell.api.sse import frame, sse_response
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.models import ModelSettings
from chatwell.errors import ChatwellError, RateLimited

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


@router.post("/{chatbot_id}/chat", responses={200: {"content": {"text/event-stream": {}}}})
async def chat(
    chatbot_id: str,
    data: ChatbotChatIn,
    request: Request,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> Any:
    # conversationId: one of ours this key owns, else the client's own id for a conversation
    # (the latest kept under it in this key's namespace; none yet: a new one kept under it).
    opened = await open_turn(
        runtime.chat,
        caller_of(request, principal),
        door="chatbots_v1",
        bot=chatbot_id,
        question=data.message,
        conversation_id=data.conversationId,
        id_or_session=True,
        require_credit=True,
        metadata=data.metadata,
    )
    turn, headers = opened.turn, opened.limit_headers()
    stream = (
        data.stream
        if data.stream is not None
        else ModelSettings.model_validate(opened.bot.model_settings or {}).stream_default
    )
    reply_id = data.conversationId
    if not stream:
        answer = await turn.collect()
        if (
            failed := failed_reply(
                answer.error,
                chatbots_v1_error,
                headers=headers,
                statuses={"service_unavailable": 402},
            )
        ) is not None:
            return failed
        return JSONResponse(
            {
                "success": True,
                "data": {
                    "response": answer.text,
                    "conversationId": reply_id or _str(answer.conversation_id),
                    "messageId": _str(answer.message_id),
                    "citations": [citation_json(c) for c in answer.citations],
                },
            },
            headers=headers,
        )

    async def frames() -> AsyncIterator[str]:
        citations: list[dict[str, Any]] = []
        async for event in turn.events():
            match event:
                case ev.Delta(text=text):
                    yield frame({"content": text})
                case ev.Replace(text=text):
                    yield frame({"replace": text})
                case ev.Citations():
                    citations = [citation_json(c) for c in event.citations]
                case ev.Error():
                    code = v1_code(event.code)
                    message = MESSAGES.get(code, event.message)
                    yield frame({"success": False, "error": message, "code": code})
                    break
                case ev.Done():
                    done = {
                        "done": True,
                        "conversationId": reply_id or _str(event.conversation_id),
                        "messageId": _str(event.message_id),
                        "citations": citations,
                    }
                    yield frame(done)
        yield "data: [DONE]\n\n"

    response = sse_response(frames())
    response.headers.update(headers)
    return response


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None
