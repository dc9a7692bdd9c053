"""Dify's service API for chat apps, under ``/dify/v1`` (Dify clients take a base URL ending in
``/v1``; chatwell's own ``/v1`` already has conversations and messages).

- Auth: ``Authorization: Bearer <key>``. A Dify key belongs to one app: here, a key scoped to one
  bot (a workspace key names no app: 403 ``forbidden``). The bot must be active (400
  ``app_unavailable``).
- ``user`` is the app's end-user id. Conversations are stored in the door's session namespace
  of the key (``dify:key:<key id>``, ``chatwell.services.sessions``) under that id: every read,
  rename, delete and feedback reaches only that user's conversations through this key; another
  user's, another key's or another door's are "not found". Where Dify's own ``user`` is optional
  (``GET /conversations``, ``/messages``, ``/parameters``) a missing one is Dify's
  ``DEFAULT-USER``.
- ``POST /chat-messages`` ``{query, inputs, user, response_mode, conversation_id, files,
  auto_generate_name}``: an empty ``conversation_id`` opens a new conversation; a given one must
  be this user's (404 ``not_found`` "Conversation Not Exists."). ``blocking`` (the default)
  answers one JSON ``{event: "message", task_id, id, message_id, conversation_id, mode: "chat",
  answer, metadata: {usage, retriever_resources}, created_at}``; ``streaming`` sends ``data:``
  frames ``message`` (a text chunk), ``message_replace`` (the output filter rewrote the answer),
  ``message_end`` (usage, retriever resources), ``error`` ``{status, code, message}``, and
  ``event: ping`` every 10 s. ``inputs`` are kept with the conversation and its messages. Files:
  images uploaded with ``POST /files/upload`` (``transfer_method: local_file``), for bots whose
  model takes images; ``remote_url`` is refused (the server fetches no URLs for a caller).
- ``POST /chat-messages/{task_id}/stop`` ``{user}``: stops that user's streaming answer (in this
  process); always ``{"result": "success"}``, as Dify.
- ``GET /messages?conversation_id=&user=&first_id=&limit=``: the latest ``limit`` exchanges before
  ``first_id``, oldest first, each ``{id, conversation_id, inputs, query, answer, feedback,
  retriever_resources, message_files, agent_thoughts, created_at, ...}``; ``has_more``.
- ``POST /messages/{id}/feedbacks`` ``{rating: like|dislike|null, user, content}``;
  ``GET /messages/{id}/suggested?user=``: the bot's suggested questions not yet asked in that
  conversation.
- ``GET /conversations?user=&last_id=&limit=&sort_by=``, ``DELETE /conversations/{id}``
  (``{user}``; 204), ``POST /conversations/{id}/name`` (``{name, auto_generate, user}``:
  ``auto_generate`` names it after its first question).
- ``GET /parameters`` (opening statement = the bot's welcome message, suggested questions,
  features), ``GET /meta``, ``GET /info``.
- Errors: ``{"code", "message", "status"}`` with Dify's codes (``invalid_param``,
  ``unauthorized``, ``forbidden``, ``not_found``, ``app_unavailable``, ``too_many_requests``,
  ``provider_quota_exceeded``, ``completion_request_error``, ``file_too_large``,
  ``unsupported_file_type``, ...).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatwell.api.deps import BotPrincipalDep, runtime_of
from chatwell.api.dialect import (
    caller_of,
    check_bot_origin,
    parse_body,
)
from chatwell.api.encoders import citation_json, failed_reply, turn_failure
from chatwell.api.errors import ErrorDoc
from chatwell.api.sse import frame, sse_response
from chatwell.chat.turns import open_turn
from chatwell.chat.uploads import Uploads
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.domain.models import AnswerSettings, ModelSettings
from chatwell.errors import ChatwellError, InvalidRequest, PayloadTooLarge
from chatwell.llm.base import ModelImage
from chatwell.services import bots, end_users
from chatwell.services.end_users import EndUser, Exchange
from chatwell.services.sessions import session_scope
from chatwell.storage.tables import Bot, Conversation, Message

DOOR = "dify"
router = APIRouter(prefix="/dify/v1", tags=["dify"])
PREFIXES = ("/dify/v1",)
DEFAULT_USER = "DEFAULT-USER"  # Dify's end user when a request names none
PING_FRAME = "event: ping\n\n"
PING_SECONDS = 10.0
MAX_USER = 200
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_IMAGE_BYTES = 10 * 1024 * 1024

# chatwell's codes in Dify's words; anything else by its status (STATUS_CODES).
DIFY_CODES = {
    "malformed_json": ("bad_request", "Invalid JSON payload received or JSON payload is empty."),
    "conversation_not_found": ("not_found", "Conversation Not Exists."),
    "message_not_found": ("not_found", "Message Not Exists."),
    "last_conversation_not_found": ("not_found", "Last Conversation Not Exists."),
    "first_message_not_found": ("not_found", "First Message Not Exists."),
    "bot_not_found": ("app_unavailable", "App unavailable, please check your app configurations."),
    "bot_inactive": ("app_unavailable", "App unavailable, please check your app configurations."),
    "insufficient_credits": ("provider_quota_exceeded", None),
    "service_unavailable": ("provider_quota_exceeded", None),
    "content_filtered": ("completion_request_error", None),
    "file_too_large": ("file_too_large", None),
    "unsupported_file_type": ("unsupported_file_type", None),
    "no_file_uploaded": ("no_file_uploaded", None),
    "payload_too_large": ("request_entity_too_large", None),
}
STATUS_CODES = {
    400: "invalid_param",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_entity_too_large",
    415: "unsupported_file_type",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "completion_request_error",
    503: "service_unavailable",
}
# Dify answers app and model failures with 400 (its provider_* and completion_request_error).
STATUS_OF_CODE = {
    "app_unavailable": 400,
    "provider_quota_exceeded": 400,
    "completion_request_error": 400,
    "unsupported_file_type": 415,
    "file_too_large": 413,
}


def dify_code(error: ChatwellError, status: int) -> tuple[str, str, int]:
    code, message = DIFY_CODES.get(error.code, (None, None))
    code = code or STATUS_CODES.get(status, "unknown")
    return code, message or error.message, STATUS_OF_CODE.get(code, status)


def dify_error(error: ChatwellError, status: int) -> JSONResponse:
    code, message, status = dify_code(error, status)
    return JSONResponse({"code": code, "message": message, "status": status}, status_code=status)


ERROR_DOC = ErrorDoc(
    "DifyError",
    {
        "type": "object",
        "required": ["code", "message", "status"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "status": {"type": "integer"},
        },
    },
)


# ----------------------------------------------------------------------------- the app and its user


async def app_bot(request: Request, principal: Principal) -> Bot:
    bot = await bots.get_bot(runtime_of(request).db, principal=principal, ref=str(principal.bot_id))
    if not bot.active:
        raise InvalidRequest("this bot is inactive", code="bot_inactive")
    check_bot_origin(request, bot, principal)
    return bot


def end_user(bot: Bot, principal: Principal, user: str | None) -> EndUser:
    return EndUser(bot.id, session_scope(DOOR, principal), user or DEFAULT_USER)


def check_user(user: str | None) -> str | None:
    if user is not None and len(user) > MAX_USER:
        raise InvalidRequest(f"user is longer than {MAX_USER} characters")
    return user or None


def stamp(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


# ----------------------------------------------------------------------------- uploads


def uploads_of(request: Request) -> Uploads:
    return runtime_of(request).uploads


# ----------------------------------------------------------------------------- chat


class DifyFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["image", "document", "audio", "video", "custom"] = "image"
    transfer_method: Literal["remote_url", "local_file"]
    url: str | None = Field(None, max_length=2000)
    upload_file_id: str | None = Field(None, max_length=100)


class DifyChatIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(..., max_length=8_000)
    inputs: dict[str, Any] = Field(default_factory=dict, max_length=50)
    user: str = Field(..., min_length=1, max_length=MAX_USER)
    response_mode: Literal["blocking", "streaming"] | None = None
    conversation_id: str | None = None
    files: list[DifyFile] | None = Field(None, max_length=1)
    auto_generate_name: bool = True

    @field_validator("conversation_id", mode="before")
    @classmethod
    def _conversation_id(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise ValueError("conversation_id must be a valid UUID") from None
        return value


def _image(request: Request, user: EndUser, files: list[DifyFile] | None) -> ModelImage | None:
    if not files:
        return None
    file = files[0]
    if file.type != "image":
        raise InvalidRequest("only image files are accepted", code="unsupported_file_type")
    if file.transfer_method == "remote_url":
        raise InvalidRequest(
            "remote_url files are not fetched; upload the image with /files/upload and "
            "send transfer_method local_file",
            code="invalid_param",
        )
    if not file.upload_file_id:
        raise InvalidRequest("upload_file_id is required for local_file")
    return uploads_of(request).take(user, file.upload_file_id)


def usage_json(request: Request, usage: ev.Usage | None, started: float) -> dict[str, Any]:
    usage = usage or ev.Usage(0, 0, "")
    prices = runtime_of(request).chat.prices
    prompt_price = prices.cost(usage.model, usage.prompt_tokens, 0)
    completion_price = prices.cost(usage.model, 0, usage.completion_tokens)
    per_million = prices.prices.get(usage.model, (0.0, 0.0))
    return {
        "prompt_tokens": usage.prompt_tokens,
        "prompt_unit_price": str(per_million[0]),
        "prompt_price_unit": "0.000001",
        "prompt_price": f"{prompt_price:.7f}",
        "completion_tokens": usage.completion_tokens,
        "completion_unit_price": str(per_million[1]),
        "completion_price_unit": "0.000001",
        "completion_price": f"{completion_price:.7f}",
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "total_price": f"{usage.cost:.7f}",
        "currency": "USD",
        "latency": round(time.perf_counter() - started, 6),
    }


def retriever_resources(bot: Bot, citations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dify's resources, from citations as stored (``citation_json``)."""
    return [
        {
            "position": c["index"],
            "dataset_id": str(bot.id),
            "dataset_name": bot.name,
            "document_id": c["source_id"],
            "document_name": c["title"],
            "data_source_type": "upload_file",
            "segment_id": c["source_id"],
            "retriever_from": "api",
            "score": c["score"],
            "content": c["snippet"],
            "url": c["url"],
            "page": c["page"],
        }
        for c in citations
    ]


@router.post("/chat-messages", responses={200: {"content": {"text/event-stream": {}}}})
async def chat_messages(request: Request, principal: BotPrincipalDep) -> Any:
    data = await parse_body(request, DifyChatIn)
    bot = await app_bot(request, principal)
    user = end_user(bot, principal, data.user)
    image = _image(request, user, data.files)
    started = time.perf_counter()
    opened = await open_turn(
        runtime_of(request).chat,
        caller_of(request, principal),
        door=DOOR,
        bot=bot,
        question=data.query,
        client_session_id=data.user,
        conversation_id=data.conversation_id,
        continue_latest=False,
        same_session=True,  # another user's conversation is "not found"
        metadata={"inputs": data.inputs} if data.inputs else {},
        image=image,
    )
    turn, headers = opened.turn, opened.limit_headers()
    task_id = str(uuid.uuid4())
    message_id = str(turn.answer_id)
    conversation_id = str(turn.conversation_id) if turn.conversation_id else ""
    created_at = int(time.time())

    if data.response_mode != "streaming":
        answer = await turn.collect()
        if (failed := failed_reply(answer.error, dify_error, headers=headers)) is not None:
            return failed
        return JSONResponse(
            {
                "event": "message",
                "task_id": task_id,
                "id": message_id,
                "message_id": message_id,
                "conversation_id": conversation_id,
                "mode": "chat",
                "answer": answer.text,
                "metadata": {
                    "usage": usage_json(request, answer.usage, started),
                    "retriever_resources": retriever_resources(
                        bot, [citation_json(c) for c in answer.citations]
                    ),
                },
                "created_at": created_at,
            },
            headers=headers,
        )

    ids = {"task_id": task_id, "message_id": message_id, "conversation_id": conversation_id}

    async def frames() -> AsyncIterator[str]:
        citations: tuple[ev.Citation, ...] = ()
        usage: ev.Usage | None = None
        events = turn.events()
        try:
            with runtime_of(request).turn_stops.running((bot.id, user, task_id)) as stopped:
                async for event in events:
                    match event:
                        case ev.Delta(text=text):
                            yield frame(
                                {
                                    "event": "message",
                                    **ids,
                                    "id": message_id,
                                    "answer": text,
                                    "created_at": created_at,
                                }
                            )
                        case ev.Replace(text=text):
                            yield frame(
                                {
                                    "event": "message_replace",
                                    **ids,
                                    "answer": text,
                                    "created_at": created_at,
                                }
                            )
                        case ev.Citations():
                            citations = event.citations
                        case ev.Usage():
                            usage = event
                        case ev.Error():
                            code, message, status = dify_code(*turn_failure(event))
                            yield frame(
                                {
                                    "event": "error",
                                    "task_id": task_id,
                                    "message_id": message_id,
                                    "status": status,
                                    "code": code,
                                    "message": message,
                                }
                            )
                            return
                        case ev.Done():
                            break
                    if stopped.is_set():
                        break  # closing the turn below stores it as cancelled, with what was said
        finally:
            await events.aclose()
        yield frame(
            {
                "event": "message_end",
                **ids,
                "id": message_id,
                "created_at": created_at,
                "metadata": {
                    "usage": usage_json(request, usage, started),
                    "retriever_resources": retriever_resources(
                        bot, [citation_json(c) for c in citations]
                    ),
                },
            }
        )

    response = sse_response(frames(), keep_alive_frame=PING_FRAME, keep_alive_seconds=PING_SECONDS)
    response.headers.update(headers)
    return response


class UserIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user: str = Field(..., min_length=1, max_length=MAX_USER)


@router.post("/chat-messages/{task_id}/stop")
async def stop_chat_message(
    task_id: str, request: Request, principal: BotPrincipalDep
) -> dict[str, Any]:
    data = await parse_body(request, UserIn)
    bot = await app_bot(request, principal)
    runtime_of(request).turn_stops.stop((bot.id, end_user(bot, principal, data.user), task_id))
    return {"result": "success"}


# ----------------------------------------------------------------------------- files


@router.post("/files/upload", status_code=201)
async def upload_file(request: Request, principal: BotPrincipalDep) -> dict[str, Any]:
    bot = await app_bot(request, principal)
    model = (
        runtime_of(request)
        .chat.models.resolve(ModelSettings.model_validate(bot.model_settings or {}))
        .model
    )
    try:
        form = await request.form(max_files=2, max_fields=10)
    except Exception:
        raise InvalidRequest(
            "expected a multipart/form-data body with a file", code="no_file_uploaded"
        ) from None
    try:
        files = [v for v in form.getlist("file") if not isinstance(v, str)]
        if not files:
            raise InvalidRequest("Please upload your file.", code="no_file_uploaded")
        if len(files) > 1:
            raise InvalidRequest("Only one file is allowed.", code="too_many_files")
        user_value = form.get("user")
        user = end_user(
            bot, principal, check_user(user_value if isinstance(user_value, str) else None)
        )
        upload = files[0]
        name = upload.filename or "file"
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension not in IMAGE_TYPES:
            raise InvalidRequest("File type not allowed.", code="unsupported_file_type")
        if not model.supports_images:
            raise InvalidRequest(
                "this bot's model does not accept images", code="unsupported_file_type"
            )
        content = await upload.read(MAX_IMAGE_BYTES + 1)
    finally:
        await form.close()  # the uploaded files' spools, however this ends
    if len(content) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(
            f"File size exceeded. {MAX_IMAGE_BYTES // (1024 * 1024)} MB at most.",
            code="file_too_large",
        )
    media_type = IMAGE_TYPES[extension]
    info = {
        "id": str(uuid.uuid4()),
        "name": name[:200],
        "size": len(content),
        "extension": extension,
        "mime_type": media_type,
        "created_by": user.session_id,
        "created_at": int(time.time()),
    }
    uploads_of(request).add(user, ModelImage(base64.b64encode(content).decode(), media_type), info)
    return info


# ----------------------------------------------------------------------------- history


def exchange_json(bot: Bot, conversation_id: str, exchange: Exchange) -> dict[str, Any]:
    question, answer = exchange.question, exchange.answer
    feedback = (
        {"positive": "like", "negative": "dislike"}.get(answer.feedback or "") if answer else None
    )
    return {
        "id": str(exchange.id),
        "conversation_id": conversation_id,
        "parent_message_id": None,
        "inputs": ((question.metadata_ or {}).get("inputs") or {}) if question else {},
        "query": question.content if question else "",
        "answer": answer.content if answer else "",
        "message_files": [],
        "feedback": {"rating": feedback} if feedback else None,
        "retriever_resources": retriever_resources(bot, answer.citations or []) if answer else [],
        "agent_thoughts": [],
        "created_at": stamp(exchange.created_at),
        "status": "error" if answer is not None and answer.error_code else "normal",
        "error": answer.error if answer is not None and answer.error_code else None,
    }


def conversation_json(bot: Bot, conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "name": conversation.title or "New conversation",
        "inputs": (conversation.metadata_ or {}).get("inputs") or {},
        "status": "normal",
        "introduction": bot.welcome_message or "",
        "created_at": stamp(conversation.created_at),
        "updated_at": stamp(conversation.updated_at),
    }


@router.get("/messages")
async def list_messages(
    request: Request,
    principal: BotPrincipalDep,
    conversation_id: str | None = Query(None, max_length=100),
    user: str | None = Query(None),
    first_id: str | None = Query(None, max_length=100),
    limit: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    bot = await app_bot(request, principal)
    owner = end_user(bot, principal, check_user(user))
    if not conversation_id:
        return {"limit": limit, "has_more": False, "data": []}
    page, has_more = await end_users.exchanges_page(
        runtime_of(request).db, owner, conversation_id, limit=limit, first_id=first_id or None
    )
    return {
        "limit": limit,
        "has_more": has_more,
        "data": [exchange_json(bot, conversation_id, e) for e in page],
    }


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    rating: Literal["like", "dislike"] | None = None
    user: str = Field(..., min_length=1, max_length=MAX_USER)
    content: str | None = Field(None, max_length=2_000)


@router.post("/messages/{message_id}/feedbacks")
async def message_feedback(
    message_id: str, request: Request, principal: BotPrincipalDep
) -> dict[str, Any]:
    data = await parse_body(request, FeedbackIn)
    bot = await app_bot(request, principal)
    rating = {"like": "positive", "dislike": "negative"}.get(data.rating or "")
    await end_users.set_feedback(
        runtime_of(request).db,
        end_user(bot, principal, data.user),
        message_id,
        rating=rating,
        comment=data.content,
    )
    return {"result": "success"}


@router.get("/messages/{message_id}/suggested")
async def suggested(
    message_id: str,
    request: Request,
    principal: BotPrincipalDep,
    user: str | None = Query(None),
) -> dict[str, Any]:
    bot = await app_bot(request, principal)
    owner = end_user(bot, principal, check_user(user))
    answer: Message = await end_users.answer_of(runtime_of(request).db, owner, message_id)
    asked = {
        (e.question.content.strip().lower() if e.question else "")
        for e in await end_users.exchanges(runtime_of(request).db, owner, answer.conversation_id)
    }
    return {
        "result": "success",
        "data": [q for q in (bot.suggested_questions or []) if q.strip().lower() not in asked][:3],
    }


@router.get("/conversations")
async def list_conversations(
    request: Request,
    principal: BotPrincipalDep,
    user: str | None = Query(None),
    last_id: str | None = Query(None, max_length=100),
    limit: int = Query(20, ge=1, le=100),
    sort_by: Literal["created_at", "-created_at", "updated_at", "-updated_at"] = "-updated_at",
) -> dict[str, Any]:
    bot = await app_bot(request, principal)
    found, has_more = await end_users.list_conversations(
        runtime_of(request).db,
        end_user(bot, principal, check_user(user)),
        limit=limit,
        last_id=last_id or None,
        sort_by=sort_by,
    )
    return {
        "limit": limit,
        "has_more": has_more,
        "data": [conversation_json(bot, c) for c in found],
    }


class UserBodyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user: str | None = Field(None, max_length=MAX_USER)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(
    conversation_id: str, request: Request, principal: BotPrincipalDep
) -> Response:
    data = await parse_body(request, UserBodyIn) if await request.body() else UserBodyIn()
    bot = await app_bot(request, principal)
    await end_users.delete(
        runtime_of(request).db,
        end_user(bot, principal, data.user),
        conversation_id,
        principal=principal,
    )
    return Response(status_code=204)


class RenameIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, max_length=300)
    auto_generate: bool = False
    user: str | None = Field(None, max_length=MAX_USER)


@router.post("/conversations/{conversation_id}/name")
async def rename_conversation(
    conversation_id: str, request: Request, principal: BotPrincipalDep
) -> dict[str, Any]:
    data = await parse_body(request, RenameIn)
    bot = await app_bot(request, principal)
    owner = end_user(bot, principal, data.user)
    if data.auto_generate:
        first = next(
            (
                e.question
                for e in await end_users.exchanges(runtime_of(request).db, owner, conversation_id)
                if e.question is not None
            ),
            None,
        )
        name = " ".join((first.content if first else "New conversation").split())[:60]
    elif data.name and data.name.strip():
        name = data.name.strip()
    else:
        raise InvalidRequest("name is required when auto_generate is false")
    conversation = await end_users.rename(runtime_of(request).db, owner, conversation_id, name)
    return conversation_json(bot, conversation)


# ----------------------------------------------------------------------------- the app


@router.get("/parameters")
async def parameters(request: Request, principal: BotPrincipalDep) -> dict[str, Any]:
    bot = await app_bot(request, principal)
    answer = AnswerSettings.model_validate(bot.answer_settings or {})
    model = (
        runtime_of(request)
        .chat.models.resolve(ModelSettings.model_validate(bot.model_settings or {}))
        .model
    )
    suggested_questions = list(bot.suggested_questions or [])
    return {
        "opening_statement": bot.welcome_message or "",
        "suggested_questions": suggested_questions,
        "suggested_questions_after_answer": {"enabled": bool(suggested_questions)},
        "speech_to_text": {"enabled": False},
        "text_to_speech": {"enabled": False, "voice": "", "language": ""},
        "retriever_resource": {"enabled": answer.citations_enabled},
        "annotation_reply": {"enabled": False},
        "more_like_this": {"enabled": False},
        "sensitive_word_avoidance": {"enabled": False},
        "user_input_form": [],
        "file_upload": {
            "image": {
                "enabled": model.supports_images,
                "number_limits": 1,
                "detail": "high",
                "transfer_methods": ["local_file"],
            }
        },
        "system_parameters": {
            "file_size_limit": 15,
            "image_file_size_limit": MAX_IMAGE_BYTES // (1024 * 1024),
            "audio_file_size_limit": 0,
            "video_file_size_limit": 0,
            "workflow_file_upload_limit": 0,
        },
    }


@router.get("/meta")
async def meta(request: Request, principal: BotPrincipalDep) -> dict[str, Any]:
    await app_bot(request, principal)
    return {"tool_icons": {}}


@router.get("/info")
async def info(request: Request, principal: BotPrincipalDep) -> dict[str, Any]:
    bot = await app_bot(request, principal)
    return {"name": bot.name, "description": "", "tags": [], "mode": "chat", "author_name": ""}
