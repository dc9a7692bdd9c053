"""Conversations and messages for the workspace: reading, searching and exporting them,
deleting them (GDPR) and feedback. A turn's own writes are ``chat.persistence``; a widget
visitor's own reads are ``services.visitor_history``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from chatwell.domain.auth import Principal
from chatwell.domain.models import ConversationStatus, MessageRole, Permission
from chatwell.errors import NotFound
from chatwell.services.keys import require
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.services.sessions import conversation_not_found
from chatwell.storage.database import Database
from chatwell.storage.tables import (
    Conversation,
    Lead,
    Message,
    UsageEvent,
    WebhookDelivery,
)


def parse_uuid(value: str | uuid.UUID | None, error: NotFound) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise error from None


# ------------------------------------------------------------------------------- reading & GDPR


async def _owned(session: Any, principal: Principal, conversation_id: str) -> Conversation:
    cid = parse_uuid(conversation_id, conversation_not_found())
    conversation = await session.get(Conversation, cid)
    if (
        conversation is None
        or conversation.workspace_id != principal.workspace_id
        or not principal.can_reach_bot(conversation.bot_id)
    ):
        raise conversation_not_found()
    return conversation


async def list_conversations(
    db: Database,
    *,
    principal: Principal,
    bot_id: uuid.UUID | None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Conversation]:
    require(principal, Permission.CONVERSATIONS_READ)
    query = select(Conversation).where(Conversation.workspace_id == principal.workspace_id)
    if principal.bot_id is not None:
        query = query.where(Conversation.bot_id == principal.bot_id)
    if bot_id is not None:
        query = query.where(Conversation.bot_id == bot_id)
    async with db.read() as session:
        rows = list(
            (
                await session.scalars(paginate(query, Conversation.id, limit=limit, cursor=cursor))
            ).all()
        )
    return page_of(rows, limit, lambda c: c.id)


async def conversations_between(
    db: Database,
    *,
    principal: Principal,
    bot_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    page: int,
    size: int,
) -> list[tuple[Conversation, list[Message]]]:
    """A page of a bot's conversations with their messages, newest first."""
    require(principal, Permission.CONVERSATIONS_READ)
    query = select(Conversation).where(
        Conversation.workspace_id == principal.workspace_id, Conversation.bot_id == bot_id
    )
    if start is not None:
        query = query.where(Conversation.created_at >= start)
    if end is not None:
        query = query.where(Conversation.created_at < end)
    query = (
        query.order_by(Conversation.created_at.desc(), Conversation.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    async with db.read() as session:
        return await _with_messages(session, list((await session.scalars(query)).all()))


async def _with_messages(
    session: Any, found: list[Conversation]
) -> list[tuple[Conversation, list[Message]]]:
    """Each conversation with its messages, oldest first."""
    result = []
    for conversation in found:
        messages = list(
            (
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation.id)
                    .order_by(Message.created_at, Message.id)
                )
            ).all()
        )
        result.append((conversation, messages))
    return result


async def get_conversation(
    db: Database, *, principal: Principal, conversation_id: str
) -> tuple[Conversation, list[Message]]:
    require(principal, Permission.CONVERSATIONS_READ)
    async with db.read() as session:
        conversation = await _owned(session, principal, conversation_id)
        messages = list(
            (
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation.id)
                    .order_by(Message.created_at, Message.id)
                )
            ).all()
        )
    return conversation, messages


@dataclass(slots=True)
class VisitorExport:
    """What a workspace holds about one visitor (a GDPR access request)."""

    conversations: list[tuple[Conversation, list[Message]]]
    leads: list[Lead]


async def export_visitor(
    db: Database,
    *,
    principal: Principal,
    session_id: str | None,
    email: str | None,
    session_scope: str | None = None,
) -> VisitorExport:
    """The conversations (with their messages) opened under ``session_id`` in the principal's
    workspace (only in the namespace ``session_scope`` when given: the same id in two doors or
    two apps is two people), and the leads left with ``email`` (any case) or from those
    conversations."""
    require(principal, Permission.CONVERSATIONS_READ)
    require(principal, Permission.LEADS_READ)
    async with db.read() as session:
        found: list[Conversation] = []
        if session_id is not None:
            query = select(Conversation).where(
                Conversation.workspace_id == principal.workspace_id,
                Conversation.session_id == session_id,
            )
            if session_scope is not None:
                query = query.where(Conversation.session_scope == session_scope)
            found = list(
                (
                    await session.scalars(query.order_by(Conversation.created_at, Conversation.id))
                ).all()
            )
        result = await _with_messages(session, found)
        matches = []
        if email is not None:
            matches.append(func.lower(Lead.email) == email.strip().lower())
        if found:
            matches.append(Lead.conversation_id.in_([c.id for c in found]))
        leads = (
            list(
                (
                    await session.scalars(
                        select(Lead)
                        .where(Lead.workspace_id == principal.workspace_id, or_(*matches))
                        .order_by(Lead.created_at, Lead.id)
                    )
                ).all()
            )
            if matches
            else []
        )
    return VisitorExport(result, leads)


async def delete_conversation(db: Database, *, principal: Principal, conversation_id: str) -> None:
    require(principal, Permission.CONVERSATIONS_WRITE)
    async with db.write() as session:
        conversation = await _owned(session, principal, conversation_id)
        # Usage rows stay (they hold no content) but lose their link to the deleted turns.
        await session.execute(
            update(UsageEvent)
            .where(UsageEvent.conversation_id == conversation.id)
            .values(conversation_id=None, message_id=None)
        )
        # Webhook payloads (a lead's ``lead.created``) stop naming it too; leads lose the link by
        # their foreign key (ON DELETE SET NULL).
        await _forget_in_webhooks(session, conversation)
        await session.execute(delete(Message).where(Message.conversation_id == conversation.id))
        await session.execute(delete(Conversation).where(Conversation.id == conversation.id))


async def _forget_in_webhooks(session: Any, conversation: Conversation) -> None:
    name = str(conversation.id)
    query = select(WebhookDelivery).where(
        WebhookDelivery.bot_id == conversation.bot_id,
        cast(WebhookDelivery.payload, String).like(f"%{name}%"),
    )
    for delivery in (await session.scalars(query)).all():
        delivery.payload = _without_value(delivery.payload, name)


def _without_value(value: Any, name: str) -> Any:
    """``value`` (JSON) with every string equal to ``name`` replaced by None."""
    if isinstance(value, dict):
        return {k: _without_value(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_value(v, name) for v in value]
    return None if value == name else value


async def set_feedback(
    db: Database, *, principal: Principal, message_id: str, rating: str, comment: str | None
) -> Message:
    require(principal, Permission.CONVERSATIONS_WRITE)
    not_found = NotFound("message not found", code="message_not_found")
    mid = parse_uuid(message_id, not_found)
    async with db.write() as session:
        message = await session.get(Message, mid)
        conversation = await session.get(Conversation, message.conversation_id) if message else None
        if (
            message is None
            or conversation is None
            or conversation.workspace_id != principal.workspace_id
            or not principal.can_reach_bot(conversation.bot_id)
            or message.role != MessageRole.ASSISTANT
        ):
            raise not_found
        message.feedback = rating
        message.feedback_comment = comment
        return message


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# ------------------------------------------------------------------------------- dashboard filters

HANDED_OFF = (
    ConversationStatus.PENDING_HUMAN,
    ConversationStatus.HUMAN,
    ConversationStatus.RESOLVED,
)
MAX_EXPORT = 5_000


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    """What the dashboard's Conversations page narrows the list to; ``end`` is exclusive."""

    bot_id: uuid.UUID | None = None
    start: datetime | None = None
    end: datetime | None = None
    feedback: str | None = None  # "positive" or "negative": some message carries that rating
    handed_off: bool = False  # pending_human, human or resolved, or answered by a person once
    text: str | None = None  # any message contains it (case-insensitive)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(principal: Principal, filters: ConversationFilter) -> Any:
    query = select(Conversation).where(Conversation.workspace_id == principal.workspace_id)
    if principal.bot_id is not None:
        query = query.where(Conversation.bot_id == principal.bot_id)
    if filters.bot_id is not None:
        query = query.where(Conversation.bot_id == filters.bot_id)
    if filters.start is not None:
        query = query.where(Conversation.created_at >= filters.start)
    if filters.end is not None:
        query = query.where(Conversation.created_at < filters.end)
    if filters.handed_off:
        # Still with a person, or a person answered once (a resolved conversation reopens as open).
        query = query.where(
            or_(
                Conversation.status.in_([s.value for s in HANDED_OFF]),
                Conversation.id.in_(
                    select(Message.conversation_id).where(Message.role == MessageRole.AGENT)
                ),
            )
        )
    if filters.feedback is not None:
        query = query.where(
            Conversation.id.in_(
                select(Message.conversation_id).where(Message.feedback == filters.feedback)
            )
        )
    if filters.text:
        query = query.where(
            Conversation.id.in_(
                select(Message.conversation_id).where(
                    Message.content.ilike(_like_pattern(filters.text), escape="\\")
                )
            )
        )
    return query


async def search_conversations(
    db: Database,
    *,
    principal: Principal,
    filters: ConversationFilter,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Conversation]:
    """A page of the workspace's conversations matching ``filters``, newest first."""
    require(principal, Permission.CONVERSATIONS_READ)
    async with db.read() as session:
        rows = list(
            (
                await session.scalars(
                    paginate(
                        _filtered(principal, filters), Conversation.id, limit=limit, cursor=cursor
                    )
                )
            ).all()
        )
    return page_of(rows, limit, lambda c: c.id)


async def export_conversations(
    db: Database, *, principal: Principal, filters: ConversationFilter, limit: int = MAX_EXPORT
) -> list[tuple[Conversation, list[Message]]]:
    """Up to ``limit`` matching conversations, newest first, each with its messages."""
    require(principal, Permission.CONVERSATIONS_READ)
    query = _filtered(principal, filters).order_by(Conversation.id.desc()).limit(limit)
    async with db.read() as session:
        return await _with_messages(session, list((await session.scalars(query)).all()))


# ------------------------------------------------------------------- one exchange (Responses API)


@dataclass(slots=True)
class Exchange:
    """A question and the answer that followed it (None while it is being written)."""

    conversation: Conversation
    question: Message
    answer: Message | None
    previous_question_id: uuid.UUID | None  # the exchange before it in the conversation


async def get_exchange(db: Database, *, principal: Principal, question_id: uuid.UUID) -> Exchange:
    """The exchange that starts with the user message ``question_id``, within the key's scope."""
    async with db.read() as session:
        question = await session.get(Message, question_id)
        if question is None or question.role != MessageRole.USER:
            raise NotFound("response not found", code="response_not_found")
        conversation = await session.get(Conversation, question.conversation_id)
        if (
            conversation is None
            or conversation.workspace_id != principal.workspace_id
            or not principal.can_reach_bot(conversation.bot_id)
        ):
            raise NotFound("response not found", code="response_not_found")
        later = (Message.created_at > question.created_at) | (
            (Message.created_at == question.created_at) & (Message.id > question.id)
        )
        answer = await session.scalar(
            select(Message)
            .where(
                Message.conversation_id == conversation.id,
                Message.role == MessageRole.ASSISTANT,
                later,
            )
            .order_by(Message.created_at, Message.id)
            .limit(1)
        )
        earlier = (Message.created_at < question.created_at) | (
            (Message.created_at == question.created_at) & (Message.id < question.id)
        )
        previous = await session.scalar(
            select(Message.id)
            .where(
                Message.conversation_id == conversation.id,
                Message.role == MessageRole.USER,
                earlier,
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
    return Exchange(conversation, question, answer, previous)


async def delete_exchange(db: Database, *, principal: Principal, question_id: uuid.UUID) -> None:
    """Delete a question and its answer from their conversation (the Responses API's DELETE)."""
    exchange = await get_exchange(db, principal=principal, question_id=question_id)
    ids = [exchange.question.id, *([exchange.answer.id] if exchange.answer else [])]

    def write(session: Session) -> None:
        session.execute(
            update(UsageEvent).where(UsageEvent.message_id.in_(ids)).values(message_id=None)
        )
        session.execute(delete(Message).where(Message.id.in_(ids)))
        session.execute(
            update(Conversation)
            .where(Conversation.id == exchange.conversation.id)
            .values(content_digest=None)
        )

    await db.write_now(write)
