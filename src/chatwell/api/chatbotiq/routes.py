"""ChatbotIQ's keyless public chat API, which chatwell's widget also uses.

- ``POST /v1/public/chat/stream``: no key; the bot (``bot_id``: its id, or its slug) must exist
  (404 ``bot_not_found``), be public and active (403 ``bot_not_public`` / ``bot_inactive``), and a
  browser's Origin must be one of the bot's allowed domains when it names any (403
  ``origin_not_allowed``). Missing or invalid fields: 400. Limits per client IP and bot (the
  server's 15/minute and 120/hour, and the bot's own, the strictest winning): 429 with
  Retry-After. reCAPTCHA: when the server has a secret and the bot turns it on, a missing token
  is a 400 ``recaptcha_required`` and a refused one a 403 ``recaptcha_failed``.
- The stream: ``data:`` lines only, each a JSON object with a ``type``: ``status`` (retrieving,
  generating), ``content``, ``replace``, ``notice`` (``code``, ``level``, ``message_key`` = the code,
  plus ``message``), ``done`` (``conversation_id``, ``assistant_message_id``, ``citations`` only when
  the bot cites), ``error`` (``error`` = code, ``message``). An empty workspace is a mid-stream
  ``service_unavailable`` error, as ChatbotIQ documents it.
- ``GET /v1/public/bots/{bot_id}/config``: every field ChatbotIQ documents. ``handoff_available``: the
  bot hands off and an agent of its workspace is online; ``mcp_url`` is the server's MCP endpoint
  (``/mcp``, a key of the bot's workspace or the bot opens it) unless the server turns MCP off.
- Widget additions (not in ChatbotIQ's API, same conventions): ``POST /v1/public/messages/{id}/feedback``
  ``{session_id, rating: "positive"|"negative"|null}``; ``POST /v1/public/conversations/{id}/handoff``
  ``{session_id}`` → ``{conversation_status, handoff_available, message}`` (the offline message when
  nobody is online). Agent messages arrive through the history endpoint with role ``agent``.
- ``GET /v1/public/conversations/{id}/messages?session_id=&after=``: only for the session that
  opened the conversation (anyone else gets 404, which does not say whether it exists); 30/minute
  per client IP.
- ``GET /v1/public/conversations/{id}/events?session_id=&after=`` (chatwell addition): the same
  history pushed as it is written, whichever API process stored it (``services.conversation_bus``):
  ``event: message`` frames (each a message of the history endpoint, first those after ``after``),
  ``event: status`` ``{"conversation_status"}`` at the start and on every change, ``event: typing``
  ``{"who": "agent"}`` while an agent types, and a ``: keep-alive`` comment every 15 s.
  ``POST /v1/public/conversations/{id}/typing`` ``{session_id}`` → 204: the visitor is typing (shown
  on the agents' open pages while a person holds the chat). Same owner check, origin check and per-IP limit as the
  history endpoint; at most ``public_event_streams_per_conversation`` open at once (429
  ``too_many_streams``), each closed after ``public_event_stream_seconds`` (the client reconnects
  with ``after``).
- Errors before the stream: ``{"error": "<code>", "message": "...", "detail": "..."}``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatwell.api.deps import RuntimeDep, client_ip, runtime_of
from chatwell.api.dialect import caller_of, check_bot_origin
from chatwell.api.errors import ErrorDoc
from chatwell.api.mcp import PATH as MCP_PATH
from chatwell.api.native.chat import check_image
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import Turn
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.models import (
    AnswerSettings,
    ContactFormSettings,
    HandoffSettings,
    WidgetSettings,
)
from chatwell.errors import ChatwellError, Forbidden, InvalidRequest
from chatwell.services import bots, sessions, visitor_history
from chatwell.services import handoff as handoff_service
from chatwell.services.conversations import iso
from chatwell.services.visitor_history import HistoryUpdate
from chatwell.storage.tables import Bot, Conversation, Message

router = APIRouter(prefix="/v1/public", tags=["chatbotiq"])
PREFIXES = ("/v1/public",)


def chatbotiq_error(error: ChatwellError, status: int) -> JSONResponse:
    body: dict[str, Any] = {"error": error.code, "message": error.message, "detail": error.message}
    if error.details:
        body["details"] = error.details
    return JSONResponse(body, status_code=status)


ERROR_DOC = ErrorDoc(
    "ChatbotIQError",
    {
        "type": "object",
        "required": ["error", "message", "detail"],
        "properties": {
            "error": {"type": "string", "description": "The error code."},
            "message": {"type": "string"},
            "detail": {"type": "string"},
            "details": {"type": "object"},
        },
    },
)


class ChatStreamIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bot_id: str = Field(..., min_length=1, max_length=100, description="The bot's id (or slug).")
    message: str = Field(..., min_length=1, max_length=8_000)
    session_id: str = Field(
        ..., min_length=1, max_length=200, description="An anonymous session id."
    )
    conversation_id: uuid.UUID | None = None
    recaptcha_token: str | None = Field(None, max_length=10_000)
    image_data: str | None = Field(None, max_length=15_000_000)
    image_media_type: Literal["image/jpeg", "image/png", "image/webp"] | None = None
    page_url: str | None = Field(
        None,
        max_length=2000,
        pattern=r"^https?://\S+$",
        description="chatwell addition: the page the visitor chats from (shown to agents).",
    )

    @model_validator(mode="after")
    def _image(self) -> ChatStreamIn:
        check_image(self.image_data, self.image_media_type)
        return self


def citation_out(c: dict[str, Any] | ev.Citation) -> dict[str, Any]:
    """ChatbotIQ's citation object, from an event or a stored message's citation."""
    if isinstance(c, ev.Citation):
        c = {
            "title": c.title,
            "url": c.url,
            "source_id": str(c.source_id),
            "score": c.score,
            "index": c.index,
        }
    out = {
        "page_title": c.get("title") or "",
        "source_url": c.get("url") or "",
        "source_id": c.get("source_id") or "",
        "score": c.get("score") or 0.0,
        "from_web_search": False,
    }
    if c.get("index"):
        out["index"] = c["index"]  # chatwell addition: the [n] marker in the answer that cites it
    return out


async def _check_recaptcha(request: Request, bot: Bot, token: str | None) -> None:
    verifier = runtime_of(request).recaptcha
    if (
        verifier is None
        or not WidgetSettings.model_validate(bot.widget_settings or {}).recaptcha_enabled
    ):
        return
    if not token:
        raise InvalidRequest("a reCAPTCHA token is required", code="recaptcha_required")
    if not await verifier.verify(token, client_ip(request)):
        raise Forbidden("reCAPTCHA verification failed", code="recaptcha_failed")


@router.post("/chat/stream", responses={200: {"content": {"text/event-stream": {}}}})
async def chat_stream(data: ChatStreamIn, request: Request, runtime: RuntimeDep) -> Any:
    async def recaptcha(bot: Bot) -> None:
        await _check_recaptcha(request, bot, data.recaptcha_token)

    opened = await open_turn(
        runtime.chat,
        caller_of(request, None, recaptcha),
        door=sessions.WIDGET_DOOR,
        bot=data.bot_id,
        question=data.message,
        client_session_id=data.session_id,
        conversation_id=data.conversation_id,
        continue_latest=False,  # the widget's "new chat" keeps its session id
        metadata={"page_url": data.page_url} if data.page_url else {},
        image=check_image(data.image_data, data.image_media_type),
    )
    cites = AnswerSettings.model_validate(opened.bot.answer_settings or {}).citations_enabled
    return sse_response(_chat_frames(opened.turn, cites=cites))


async def _chat_frames(turn: Turn, *, cites: bool) -> AsyncIterator[str]:
    citations: list[dict[str, Any]] = []
    async for event in turn.events():
        match event:
            case ev.Status(stage=stage):
                yield frame({"type": "status", "stage": stage})
            case ev.Delta(text=text):
                yield frame({"type": "content", "content": text})
            case ev.Replace(text=text):
                yield frame({"type": "replace", "content": text})
            case ev.Notice(code=code, level=level, message=message):
                yield frame(
                    {
                        "type": "notice",
                        "code": code,
                        "level": level,
                        "message_key": code,
                        "message": message,
                    }
                )
            case ev.Citations():
                citations = [citation_out(c) for c in event.citations]
            case ev.Error(code=code, message=message):
                yield frame({"type": "error", "error": code, "message": message})
            case ev.Done():
                done: dict[str, Any] = {
                    "type": "done",
                    "conversation_id": _str(event.conversation_id),
                    "assistant_message_id": _str(event.message_id),
                }
                if cites:
                    done["citations"] = citations
                yield frame(done)


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


@router.get("/bots/{bot_id}/config")
async def bot_config(bot_id: str, request: Request) -> dict[str, Any]:
    bot = await bots.get_public_bot(runtime_of(request).db, ref=bot_id)
    check_bot_origin(request, bot)
    settings = runtime_of(request).settings
    answer = AnswerSettings.model_validate(bot.answer_settings or {})
    widget = WidgetSettings.model_validate(bot.widget_settings or {})
    handoff = HandoffSettings.model_validate(bot.handoff_settings or {})
    form = ContactFormSettings.model_validate(bot.contact_form or {})
    recaptcha_on = widget.recaptcha_enabled and runtime_of(request).recaptcha is not None
    return {
        "bot_id": str(bot.id),
        "bot_name": bot.name,
        "widget_settings": widget.model_dump(mode="json"),
        "suggested_questions": list(bot.suggested_questions or []),
        "show_suggested_questions": answer.show_suggested_questions,
        "suggested_questions_count": answer.suggested_questions_count,
        "welcome_message": bot.welcome_message,
        "warning_message": answer.warning_message,
        "recaptcha_site_key": settings.recaptcha_site_key if recaptcha_on else None,
        "include_links": answer.include_links,
        "language": answer.language,
        "mcp_url": f"{str(request.base_url).rstrip('/')}{MCP_PATH}"
        if settings.mcp_enabled
        else None,
        "handoff_enabled": handoff.enabled,
        "handoff_trigger": handoff.trigger,
        "handoff_offline_message": handoff.offline_message,
        "handoff_agent_label": handoff.agent_label,
        "handoff_available": handoff.enabled
        and await handoff_service.agents_online(runtime_of(request).db, bot.workspace_id),
        "allow_user_images": answer.allow_user_images,
        "contact_form_enabled": form.enabled,
        "contact_form_trigger": form.trigger,
        "contact_form_fields": [f.model_dump(mode="json") for f in form.fields]
        if form.fields
        else None,
        "contact_form_success_message": form.success_message,
        "contact_form_button_display": form.button_display,
        "contact_form_after_messages": form.after_messages,  # chatwell addition, for the "after_messages" trigger
    }


def message_out(m: Message) -> dict[str, Any]:
    """A stored message as the history endpoint and the event stream show it."""
    return {
        "id": str(m.id),
        "role": m.role,
        "content": m.content,
        "citations": [citation_out(c) for c in m.citations] if m.citations else None,
        "feedback": m.feedback,
        "image_preview": None,
        "created_at": iso(m.created_at),
    }


async def _visitor_history(
    request: Request, conversation_id: str, session_id: str, after: str | None
) -> tuple[Conversation, list[Message]]:
    """The visitor's conversation (404 for any other session) and its messages after ``after``,
    counted against the history limit, from one of the bot's domains."""
    runtime = runtime_of(request)
    await runtime.limits.history(client_ip(request))
    conversation, messages, bot = await visitor_history.visitor_history(
        runtime.db, conversation_id=conversation_id, session_id=session_id, after=after
    )
    if bot is not None:
        check_bot_origin(request, bot)
    return conversation, messages


@router.get("/conversations/{conversation_id}/messages")
async def conversation_messages(
    conversation_id: str,
    request: Request,
    session_id: str = Query(..., min_length=1, max_length=200),
    after: str | None = Query(None, max_length=100),
) -> dict[str, Any]:
    conversation, messages = await _visitor_history(request, conversation_id, session_id, after)
    return {
        "messages": [message_out(m) for m in messages],
        "conversation_status": conversation.status,
    }


@router.get(
    "/conversations/{conversation_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def conversation_events(
    conversation_id: str,
    request: Request,
    runtime: RuntimeDep,
    session_id: str = Query(..., min_length=1, max_length=200),
    after: str | None = Query(None, max_length=100),
) -> Any:
    """The conversation's history pushed as it is written (agent replies, handoff changes)."""
    conversation, messages = await _visitor_history(request, conversation_id, session_id, after)
    key = str(conversation.id)
    held = contextlib.AsyncExitStack()  # released when the response ends, however it ends
    try:
        held.enter_context(runtime.event_streams.hold(key))
        hints = await held.enter_async_context(runtime.bus.subscribe(key))
    except BaseException:
        await held.aclose()
        raise
    updates = visitor_history.follow_history(
        runtime.db,
        hints,
        conversation,
        messages,
        session_id=session_id,
        after=after,
        deadline=time.monotonic() + runtime.settings.public_event_stream_seconds,
    )
    return sse_response(_history_frames(updates), on_close=held.aclose)


async def _history_frames(updates: AsyncIterator[HistoryUpdate]) -> AsyncIterator[str]:
    async for update in updates:
        match update:
            case visitor_history.NewMessage(message=message):
                yield frame(message_out(message), event="message")
            case visitor_history.StatusChanged(status=status):
                yield frame({"conversation_status": status}, event="status")
            case visitor_history.AgentTyping():
                yield frame({"who": "agent"}, event="typing")


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    session_id: str = Field(..., min_length=1, max_length=200)


class FeedbackIn(SessionIn):
    rating: Literal["positive", "negative"] | None


@router.post("/messages/{message_id}/feedback")
async def message_feedback(message_id: str, data: FeedbackIn, request: Request) -> dict[str, Any]:
    await runtime_of(request).limits.history(client_ip(request))
    message = await visitor_history.set_session_feedback(
        runtime_of(request).db,
        session_id=data.session_id,
        message_id=message_id,
        rating=data.rating,
    )
    return {"id": str(message.id), "feedback": message.feedback}


async def _visitor_conversation(
    request: Request, conversation_id: str, session_id: str
) -> tuple[Conversation, Bot]:
    """The visitor's own conversation and its bot, counted against the history limit, from one of
    the bot's domains."""
    runtime = runtime_of(request)
    await runtime.limits.history(client_ip(request))
    conversation, bot = await visitor_history.visitor_conversation(
        runtime.db, conversation_id=conversation_id, session_id=session_id
    )
    check_bot_origin(request, bot)
    return conversation, bot


@router.post("/conversations/{conversation_id}/typing", status_code=204)
async def visitor_typing(conversation_id: str, data: SessionIn, request: Request) -> Response:
    """The visitor is typing (the widget says so at most every few seconds while a person holds
    the chat): the agents' open pages show it. Nothing is stored."""
    conversation, _ = await _visitor_conversation(request, conversation_id, data.session_id)
    if handoff_service.is_held(conversation.status):
        await handoff_service.typing(runtime_of(request).bus, conversation.id, who="visitor")
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/handoff")
async def ask_for_a_human(
    conversation_id: str, data: SessionIn, request: Request
) -> dict[str, Any]:
    conversation, bot = await _visitor_conversation(request, conversation_id, data.session_id)
    status, available = await handoff_service.request_handoff(
        runtime_of(request).db,
        bot=bot,
        conversation_id=conversation.id,
        session_id=data.session_id,
        bus=runtime_of(request).bus,
    )
    settings = HandoffSettings.model_validate(bot.handoff_settings or {})
    return {
        "conversation_status": status,
        "handoff_available": available,
        "message": None
        if available
        else (
            settings.offline_message
            or "Nobody from the team is online right now. Leave your details "
            "and we will get back to you."
        ),
    }
