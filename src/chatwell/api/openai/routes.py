"""The OpenAI chat-completions wire format over the chat engine's event stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import DbDep, PrincipalDep
from chatwell.api.errors import ErrorDoc
from chatwell.api.native.chat import citation_json, collect
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import ChatRequest
from chatwell.domain import events as ev
from chatwell.domain.events import HistoryTurn
from chatwell.api.dialect import admit_keyed_chat, turn_error
from chatwell.errors import ChatwellError, InvalidRequest, NotFound
from chatwell.services import bots, sessions

router = APIRouter(prefix="/v1", tags=["openai"])
MAX_MESSAGES = 200

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error", 503: "server_error"}


def openai_error(error: ChatwellError, status: int) -> JSONResponse:
    from chatwell.api.errors import rate_limit_headers

    return JSONResponse({"error": {"message": error.message, "type": ERROR_TYPES.get(status, "server_error"),
                                   "param": None, "code": error.code}},
                        status_code=status, headers=rate_limit_headers(error))


ERROR_DOC = ErrorDoc("OpenAIError", {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]},
        "code": {"type": ["string", "null"]}}}}})


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI options are accepted and ignored
    model: str = Field(..., min_length=1, max_length=200)
    messages: list[MessageIn] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    conversation_id: uuid.UUID | None = Field(None, description="chatwell extension: continue a stored conversation.")


def _text(message: MessageIn) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(p.text or "" for p in message.content or [] if p.type == "text")


@router.get("/models")
async def list_models(principal: PrincipalDep, db: DbDep) -> dict[str, Any]:
    found, cursor = [], None
    while True:
        page = await bots.list_bots(db, principal=principal, limit=100, cursor=cursor)
        found.extend(page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    return {"object": "list", "data": [
        {"id": b.slug, "object": "model", "created": int(b.created_at.timestamp()), "owned_by": "chatwell",
         "name": b.name} for b in found]}


@router.post("/chat/completions")
async def chat_completions(data: CompletionIn, request: Request, principal: PrincipalDep, db: DbDep) -> Any:
    try:
        bot = await bots.get_bot(db, principal=principal, ref=data.model)
    except NotFound:
        raise NotFound(f"The model '{data.model}' does not exist or you do not have access to it.",
                       code="model_not_found") from None
    if data.messages[-1].role != "user" or not _text(data.messages[-1]).strip():
        raise InvalidRequest("the last message must be a non-empty user message", code="invalid_request")
    await admit_keyed_chat(request, bot, principal)
    history = [HistoryTurn("assistant" if m.role == "assistant" else "user", _text(m))
               for m in data.messages[:-1] if m.role in ("user", "assistant") and _text(m)]
    ref = await sessions.resolve_session(db, bot=bot, door="openai", principal=principal,
                                         conversation_id=data.conversation_id)
    turn = await request.app.state.chat.start(ChatRequest(
        bot=bot, question=_text(data.messages[-1]), channel="openai", conversation_id=ref.conversation_id,
        session_id=ref.session_id, session_scope=ref.scope, history=history, api_key_id=principal.key_id, temperature=data.temperature,
        client_ip=request.client.host if request.client else None))
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not data.stream:
        summary = await collect(turn)
        if (failed := turn_error(summary, openai_error, statuses={"content_filtered": 502})) is not None:
            return failed
        usage = summary["usage"] or {"prompt_tokens": 0, "completion_tokens": 0}
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": bot.slug,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": summary["answer"], "refusal": None},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                      "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "citations": summary["citations"], "conversation_id": summary["conversation_id"],
        }
    include_usage = bool(data.stream_options and data.stream_options.include_usage)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": bot.slug,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return frame(body)

    async def frames() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        citations: list[dict[str, Any]] = []
        usage: ev.Usage | None = None
        async for event in turn.events():
            if isinstance(event, ev.Delta):
                yield chunk({"content": event.text})
            elif isinstance(event, ev.Replace):
                # OpenAI's format can't retract text; send the replacement as content after a break.
                yield chunk({"content": "\n\n" + event.text})
            elif isinstance(event, ev.Citations):
                citations = [citation_json(c) for c in event.citations]
            elif isinstance(event, ev.Usage):
                usage = event
            elif isinstance(event, ev.Error):
                yield frame({"error": {"message": event.message, "type": "server_error", "param": None,
                                       "code": event.code}})
                yield "data: [DONE]\n\n"
                return
            elif isinstance(event, ev.Done):
                yield chunk({}, "stop", citations=citations,
                            conversation_id=str(event.conversation_id) if event.conversation_id else None)
        if include_usage and usage is not None:
            yield frame({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                         "model": bot.slug, "choices": [],
                         "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                                   "total_tokens": usage.prompt_tokens + usage.completion_tokens}})
        yield "data: [DONE]\n\n"

    return sse_response(frames())

