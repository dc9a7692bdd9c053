"""Chatbase's API (chat and chatbot management), mapped onto bots and sources.

- Auth: ``Authorization: Bearer <key>``, a workspace key (a bot-scoped key reaches its own bot
  for chat and reading; managing chatbots needs a workspace key: 403 ``insufficient_scope``).
- ``POST /api/v1/chat`` (shared with the developer API; ``messages`` is this one): the last
  ``user`` message is the question, the earlier ones its history. ``chatbotId`` (or ``chatId``, as
  Chatbase's streaming example spells it) is the bot's id or slug. ``conversationId`` is the
  client's own id of the conversation: turns with the same one are stored together and see each
  other. ``temperature`` and ``model`` override the bot's for this call (same provider). Reply
  ``{"text"}`` (+ ``conversationId`` when given); ``stream: true`` sends the answer as a plain-text
  body, chunk by chunk (an answer the output filter rewrote continues with the replacement after
  a blank line; a failure after the stream opened ends the body early).
- ``create-chatbot`` makes a bot (and a text source from ``sourceText``); ``update-chatbot-data``
  renames it and replaces its text sources with ``sourceText`` (the new one is ingested in the
  background); ``update-chatbot-settings`` maps ``visibility`` to ``public``,
  ``onlyAllowOnAddedDomains`` + ``domains`` to ``allowed_origins``, ``ipLimit`` per
  ``ipLimitTimeframe`` seconds to the bot's per-minute (≤ 60 s), per-hour (≤ 3600 s) or per-day
  limit, ``initialMessages`` to the welcome message (joined by blank lines), ``suggestedMessages``
  to suggested questions, ``temp`` to temperature.
- Errors: ``{"message": "...", "code": "<code>"}`` with the status (Chatbase's own shape carries
  ``message``; ``code`` is chatwell's stable code).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatwell.api.deps import (
    PrincipalDep,
    WorkspacePrincipalDep,
    authenticate,
    bearer,
    runtime_of,
)
from chatwell.api.dialect import (
    caller_of,
    validate,
    wake_ingestion,
)
from chatwell.api.encoders import failed_reply
from chatwell.api.errors import ErrorDoc
from chatwell.api.params import date_param
from chatwell.api.sse import SSE_HEADERS
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.domain.bots import BotCreate, BotUpdate
from chatwell.domain.models import ModelSettings, RateLimits
from chatwell.domain.sources import TextSourceIn
from chatwell.errors import ChatwellError, InvalidRequest
from chatwell.services import bots, conversations, leads, sources
from chatwell.services.conversations import iso
from chatwell.storage.tables import Bot

router = APIRouter(prefix="/api/v1", tags=["chatbase"])
PREFIXES = (
    "/api/v1/create-chatbot",
    "/api/v1/get-chatbots",
    "/api/v1/update-chatbot-data",
    "/api/v1/update-chatbot-settings",
    "/api/v1/delete-chatbot",
    "/api/v1/get-conversations",
    "/api/v1/get-leads",
)
MAX_MESSAGES = 200


def chatbase_error(error: ChatwellError, status: int) -> JSONResponse:
    body: dict[str, Any] = {"message": error.message, "code": error.code}
    if error.details:
        body["details"] = error.details
    return JSONResponse(body, status_code=status)


ERROR_DOC = ErrorDoc(
    "ChatbaseError",
    {
        "type": "object",
        "required": ["message", "code"],
        "properties": {
            "message": {"type": "string"},
            "code": {"type": "string"},
            "details": {"type": "object"},
        },
    },
)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant", "system"]
    content: str = Field(..., max_length=8_000)


class ChatbaseChatIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    messages: list[ChatMessage] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    chatbotId: str | None = Field(None, min_length=1, max_length=100)
    chatId: str | None = Field(
        None, min_length=1, max_length=100, description="Alias of chatbotId."
    )
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    model: str | None = Field(None, min_length=1, max_length=200)
    conversationId: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _bot(self) -> ChatbaseChatIn:
        if not (self.chatbotId or self.chatId):
            raise ValueError("chatbotId is required")
        if self.messages[-1].role != "user" or not self.messages[-1].content.strip():
            raise ValueError("the last message must be a non-empty user message")
        return self


async def chat(payload: dict[str, Any], request: Request) -> Any:
    """``POST /api/v1/chat`` with ``messages`` (routed here by ``api.shared_chat``)."""
    principal = await authenticate(request, bearer(request))
    data = validate(payload, ChatbaseChatIn)
    opened = await open_turn(
        runtime_of(request).chat,
        caller_of(request, principal),
        door="chatbase",
        bot=data.chatbotId or data.chatId or "",
        question=data.messages[-1].content,
        history=[(m.role, m.content) for m in data.messages[:-1]],
        client_session_id=data.conversationId,
        temperature=data.temperature,
        model=data.model,
    )
    turn, headers = opened.turn, opened.limit_headers()

    if not data.stream:
        answer = await turn.collect()
        if (failed := failed_reply(answer.error, chatbase_error, headers=headers)) is not None:
            return failed
        body: dict[str, Any] = {"text": answer.text}
        if data.conversationId:
            body["conversationId"] = data.conversationId
        return JSONResponse(body, headers=headers)

    async def chunks() -> AsyncIterator[str]:
        async for event in turn.events():
            match event:
                case ev.Delta(text=text):
                    yield text
                case ev.Replace(text=text):  # plain text cannot retract what was sent
                    yield "\n\n" + text
                case ev.Error():
                    return

    return StreamingResponse(
        chunks(), media_type="text/plain; charset=utf-8", headers={**SSE_HEADERS, **headers}
    )


# ----------------------------------------------------------------------------- management


def chatbot_out(bot: Bot) -> dict[str, Any]:
    model = ModelSettings.model_validate(bot.model_settings or {})
    limits = RateLimits.model_validate(bot.rate_limits or {})
    ip_limit, timeframe = next(
        (
            (n, s)
            for n, s in ((limits.per_minute, 60), (limits.per_hour, 3600), (limits.per_day, 86400))
            if n
        ),
        (None, None),
    )
    return {
        "id": str(bot.id),
        "name": bot.name,
        "slug": bot.slug,
        "instructions": bot.instructions,
        "initial_messages": [bot.welcome_message] if bot.welcome_message else [],
        "suggested_messages": list(bot.suggested_questions or []),
        "visibility": "public" if bot.public else "private",
        "only_allow_on_added_domains": bool(bot.allowed_origins),
        "domains": list(bot.allowed_origins or []),
        "ip_limit": ip_limit,
        "ip_limit_timeframe": timeframe,
        "ip_limit_message": limits.message,
        "model": model.model,
        "temp": model.temperature,
        "created_at": iso(bot.created_at),
    }


class CreateChatbotIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chatbotName: str = Field(..., min_length=1, max_length=200)
    sourceText: str | None = Field(None, max_length=500_000)


async def _add_text(
    request: Request, principal: Principal, bot: Bot, title: str, text: str
) -> uuid.UUID:
    source = await sources.add_text_source(
        runtime_of(request).db,
        principal=principal,
        bot_ref=str(bot.id),
        data=TextSourceIn(type="text", title=title, text=text),
    )
    wake_ingestion(request)
    return source.id


@router.post("/create-chatbot")
async def create_chatbot(
    data: CreateChatbotIn, request: Request, principal: WorkspacePrincipalDep
) -> dict[str, Any]:
    bot = await bots.create_bot(
        runtime_of(request).db,
        workspace_id=principal.workspace_id,
        data=BotCreate(name=data.chatbotName),
    )
    if data.sourceText and data.sourceText.strip():
        await _add_text(request, principal, bot, data.chatbotName, data.sourceText)
    return {"chatbotId": str(bot.id)}


@router.get("/get-chatbots")
async def get_chatbots(request: Request, principal: PrincipalDep) -> dict[str, Any]:
    found = await bots.all_bots(runtime_of(request).db, principal=principal)
    return {"chatbots": [chatbot_out(b) for b in found]}


class UpdateDataIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chatbotId: str = Field(..., min_length=1, max_length=100)
    chatbotName: str | None = Field(None, min_length=1, max_length=200)
    sourceText: str = Field(..., min_length=1, max_length=500_000)


@router.post("/update-chatbot-data")
async def update_chatbot_data(
    data: UpdateDataIn, request: Request, principal: WorkspacePrincipalDep
) -> dict[str, Any]:
    db = runtime_of(request).db
    bot = await bots.get_bot(db, principal=principal, ref=data.chatbotId)
    if data.chatbotName:
        bot = await bots.update_bot(
            db, principal=principal, ref=str(bot.id), data=BotUpdate(name=data.chatbotName)
        )
    await sources.replace_text_sources(
        db,
        principal=principal,
        bot_ref=str(bot.id),
        data=TextSourceIn(type="text", title=data.chatbotName or bot.name, text=data.sourceText),
    )
    wake_ingestion(request)
    return {"chatbotId": str(bot.id)}


class UpdateSettingsIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chatbotId: str = Field(..., min_length=1, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=200)
    instructions: str | None = Field(None, max_length=20_000)
    initialMessages: list[str] | None = Field(None, max_length=20)
    suggestedMessages: list[str] | None = Field(None, max_length=20)
    visibility: Literal["private", "public"] | None = None
    onlyAllowOnAddedDomains: bool | None = None
    domains: list[str] | None = Field(None, max_length=50)
    ipLimit: int | None = Field(None, ge=1, le=1_000_000)
    ipLimitTimeframe: int | None = Field(None, ge=1, le=86_400 * 31)
    ipLimitMessage: str | None = Field(None, max_length=500)
    model: str | None = Field(None, min_length=1, max_length=200)
    temp: float | None = Field(None, ge=0, le=2)


def _settings_update(data: UpdateSettingsIn, bot: Bot) -> BotUpdate:
    fields: dict[str, Any] = {}
    if data.name is not None:
        fields["name"] = data.name
    if data.instructions is not None:
        fields["instructions"] = data.instructions
    if data.initialMessages is not None:
        fields["welcome_message"] = (
            "\n\n".join(m for m in data.initialMessages if m.strip()) or None
        )
    if data.suggestedMessages is not None:
        fields["suggested_questions"] = [m for m in data.suggestedMessages if m.strip()]
    if data.visibility is not None:
        fields["public"] = data.visibility == "public"
    if data.onlyAllowOnAddedDomains is not None or data.domains is not None:
        only = (
            data.onlyAllowOnAddedDomains
            if data.onlyAllowOnAddedDomains is not None
            else bool(bot.allowed_origins)
        )
        fields["allowed_origins"] = list(data.domains or bot.allowed_origins or []) if only else []
    if data.ipLimit is not None or data.ipLimitMessage is not None:
        limits: dict[str, Any] = {}
        if data.ipLimit is not None:
            timeframe = data.ipLimitTimeframe or 3600
            window = (
                "per_minute" if timeframe <= 60 else "per_hour" if timeframe <= 3600 else "per_day"
            )
            limits = {"per_minute": None, "per_hour": None, "per_day": None, window: data.ipLimit}
        if data.ipLimitMessage is not None:
            limits["message"] = data.ipLimitMessage
        fields["rate_limits"] = limits
    model: dict[str, Any] = {}
    if data.model is not None:
        model["model"] = data.model
    if data.temp is not None:
        model["temperature"] = data.temp
    if model:
        fields["model"] = model
    try:
        return BotUpdate.model_validate(fields)
    except ValueError as exc:
        raise InvalidRequest(f"invalid settings: {exc}".splitlines()[0]) from None


@router.post("/update-chatbot-settings")
async def update_chatbot_settings(
    data: UpdateSettingsIn, request: Request, principal: WorkspacePrincipalDep
) -> dict[str, Any]:
    db = runtime_of(request).db
    bot = await bots.get_bot(db, principal=principal, ref=data.chatbotId)
    await bots.update_bot(
        db, principal=principal, ref=str(bot.id), data=_settings_update(data, bot)
    )
    return {"message": "success"}


@router.delete("/delete-chatbot")
async def delete_chatbot(
    request: Request,
    principal: WorkspacePrincipalDep,
    chatbotId: str = Query(..., min_length=1, max_length=100),
) -> dict[str, Any]:
    await bots.delete_bot(runtime_of(request).db, principal=principal, ref=chatbotId)
    return {"message": "success"}


def _range(start_date: str | None, end_date: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = (
        date_param(start_date, "startDate", times=True),
        date_param(end_date, "endDate", times=True),
    )
    if end is not None and end_date is not None and "T" not in end_date:
        end += timedelta(days=1)  # a plain end date includes that whole day
    return start, end


@router.get("/get-conversations")
async def get_conversations(
    request: Request,
    principal: PrincipalDep,
    chatbotId: str = Query(..., min_length=1, max_length=100),
    startDate: str | None = Query(None, max_length=40),
    endDate: str | None = Query(None, max_length=40),
    page: int = Query(1, ge=1, le=100_000),
    size: int = Query(10, ge=1, le=100),
) -> dict[str, Any]:
    bot = await bots.get_bot(runtime_of(request).db, principal=principal, ref=chatbotId)
    start, end = _range(startDate, endDate)
    found = await conversations.conversations_between(
        runtime_of(request).db,
        principal=principal,
        bot_id=bot.id,
        start=start,
        end=end,
        page=page,
        size=size,
    )
    return {
        "data": [
            {
                "id": str(c.id),
                "chatbot_id": str(c.bot_id),
                "created_at": iso(c.created_at),
                "updated_at": iso(c.updated_at),
                "source": c.channel,
                "status": c.status,
                "conversation_id": c.session_id,
                "metadata": c.metadata_ or {},
                "messages": [
                    {
                        "id": str(m.id),
                        "role": m.role,
                        "content": m.content,
                        "created_at": iso(m.created_at),
                    }
                    for m in messages
                ],
            }
            for c, messages in found
        ]
    }


@router.get("/get-leads")
async def get_leads(
    request: Request,
    principal: PrincipalDep,
    chatbotId: str = Query(..., min_length=1, max_length=100),
    startDate: str | None = Query(None, max_length=40),
    endDate: str | None = Query(None, max_length=40),
    page: int = Query(1, ge=1, le=100_000),
    size: int = Query(10, ge=1, le=100),
) -> dict[str, Any]:
    bot = await bots.get_bot(runtime_of(request).db, principal=principal, ref=chatbotId)
    start, end = _range(startDate, endDate)
    found = await leads.list_leads(
        runtime_of(request).db,
        principal=principal,
        bot_id=bot.id,
        start=start,
        end=end,
        page=page,
        size=size,
    )
    return {
        "collectedCustomers": [
            {
                "id": str(lead.id),
                "chatbot_id": str(lead.bot_id),
                "name": lead.name,
                "email": lead.email,
                "phone": lead.phone,
                "created_at": iso(lead.created_at),
                "conversation_id": str(lead.conversation_id) if lead.conversation_id else None,
                **({"fields": lead.fields} if lead.fields else {}),
            }
            for lead in found
        ]
    }
