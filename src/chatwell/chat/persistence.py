"""The short transactions around a chat turn: the user's message (opening or continuing the
conversation) before the model streams, the reply, its metering and charge after. No transaction
is ever open while a model streams."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chatwell.domain.events import HistoryTurn
from chatwell.domain.ids import new_id
from chatwell.domain.models import ConversationStatus, MessageRole
from chatwell.services.sessions import conversation_not_found
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Conversation, Message, UsageEvent, Workspace, utcnow

MAX_HISTORY_TURNS = 50
_SPOKEN = (MessageRole.USER, MessageRole.ASSISTANT, MessageRole.AGENT)
#: A user message's metadata key: the message its turn followed when that was not the latest
#: (a branch, OpenAI's previous_response_id naming an earlier response).
FOLLOWS = "follows_message_id"
#: How far back a branch's history is read (messages of the conversation, all branches).
MAX_BRANCH_MESSAGES = 1000


def _branch_history(
    session: Session, conversation_id: uuid.UUID, follows: uuid.UUID
) -> list[HistoryTurn]:
    """The turns a branch rests on: back from ``follows`` message by message, and from a question
    that itself followed an earlier message, on from that one (not the other branches between)."""
    followed = session.get(Message, follows)
    if followed is None or followed.conversation_id != conversation_id:
        raise conversation_not_found()
    rows = session.execute(
        select(Message.id, Message.role, Message.content, Message.error_code, Message.metadata_)
        .where(
            Message.conversation_id == conversation_id,
            Message.role.in_(_SPOKEN),
            Message.created_at <= followed.created_at,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(MAX_BRANCH_MESSAGES)
    ).all()
    at = {r.id: n for n, r in enumerate(rows)}
    chain: list[HistoryTurn] = []
    n = at.get(follows, len(rows))
    while n < len(rows) and len(chain) < MAX_HISTORY_TURNS:
        row = rows[n]
        if row.content and row.error_code is None:
            role = "user" if row.role == MessageRole.USER else "assistant"
            chain.append(HistoryTurn(role, row.content))
        jump = _uuid((row.metadata_ or {}).get(FOLLOWS)) if row.role == MessageRole.USER else None
        # Only ever further back: a jump that does not lead to an earlier message goes on by one.
        n = max(n + 1, at.get(jump, n + 1)) if jump else n + 1
    return chain[::-1]


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:  # a client's own metadata may hold anything under any key
        return None


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
    follows_message_id: uuid.UUID | None = None,
) -> StartedTurn:
    """Find or open the conversation and save the user's message, in one short transaction.

    ``follows_message_id``: the history ends at this message of the conversation (a turn that
    branches from an earlier exchange), not at the latest one.

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
        elif follows_message_id is not None:
            history = _branch_history(session, conversation.id, follows_message_id)
        else:
            rows = (
                session.execute(
                    select(Message.role, Message.content)
                    .where(
                        Message.conversation_id == conversation.id,
                        Message.role.in_(_SPOKEN),
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
        stored = metadata
        if follows_message_id is not None:  # where its branch goes on from (_branch_history)
            stored = {**metadata, FOLLOWS: str(follows_message_id)}
        message = Message(
            conversation_id=conversation.id,
            role=MessageRole.USER,
            content=question,
            image=image,
            metadata_=stored or None,
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
