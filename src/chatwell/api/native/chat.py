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

from chatwell.api.deps import DbDep, PrincipalDep, RuntimeDep, WorkspacePrincipalDep
from chatwell.api.dialect import caller_of
from chatwell.api.encoders import citation_json, turn_failure
from chatwell.api.native.leads import LeadOut
from chatwell.api.native.schemas import ListOut
from chatwell.api.sse import frame, sse_response
from chatwell.chat.answer import Answer
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.errors import InvalidRequest
from chatwell.llm.base import ModelImage
from chatwell.services import bots, conversations
from chatwell.services.conversations import iso

router = APIRouter(tags=["chat"])
CANCELLED = {"cancelled": 499}  # the client went away (nginx's status for it)


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
    """The native name and JSON body of an event."""
    match event:
        case ev.Status(stage=stage):
            return "status", {"stage": stage}
        case ev.Delta(text=text):
            return "delta", {"text": text}
        case ev.Replace(text=text):
            return "replace", {"text": text}
        case ev.Notice():
            return "notice", notice_json(event)
        case ev.Citations(citations=citations):
            return "citations", {"citations": [citation_json(c) for c in citations]}
        case ev.Usage():
            return "usage", asdict(event)
        case ev.Done():
            return "done", {
                "conversation_id": _str(event.conversation_id),
                "message_id": _str(event.message_id),
                "answered": event.answered,
            }
        case ev.Error(code=code, message=message):
            return "error", {"code": code, "message": message}
        case ev.ToolCall():  # only for callers that offer tools, which this door does not
            return "tool_call", asdict(event)


def notice_json(notice: ev.Notice) -> dict[str, Any]:
    return {"code": notice.code, "level": notice.level, "message": notice.message}


def answer_json(answer: Answer) -> dict[str, Any]:
    """The native one-piece reply: the answer and everything the stream would have said."""
    error = answer.error
    return {
        "answer": answer.text,
        "conversation_id": _str(answer.conversation_id),
        "message_id": _str(answer.message_id),
        "citations": [citation_json(c) for c in answer.citations],
        "usage": asdict(answer.usage) if answer.usage else None,
        "notices": [notice_json(n) for n in answer.notices],
        "error": {"code": error.code, "message": error.message} if error else None,
        "answered": answer.answered,
    }


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


@router.post("/v1/bots/{bot_id}/chat", responses={200: {"content": {"text/event-stream": {}}}})
async def chat(
    bot_id: str, data: ChatIn, request: Request, principal: PrincipalDep, runtime: RuntimeDep
) -> Any:
    opened = await open_turn(
        runtime.chat,
        caller_of(request, principal),
        door="native",
        bot=bot_id,
        question=data.message,
        private=data.private,
        conversation_id=data.conversation_id,
        metadata=data.metadata,
        image=check_image(data.image_data, data.image_media_type),
    )
    turn = opened.turn
    if not data.stream:
        answer = await turn.collect()
        status = 200 if answer.error is None else turn_failure(answer.error, statuses=CANCELLED)[1]
        return Response(
            content=_json(answer_json(answer)), media_type="application/json", status_code=status
        )

    async def frames() -> AsyncIterator[str]:
        async for event in turn.events():
            name, payload = event_payload(event)
            yield frame(payload, event=name)

    return sse_response(frames())


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
