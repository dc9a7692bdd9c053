"""Flowise's prediction API and what the ``flowise-embed`` widget calls, under ``/api/v1``.

The chatflow id is a bot's id or slug. Wire formats follow a real Flowise 3.1 server
(/work/shared/peers: its answers as recorded), not only its documentation.

- Auth: optional ``Authorization: Bearer <key>`` (Flowise's per-chatflow API key): a key must be
  valid (401) and reach the bot; without one the bot must be public (401 for a bot that is not).
  A browser's Origin must be one of the bot's domains when it names any (403; the widget's
  endpoints answer preflights from any origin, as ``/v1/public`` does, and check the bot's
  domains on the request itself).
- Sessions: Flowise's ``chatId`` / ``overrideConfig.sessionId`` is a client-chosen session id,
  kept in this door's namespace (``flowise:public`` without a key, ``flowise:key:<id>`` or
  ``flowise:workspace:<id>`` with one; ``chatwell.services.sessions``): the same id continues
  its conversation; no id opens a new one under a new UUID. ``history`` (``{role|type,
  content|message}``) only fills a conversation the server does not have.
- ``POST /prediction/{id}`` ``{question, streaming, history, overrideConfig, chatId, uploads}``:
  JSON ``{text, question, chatId, chatMessageId, isStreamValid, sessionId, sourceDocuments}``, or
  with ``streaming`` SSE frames ``message:`` / ``data:{"event", "data"}``: ``start``, ``token``,
  ``sourceDocuments`` (``[{pageContent, metadata: {source, title, ...}}]``), ``metadata``,
  ``error``, ``abort``, ``end`` (``[DONE]``), ``:heartbeat`` while quiet. chatwell addition:
  ``replace`` (the output filter rewrote the answer; the widget ignores it). ``uploads``: an
  image (``data:`` URL) for bots whose model takes images.
- ``GET /chatflows-streaming/{id}`` → ``{"isStreaming": true}`` (every chatwell bot streams; the
  same answer for any id, so it tells nobody which bots exist).
- ``GET /public-chatbotConfig/{id}``: a public bot's widget settings in Flowise's shape
  (``starterPrompts``, ``chatFeedback``, ``leads`` from the contact form, ``uploads``, ...).
- ``POST /feedback/{id}`` ``{chatId, messageId, rating: THUMBS_UP|THUMBS_DOWN, content}`` on an
  answer of that chat (its id is the feedback's id); ``PUT /feedback/{feedbackId}`` ``{content,
  rating}`` on an answer rated before through the same namespace.
- ``POST /leads/`` ``{chatflowid, chatId, name, email, phone}`` (the bot's contact form must be
  on); ``GET /leads/{id}`` with a workspace key.
- ``GET /chatmessage/{id}?chatId=&sessionId=&order=ASC|DESC`` (a key): the messages of this
  door's conversations the key reaches (a bot key: its own namespace; a workspace key: every
  chat of this door, the widget's visitors' included). ``PUT /chatmessage/abort/{id}/{chatId}``:
  stops that chat's streaming answer (in this process; only within the caller's namespace).
- Errors: ``{"statusCode", "success": false, "message", "stack": {}}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatwell.api.cors import allow_cors
from chatwell.api.deps import authenticate, bearer, runtime_of
from chatwell.api.dialect import (
    caller_of,
    check_bot_origin,
    parse_body,
)
from chatwell.api.encoders import citation_json, failed_reply
from chatwell.api.errors import ErrorDoc
from chatwell.api.native.chat import check_image
from chatwell.api.sse import sse_response
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.domain.models import AnswerSettings, ContactFormSettings, ModelSettings
from chatwell.errors import ChatwellError, Forbidden, InvalidRequest, NotFound, Unauthenticated
from chatwell.services import bots, end_users, leads
from chatwell.services.conversations import iso
from chatwell.services.end_users import EndUser
from chatwell.services.sessions import resolve_session, session_scope
from chatwell.storage.tables import Bot

DOOR = "flowise"
router = APIRouter(prefix="/api/v1", tags=["flowise"])
PREFIXES = (
    "/api/v1/prediction",
    "/api/v1/chatflows-streaming",
    "/api/v1/public-chatbotConfig",
    "/api/v1/feedback",
    "/api/v1/leads",
    "/api/v1/chatmessage",
)
# The widget's endpoints: preflights from any origin (each request checks its bot's domains).
PUBLIC_PREFIXES = (
    "/api/v1/prediction/",
    "/api/v1/chatflows-streaming/",
    "/api/v1/public-chatbotConfig/",
    "/api/v1/feedback",
    "/api/v1/leads",
    "/api/v1/chatmessage/abort/",
)
HEARTBEAT = ":heartbeat\n\n"
RATINGS = {"THUMBS_UP": "positive", "THUMBS_DOWN": "negative"}
FLOWISE_RATINGS = {v: k for k, v in RATINGS.items()}


def flowise_error(error: ChatwellError, status: int) -> JSONResponse:
    return JSONResponse(
        {"statusCode": status, "success": False, "message": error.message, "stack": {}},
        status_code=status,
    )


ERROR_DOC = ErrorDoc(
    "FlowiseError",
    {
        "type": "object",
        "required": ["statusCode", "success", "message"],
        "properties": {
            "statusCode": {"type": "integer"},
            "success": {"const": False},
            "message": {"type": "string"},
            "stack": {"type": "object"},
        },
    },
)


def frame(event: str, data: Any) -> str:
    """Flowise's framing: a bare ``message:`` line, then ``data:`` without a space."""
    return (
        "message:\ndata:"
        + json.dumps({"event": event, "data": data}, ensure_ascii=False, separators=(",", ":"))
        + "\n\n"
    )


async def chatflow(request: Request, ref: str) -> tuple[Bot, Principal | None]:
    """The bot a request names, and its key's principal (None: a keyless call to a public bot)."""
    secret = bearer(request)
    if secret:
        principal = await authenticate(request, secret)
        bot = await bots.get_bot(runtime_of(request).db, principal=principal, ref=ref)
        if not bot.active:
            raise Forbidden("this bot is inactive", code="bot_inactive")
        check_bot_origin(request, bot, principal)
        return bot, principal
    try:
        bot = await bots.get_public_bot(runtime_of(request).db, ref=ref)
    except Forbidden as exc:
        if exc.code != "bot_not_public":
            raise
        raise Unauthenticated(
            "Unauthorized: this chatflow needs an API key", code="api_key_required"
        ) from None
    check_bot_origin(request, bot)
    return bot, None


# ----------------------------------------------------------------------------- prediction


class HistoryItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str | None = Field(None, max_length=50)
    type: str | None = Field(None, max_length=50)
    content: str | None = Field(None, max_length=8_000)
    message: str | None = Field(None, max_length=8_000)

    def pair(self) -> tuple[str | None, str | None]:
        """(role, text): Flowise clients send either spelling."""
        return self.role or self.type, self.content if self.content is not None else self.message


class Upload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: str | None = Field(None, max_length=15_000_000)
    type: str | None = Field(None, max_length=50)
    name: str | None = Field(None, max_length=300)
    mime: str | None = Field(None, max_length=100)


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(..., max_length=8_000)
    streaming: bool = False
    history: list[HistoryItem] | None = Field(None, max_length=50)
    overrideConfig: dict[str, Any] | None = Field(None, max_length=50)
    chatId: str | None = Field(None, max_length=200)
    uploads: list[Upload] | None = Field(None, max_length=5)

    @field_validator("streaming", mode="before")
    @classmethod
    def _streaming(cls, value: Any) -> Any:
        return value in (True, "true") if value is not None else False

    def session_id(self) -> str | None:
        given = (self.overrideConfig or {}).get("sessionId")
        if isinstance(given, str) and given.strip():
            return given.strip()[:200]
        return self.chatId or None


def _image(uploads: list[Upload] | None) -> Any:
    for upload in uploads or []:
        if upload.data and upload.data.startswith("data:image/") and ";base64," in upload.data:
            head, _, data = upload.data.partition(";base64,")
            try:
                return check_image(data, head.removeprefix("data:"))  # type: ignore[arg-type]
            except ValueError as exc:
                raise InvalidRequest(f"uploads: {exc}") from None
    return None


def source_documents(citations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flowise's source documents, from citations as stored (``citation_json``)."""
    return [
        {
            "pageContent": c["snippet"],
            "metadata": {
                "source": c["url"] or c["title"],
                "title": c["title"],
                "page": c["page"],
                "score": c["score"],
                "source_id": c["source_id"],
                "index": c["index"],
            },
        }
        for c in citations
    ]


@router.post("/prediction/{chatflowid}", responses={200: {"content": {"text/event-stream": {}}}})
async def prediction(chatflowid: str, request: Request) -> Any:
    bot, principal = await chatflow(request, chatflowid)
    data = await parse_body(request, PredictionIn)
    session_id = data.session_id() or str(uuid.uuid4())
    chat_id = data.chatId or session_id
    opened = await open_turn(
        runtime_of(request).chat,
        caller_of(request, principal),
        door=DOOR,
        bot=bot,
        question=data.question,
        history=[item.pair() for item in data.history or []],
        client_session_id=session_id,
        image=_image(data.uploads),
    )
    turn, headers, ref = opened.turn, opened.limit_headers(), opened.session
    message_id = str(turn.answer_id)
    ids = {
        "chatId": chat_id,
        "chatMessageId": message_id,
        "question": data.question,
        "sessionId": session_id,
    }

    if not data.streaming:
        answer = await turn.collect()
        if (failed := failed_reply(answer.error, flowise_error, headers=headers)) is not None:
            return failed
        body: dict[str, Any] = {
            "text": answer.text,
            "question": data.question,
            "chatId": chat_id,
            "chatMessageId": message_id,
            "isStreamValid": False,
            "sessionId": session_id,
        }
        if answer.citations:
            body["sourceDocuments"] = source_documents([citation_json(c) for c in answer.citations])
        return JSONResponse(body, headers=headers)

    async def frames() -> AsyncIterator[str]:
        events = turn.events()
        yield frame("start", "")
        try:
            with runtime_of(request).turn_stops.running((bot.id, ref.scope, chat_id)) as stopped:
                async for event in events:
                    match event:
                        case ev.Delta(text=text):
                            yield frame("token", text)
                        case ev.Replace(text=text):
                            yield frame("replace", text)
                        case ev.Citations(citations=citations):
                            documents = source_documents([citation_json(c) for c in citations])
                            yield frame("sourceDocuments", documents)
                        case ev.Error(message=message):
                            yield frame("error", message)
                            break
                        case ev.Done():
                            yield frame("metadata", ids)
                            break
                    if stopped.is_set():
                        yield frame("abort", "[DONE]")
                        break
        finally:
            await events.aclose()
        yield frame("end", "[DONE]")

    response = sse_response(frames(), keep_alive_frame=HEARTBEAT)
    response.headers.update(headers)
    return response


@router.put("/chatmessage/abort/{chatflowid}/{chat_id}")
async def abort_chat_message(chatflowid: str, chat_id: str, request: Request) -> dict[str, Any]:
    bot, principal = await chatflow(request, chatflowid)
    runtime_of(request).turn_stops.stop((bot.id, session_scope(DOOR, principal), chat_id))
    return {"status": 200, "message": "Chat message aborted"}


@router.get("/chatflows-streaming/{chatflowid}")
async def chatflows_streaming(chatflowid: str, request: Request) -> dict[str, Any]:
    allow_cors(request)  # the same answer for every id and every origin: it reveals nothing
    return {"isStreaming": True}


# ----------------------------------------------------------------------------- the widget's config


@router.get("/public-chatbotConfig/{chatflowid}")
async def public_chatbot_config(chatflowid: str, request: Request) -> dict[str, Any]:
    bot = await bots.get_public_bot(runtime_of(request).db, ref=chatflowid)
    check_bot_origin(request, bot)
    form = ContactFormSettings.model_validate(bot.contact_form or {})
    names = {f.name for f in form.fields} if form.fields else {"name", "email", "phone"}
    model = (
        runtime_of(request)
        .chat.models.resolve(ModelSettings.model_validate(bot.model_settings or {}))
        .model
    )
    config: dict[str, Any] = {
        "starterPrompts": {
            str(i): {"prompt": q} for i, q in enumerate(bot.suggested_questions or [])
        },
        "chatFeedback": {"status": True},
        "leads": {
            "status": form.enabled,
            "title": "Let us know where we can reach you",
            "name": "name" in names,
            "email": "email" in names,
            "phone": "phone" in names,
            "successMessage": form.success_message or "Thank you for your details.",
        },
        "uploads": {
            "isSpeechToTextEnabled": False,
            "isImageUploadAllowed": model.supports_images,
            "isRAGFileUploadAllowed": False,
            "imgUploadSizeAndTypes": [
                {"fileTypes": ["image/png", "image/jpeg", "image/webp"], "maxUploadSize": 5}
            ]
            if model.supports_images
            else [],
            "fileUploadSizeAndTypes": [],
        },
        "isTTSEnabled": False,
    }
    if bot.welcome_message:
        config["welcomeMessage"] = bot.welcome_message
    if not AnswerSettings.model_validate(bot.answer_settings or {}).citations_enabled:
        config["showSourceDocuments"] = False
    return config


# ----------------------------------------------------------------------------- feedback


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chatflowid: str | None = Field(None, max_length=100)
    chatId: str = Field(..., min_length=1, max_length=200)
    messageId: str = Field(..., min_length=1, max_length=100)
    rating: Literal["THUMBS_UP", "THUMBS_DOWN"]
    content: str | None = Field(None, max_length=2_000)


def feedback_json(bot: Bot, chat_id: str, message: Any) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "chatflowid": str(bot.id),
        "chatId": chat_id,
        "messageId": str(message.id),
        "rating": FLOWISE_RATINGS.get(message.feedback or ""),
        "content": message.feedback_comment,
        "createdDate": iso(message.created_at),
    }


@router.post("/feedback/{chatflowid}")
async def create_feedback(chatflowid: str, request: Request) -> dict[str, Any]:
    bot, principal = await chatflow(request, chatflowid)
    data = await parse_body(request, FeedbackIn)
    user = EndUser(bot.id, session_scope(DOOR, principal), data.chatId)
    message = await end_users.set_feedback(
        runtime_of(request).db,
        user,
        data.messageId,
        rating=RATINGS[data.rating],
        comment=data.content,
    )
    return feedback_json(bot, data.chatId, message)


class FeedbackUpdateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str | None = Field(None, max_length=2_000)
    rating: Literal["THUMBS_UP", "THUMBS_DOWN"] | None = None


@router.put("/feedback/{feedback_id}")
async def update_feedback(feedback_id: str, request: Request) -> dict[str, Any]:
    data = await parse_body(request, FeedbackUpdateIn)
    if secret := bearer(request):
        await authenticate(request, secret)  # a wrong key is refused before any lookup
    conversation = await end_users.rated_conversation(runtime_of(request).db, feedback_id)
    try:
        bot, principal = await chatflow(request, str(conversation.bot_id))
    except ChatwellError:
        # The request names no bot: a rating the caller may not reach reads as one that does not exist.
        raise NotFound("feedback not found", code="feedback_not_found") from None
    message, conversation = await end_users.comment_on_rated(
        runtime_of(request).db,
        bot_id=bot.id,
        scopes=(session_scope(DOOR, principal),),
        message_id=feedback_id,
        comment=data.content,
        rating=RATINGS.get(data.rating or ""),
    )
    return feedback_json(bot, conversation.session_id or "", message)


# ----------------------------------------------------------------------------- leads


class LeadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    chatflowid: str = Field(..., min_length=1, max_length=100)
    chatId: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=50)


def lead_json(bot: Bot, chat_id: str, lead: Any) -> dict[str, Any]:
    return {
        "id": str(lead.id),
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "chatflowid": str(bot.id),
        "chatId": chat_id,
        "createdDate": iso(lead.created_at),
    }


@router.post("/leads")
@router.post("/leads/", include_in_schema=False)
async def create_lead(request: Request) -> dict[str, Any]:
    data = await parse_body(request, LeadIn)
    bot, principal = await chatflow(request, data.chatflowid)
    form = ContactFormSettings.model_validate(bot.contact_form or {})
    if not form.enabled:
        raise Forbidden("this bot's contact form is turned off", code="contact_form_disabled")
    chat_id = data.chatId or str(uuid.uuid4())
    clean = leads.check_submission(
        form,
        leads.LeadSubmission(
            session_id=chat_id, name=data.name, email=data.email, phone=data.phone
        ),
    )
    ref = await resolve_session(
        runtime_of(request).db, bot=bot, door=DOOR, principal=principal, client_session_id=chat_id
    )
    lead = await leads.create_lead(
        runtime_of(request).db,
        bot=bot,
        conversation_id=ref.conversation_id,
        name=clean.name,
        email=clean.email,
        phone=clean.phone,
        fields=clean.fields,
    )
    return lead_json(bot, chat_id, lead)


async def _keyed(request: Request, chatflowid: str) -> tuple[Bot, Principal]:
    secret = bearer(request)
    if not secret:
        raise Unauthenticated("Unauthorized Access", code="missing_api_key")
    bot, principal = await chatflow(request, chatflowid)
    assert principal is not None
    return bot, principal


@router.get("/leads/{chatflowid}")
async def list_leads(chatflowid: str, request: Request) -> list[dict[str, Any]]:
    bot, principal = await _keyed(request, chatflowid)
    if principal.bot_id is not None:
        raise Forbidden("leads need a workspace key", code="insufficient_scope")
    found = await leads.list_leads(
        runtime_of(request).db,
        principal=principal,
        bot_id=bot.id,
        start=None,
        end=None,
        page=1,
        size=100,
    )
    return [lead_json(bot, "", lead) for lead in found]


# ----------------------------------------------------------------------------- message history


@router.get("/chatmessage/{chatflowid}")
async def chat_messages(
    chatflowid: str,
    request: Request,
    chatId: str | None = Query(None, max_length=200),
    sessionId: str | None = Query(None, max_length=200),
    order: Literal["ASC", "DESC", "asc", "desc"] = "ASC",
) -> list[dict[str, Any]]:
    bot, principal = await _keyed(request, chatflowid)
    # A bot key reads its own chats; a workspace key every chat of this door (visitors' and keys').
    found = await end_users.session_messages(
        runtime_of(request).db,
        bot_id=bot.id,
        scopes=(session_scope(DOOR, principal),),
        door=DOOR if principal.bot_id is None else None,
        session_id=sessionId or chatId,
        descending=order.upper() == "DESC",
    )
    return [
        {
            "id": str(m.id),
            "role": "userMessage" if m.role == "user" else "apiMessage",
            "chatflowid": str(bot.id),
            "content": m.content,
            "sourceDocuments": source_documents(m.citations) if m.citations else None,
            "chatType": "EXTERNAL",
            "chatId": c.session_id,
            "sessionId": c.session_id,
            "memoryType": None,
            "createdDate": iso(m.created_at),
            "feedback": FLOWISE_RATINGS.get(m.feedback or ""),
        }
        for c, m in found
    ]
