"""Conversations and messages: the short transactions around a chat turn, plus reading,
deleting (GDPR) and feedback. No transaction is ever open while a model streams."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from chatwell.domain.auth import Principal
from chatwell.domain.events import HistoryTurn
from chatwell.domain.ids import new_id
from chatwell.domain.models import ConversationStatus, MessageRole, Permission
from chatwell.errors import NotFound
from chatwell.services.keys import require
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.services.sessions import conversation_not_found, visitor_owns
from chatwell.storage.database import Database
from chatwell.storage.tables import (
    Bot,
    Conversation,
    Lead,
    Message,
    Source,
    UsageEvent,
    WebhookDelivery,
    Workspace,
    utcnow,
)

MAX_HISTORY_TURNS = 50


def parse_uuid(value: str | uuid.UUID | None, error: NotFound) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise error from None


@dataclass(slots=True)
class StartedTurn:
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    history: list[HistoryTurn]
    is_new: bool
    status: str = ConversationStatus.OPEN
    has_credit: bool = True  # the workspace's balance, read in the same transaction


async def start_turn(
    db: Database,
    *,
    bot: Bot,
    conversation_id: uuid.UUID | None,
    question: str,
    session_id: str | None,
    channel: str,
    api_key_id: uuid.UUID | None,
    client_ip: str | None,
    metadata: dict[str, Any],
    image: dict[str, Any] | None,
    session_scope: str | None = None,
) -> StartedTurn:
    """Find or open the conversation and save the user's message, in one short transaction.

    ``session_scope`` and ``session_id`` come from ``sessions.resolve_session``: a new
    conversation is stored under them, and an existing one continues only under its own scope
    and session id (anything else is ``conversation_not_found``, whoever the caller is)."""

    def write(session: Session) -> StartedTurn:
        conversation = None
        if conversation_id is not None:
            conversation = session.get(Conversation, conversation_id)
            if (
                conversation is None
                or conversation.bot_id != bot.id
                or conversation.session_scope != session_scope
                or conversation.session_id != session_id
            ):
                raise conversation_not_found()
        is_new = conversation is None
        if conversation is None:
            conversation = Conversation(
                workspace_id=bot.workspace_id,
                bot_id=bot.id,
                session_id=session_id,
                session_scope=session_scope,
                channel=channel,
                api_key_id=api_key_id,
                client_ip=client_ip,
                status=ConversationStatus.OPEN,
                title=question[:300],
                metadata_=metadata or {},
            )
            session.add(conversation)
            session.flush()
            history: list[HistoryTurn] = []
        else:
            rows = (
                session.execute(
                    select(Message.role, Message.content)
                    .where(
                        Message.conversation_id == conversation.id,
                        Message.role.in_(
                            [MessageRole.USER, MessageRole.ASSISTANT, MessageRole.AGENT]
                        ),
                        Message.error_code.is_(None),
                    )
                    .order_by(Message.created_at.desc(), Message.id.desc())
                    .limit(MAX_HISTORY_TURNS)
                )
            ).all()
            history = [
                HistoryTurn("user" if r.role == MessageRole.USER else "assistant", r.content)
                for r in reversed(rows)
                if r.content
            ]
            conversation.updated_at = utcnow()
            if (
                conversation.status == ConversationStatus.RESOLVED
            ):  # the visitor is back: the bot answers
                conversation.status = ConversationStatus.OPEN
        message = Message(
            conversation_id=conversation.id,
            role=MessageRole.USER,
            content=question,
            image=image,
            metadata_=metadata or None,
        )
        session.add(message)
        session.flush()
        balance = session.scalar(
            select(Workspace.credit_balance).where(Workspace.id == bot.workspace_id)
        )
        return StartedTurn(
            conversation.id,
            message.id,
            history,
            is_new,
            conversation.status,
            has_credit=balance is None or balance > 0,
        )

    return await db.write_now(write)


async def finish_turn(
    db: Database,
    *,
    bot: Bot,
    conversation_id: uuid.UUID | None,
    content: str,
    citations: list[dict[str, Any]] | None,
    error_code: str | None,
    error: str | None,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost: float,
    api_key_id: uuid.UUID | None,
    channel: str,
    message_id: uuid.UUID | None = None,
    answered: bool | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    digest: str | None = None,
) -> uuid.UUID | None:
    """Save the assistant's message (unless private: ``conversation_id`` None), meter the call
    (a usage row holds no content) and charge the workspace's credit, in one short transaction.
    ``tool_calls`` (the calls the model asked the caller to make) are kept in the message's
    metadata; ``digest`` becomes the conversation's content digest (see :func:`digest`).

    Idempotent for a given ``message_id``: a retry after a commit whose acknowledgement was lost
    (the connection dropped) finds the message and stores, meters and charges nothing twice.
    """

    def write(session: Session) -> uuid.UUID | None:
        stored_id = None
        if conversation_id is not None:
            stored_id = message_id or new_id()
            if session.get(Message, stored_id) is not None:
                return stored_id
            message = Message(
                id=stored_id,
                conversation_id=conversation_id,
                role=MessageRole.ASSISTANT,
                content=content,
                citations=citations,
                error_code=error_code,
                error=error,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                # answered False: the bot abstained (Analytics lists the question as
                # unanswered); tool_calls: what the model asked the caller to run.
                metadata_={
                    k: v
                    for k, v in (("answered", answered), ("tool_calls", tool_calls))
                    if v is not None
                }
                or None,
            )
            session.add(message)
            if digest is not None:
                session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(content_digest=digest)
                )
            session.flush()
        # Every answered request is metered (it is the request count of usage reports); a usage
        # row never holds content.
        session.add(
            UsageEvent(
                workspace_id=bot.workspace_id,
                bot_id=bot.id,
                api_key_id=api_key_id,
                conversation_id=conversation_id,
                message_id=stored_id,
                channel=channel,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=Decimal(str(cost)),
            )
        )
        if cost:
            session.execute(
                update(Workspace)
                .where(Workspace.id == bot.workspace_id, Workspace.credit_balance.is_not(None))
                .values(credit_balance=Workspace.credit_balance - Decimal(str(cost)))
            )
        return stored_id

    return await db.write_now(write)


_MARKER = re.compile(r"\s*\[\d+\]")


def digest(key: str, turns: Sequence[HistoryTurn]) -> str:
    """A conversation's content digest: the same for the history a stateless client resends as
    for the exchange stored, under one caller ``key`` (its API key and user). Citation markers
    and spacing don't count (a client may keep the streamed text, the store the final one)."""
    canonical = [[t.role, " ".join(_MARKER.sub("", t.content).split())] for t in turns]
    return hashlib.sha256(json.dumps([key, canonical], ensure_ascii=False).encode()).hexdigest()


async def conversation_by_digest(
    db: Database, *, bot_id: uuid.UUID, digest: str
) -> uuid.UUID | None:
    """The bot's conversation whose stored exchange has this content digest, if any."""
    async with db.read() as session:
        return await session.scalar(
            select(Conversation.id)
            .where(Conversation.bot_id == bot_id, Conversation.content_digest == digest)
            .order_by(Conversation.updated_at.desc())
            .limit(1)
        )


async def has_credit(db: Database, workspace_id: uuid.UUID) -> bool:
    balance = await db.read_now(
        lambda session: session.scalar(
            select(Workspace.credit_balance).where(Workspace.id == workspace_id)
        )
    )
    return balance is None or balance > 0


async def source_urls(db: Database, bot_id: uuid.UUID) -> list[str]:
    """The ``url`` of every source of the bot: the only links its answers may give. Kept for a few
    seconds per bot (a hot path: every answer asks); a source added meanwhile is rarely cited yet."""
    now = time.monotonic()
    cached = _SOURCE_URLS.get(bot_id)
    if cached is not None and now - cached[0] < SOURCE_URLS_TTL_SECONDS:
        return cached[1]
    # Not ``read_now``: a crawled site's bot has thousands of sources, too many rows to read on
    # the event loop's thread; this read is once per bot every few seconds anyway.
    async with db.read() as session:
        rows = await session.scalars(
            select(Source.url).where(Source.bot_id == bot_id, Source.url.is_not(None))
        )
        urls = [url for url in rows if url]
    _SOURCE_URLS[bot_id] = (now, urls)
    if len(_SOURCE_URLS) > 10_000:
        _SOURCE_URLS.pop(next(iter(_SOURCE_URLS)))
    return urls


def forget_source_urls(bot_id: uuid.UUID) -> None:
    """The bot's sources changed (in this process): read its URLs afresh on the next answer."""
    _SOURCE_URLS.pop(bot_id, None)


SOURCE_URLS_TTL_SECONDS = 10.0
_SOURCE_URLS: dict[uuid.UUID, tuple[float, list[str]]] = {}


async def session_messages(
    db: Database, *, conversation_id: str, session_id: str, after: str | None = None
) -> tuple[Conversation, list[Message]]:
    """A public conversation's messages for the visitor session that opened it (anyone else, and
    every keyed conversation: not found), optionally only those after the message ``after`` (polling)."""
    cid = parse_uuid(conversation_id, conversation_not_found())
    async with db.read() as session:
        conversation = await session.get(Conversation, cid)
        if not visitor_owns(conversation, session_id=session_id):
            raise conversation_not_found()
        assert conversation is not None
        query = select(Message).where(
            Message.conversation_id == conversation.id, Message.role != MessageRole.SYSTEM
        )
        if after is not None:
            after_id = parse_uuid(after, NotFound("message not found", code="message_not_found"))
            anchor = await session.get(Message, after_id)
            if anchor is None or anchor.conversation_id != conversation.id:
                raise NotFound("message not found", code="message_not_found")
            query = query.where(
                (Message.created_at > anchor.created_at)
                | ((Message.created_at == anchor.created_at) & (Message.id > anchor.id))
            )
        messages = list(
            (await session.scalars(query.order_by(Message.created_at, Message.id))).all()
        )
    return conversation, messages


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


async def set_session_feedback(
    db: Database, *, session_id: str, message_id: str, rating: str | None
) -> Message:
    """A visitor's thumbs up/down (None clears it) on an answer of a conversation their session owns."""
    not_found = NotFound("message not found", code="message_not_found")
    mid = parse_uuid(message_id, not_found)
    async with db.write() as session:
        message = await session.get(Message, mid)
        conversation = await session.get(Conversation, message.conversation_id) if message else None
        if (
            message is None
            or not visitor_owns(conversation, session_id=session_id)
            or message.role != MessageRole.ASSISTANT
        ):
            raise not_found
        message.feedback = rating
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
