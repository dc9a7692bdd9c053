"""Native chat and conversation endpoints: the event stream as ``event: <type>`` SSE, or one JSON.

Event data (one JSON object each): ``status {stage}``, ``delta {text}``, ``replace {text}``,
``notice {code, level, message}``, ``citations {citations: [...]}``, ``usage {prompt_tokens,
completion_tokens, model, cost}``, ``done {conversation_id, message_id}``, ``error {code, message}``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatwell.api.deps import DbDep, PrincipalDep, WorkspacePrincipalDep
from chatwell.api.dialect import TURN_ERROR_STATUS, UPSTREAM_FAILURE_STATUS, admit_keyed_chat
from chatwell.api.native.leads import LeadOut
from chatwell.api.native.schemas import ListOut
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import ChatRequest, ChatService, Turn
from chatwell.domain import events as ev
from chatwell.errors import InvalidRequest
from chatwell.llm.base import ModelImage
from chatwell.services import bots, conversations, sessions
from chatwell.services.conversations import iso
from chatwell.services.sessions import SessionRef

router = APIRouter(tags=["chat"])


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(..., min_length=1, max_length=8_000)
    conversation_id: uuid.UUID | None = None
    stream: bool = True
    private: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=50)
    image_data: str | None = Field(
        None, description="Base64 image (no data: prefix), for models that take images."
    )
    image_media_type: Literal["image/jpeg", "image/png", "image/webp"] | None = None

    @model_validator(mode="after")
    def _image(self) -> ChatIn:
        check_image(self.image_data, self.image_media_type)
        return self


def check_image(data: str | None, media_type: str | None) -> ModelImage | None:
    """A validated image, or None; raises ValueError (a 400) for a half-given or broken one."""
    if data is None and media_type is None:
        return None
    if data is None or media_type is None:
        raise ValueError("image_data and image_media_type go together")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image_data is not valid base64") from None
    return ModelImage(data, media_type)


def event_payload(event: ev.ChatEvent) -> tuple[str, dict[str, Any]]:
    """The native name and JSON body of an event (other dialects reuse the JSON of citations)."""
    if isinstance(event, ev.Status):
        return "status", {"stage": event.stage}
    if isinstance(event, ev.Delta):
        return "delta", {"text": event.text}
    if isinstance(event, ev.Replace):
        return "replace", {"text": event.text}
    if isinstance(event, ev.Notice):
        return "notice", {"code": event.code, "level": event.level, "message": event.message}
    if isinstance(event, ev.Citations):
        return "citations", {"citations": [citation_json(c) for c in event.citations]}
    if isinstance(event, ev.Usage):
        return "usage", asdict(event)
    if isinstance(event, ev.Done):
        return "done", {
            "conversation_id": _str(event.conversation_id),
            "message_id": _str(event.message_id),
            "answered": event.answered,
        }
    assert isinstance(event, ev.Error)
    return "error", {"code": event.code, "message": event.message}


def citation_json(c: ev.Citation) -> dict[str, Any]:
    return {
        "index": c.index,
        "source_id": str(c.source_id),
        "title": c.title,
        "url": c.url,
        "page": c.page,
        "score": c.score,
        "snippet": c.snippet,
    }


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


async def collect(turn: Turn) -> dict[str, Any]:
    """Run a turn to the end and sum it up (the non-streaming reply of every dialect)."""
    text: list[str] = []
    summary: dict[str, Any] = {
        "answer": "",
        "conversation_id": _str(turn.conversation_id),
        "message_id": None,
        "citations": [],
        "usage": None,
        "notices": [],
        "error": None,
        "answered": None,
    }
    async for event in turn.events():
        if isinstance(event, ev.Delta):
            text.append(event.text)
        elif isinstance(event, ev.Replace):
            text = [event.text]
        elif isinstance(event, ev.Citations):
            summary["citations"] = [citation_json(c) for c in event.citations]
        elif isinstance(event, ev.Usage):
            summary["usage"] = asdict(event)
        elif isinstance(event, ev.Notice):
            summary["notices"].append(event_payload(event)[1])
        elif isinstance(event, ev.Done):
            summary["message_id"] = _str(event.message_id)
            summary["answered"] = event.answered
        elif isinstance(event, ev.Error):
            summary["error"] = {"code": event.code, "message": event.message}
    summary["answer"] = "".join(text)
    return summary


def chat_service(request: Request) -> ChatService:
    return request.app.state.chat


@router.post("/v1/bots/{bot_id}/chat", responses={200: {"content": {"text/event-stream": {}}}})
async def chat(
    bot_id: str, data: ChatIn, request: Request, principal: PrincipalDep, db: DbDep
) -> Any:
    bot = await bots.get_bot(db, principal=principal, ref=bot_id)
    await admit_keyed_chat(request, bot, principal)
    ref = (
        SessionRef(None, None)
        if data.private
        else await sessions.resolve_session(
            db, bot=bot, door="native", principal=principal, conversation_id=data.conversation_id
        )
    )
    turn = await chat_service(request).start(
        ChatRequest(
            bot=bot,
            question=data.message,
            channel="native",
            conversation_id=ref.conversation_id,
            session_id=ref.session_id,
            session_scope=ref.scope,
            private=data.private,
            api_key_id=principal.key_id if principal.key_id.int else None,
            client_ip=request.client.host if request.client else None,
            metadata=data.metadata,
            image=check_image(data.image_data, data.image_media_type),
        )
    )
    if not data.stream:
        summary = await collect(turn)
        status = 200 if summary["error"] is None else _status_of(summary["error"]["code"])
        return Response(content=_json(summary), media_type="application/json", status_code=status)

    async def frames() -> AsyncIterator[str]:
        async for event in turn.events():
            name, payload = event_payload(event)
            yield frame(payload, event=name)

    return sse_response(frames())


def _status_of(code: str) -> int:
    return {**TURN_ERROR_STATUS, "cancelled": 499}.get(code, UPSTREAM_FAILURE_STATUS)


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value, ensure_ascii=False).encode()


# ----------------------------------------------------------------------------- conversations


class MessageOut(BaseModel):
    id: uuid.UUID
    role: str
    content: str
    citations: list[dict[str, Any]] | None
    feedback: str | None
    error: dict[str, str] | None
    metadata: dict[str, Any] | None = None
    created_at: str


class ConversationOut(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    channel: str
    status: str
    title: str | None
    session_id: str | None
    session_scope: str | None = Field(
        None,
        description="The namespace session_id belongs to: "
        "<door>:public, <door>:key:<key id> or <door>:workspace:<workspace id>.",
    )
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    messages: list[MessageOut] | None = None


def conversation_out(c: Any, messages: list[Any] | None = None) -> ConversationOut:
    return ConversationOut(
        id=c.id,
        bot_id=c.bot_id,
        channel=c.channel,
        status=c.status,
        title=c.title,
        session_id=c.session_id,
        session_scope=c.session_scope,
        metadata=c.metadata_ or {},
        created_at=iso(c.created_at) or "",
        updated_at=iso(c.updated_at) or "",
        messages=None
        if messages is None
        else [
            MessageOut(
                id=m.id,
                role=m.role,
                content=m.content,
                citations=m.citations,
                feedback=m.feedback,
                error={"code": m.error_code, "message": m.error or ""} if m.error_code else None,
                metadata=m.metadata_,
                created_at=iso(m.created_at) or "",
            )
            for m in messages
        ],
    )


@router.get("/v1/conversations", response_model=ListOut[ConversationOut])
async def list_conversations(
    principal: PrincipalDep,
    db: DbDep,
    bot_id: str | None = Query(None, max_length=100),
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[ConversationOut]:
    bot_uuid = (await bots.get_bot(db, principal=principal, ref=bot_id)).id if bot_id else None
    page = await conversations.list_conversations(
        db, principal=principal, bot_id=bot_uuid, limit=limit, cursor=cursor
    )
    return ListOut.of(page, conversation_out)


class VisitorExportOut(BaseModel):
    session_id: str | None
    session_scope: str | None = None
    email: str | None
    conversations: list[ConversationOut]
    leads: list[LeadOut]


# Declared before ``/v1/conversations/{conversation_id}``, which would take "export" for an id.
@router.get("/v1/conversations/export", response_model=VisitorExportOut)
async def export_visitor(
    principal: WorkspacePrincipalDep,
    db: DbDep,
    session_id: str | None = Query(None, min_length=1, max_length=200),
    email: str | None = Query(None, min_length=3, max_length=320),
    session_scope: str | None = Query(None, min_length=1, max_length=120),
) -> VisitorExportOut:
    """A visitor's data (GDPR access request): the conversations of ``session_id`` in this
    workspace (only those of ``session_scope`` when given, e.g. ``chatbotiq:public`` for the
    widget) with their messages, and the leads with ``email`` or from those conversations."""
    if session_id is None and email is None:
        raise InvalidRequest("give session_id, email or both", code="missing_parameter")
    found = await conversations.export_visitor(
        db, principal=principal, session_id=session_id, email=email, session_scope=session_scope
    )
    return VisitorExportOut(
        session_id=session_id,
        session_scope=session_scope,
        email=email,
        conversations=[conversation_out(c, messages) for c, messages in found.conversations],
        leads=[LeadOut.of(lead) for lead in found.leads],
    )


@router.get("/v1/conversations/{conversation_id}", response_model=ConversationOut)
async def get_conversation(
    conversation_id: str, principal: PrincipalDep, db: DbDep
) -> ConversationOut:
    conversation, messages = await conversations.get_conversation(
        db, principal=principal, conversation_id=conversation_id
    )
    return conversation_out(conversation, messages)


@router.delete("/v1/conversations/{conversation_id}", status_code=204, response_class=Response)
async def delete_conversation(conversation_id: str, principal: PrincipalDep, db: DbDep) -> Response:
    await conversations.delete_conversation(
        db, principal=principal, conversation_id=conversation_id
    )
    return Response(status_code=204)


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["positive", "negative"]
    comment: str | None = Field(None, max_length=2_000)


@router.post("/v1/messages/{message_id}/feedback")
async def feedback(
    message_id: str, data: FeedbackIn, principal: PrincipalDep, db: DbDep
) -> dict[str, Any]:
    message = await conversations.set_feedback(
        db, principal=principal, message_id=message_id, rating=data.rating, comment=data.comment
    )
    return {
        "id": str(message.id),
        "feedback": message.feedback,
        "comment": message.feedback_comment,
    }
