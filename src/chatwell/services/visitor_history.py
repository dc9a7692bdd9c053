"""A widget visitor's own conversation: who owns it, its history, and that history followed live.

A visitor proves ownership with the anonymous session id that opened the conversation
(``sessions.visitor_owns``); any other session gets "not found", which does not say whether the
conversation exists. The door counts the reads against its limits and checks the origin.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select

from chatwell.domain.models import MessageRole
from chatwell.errors import ChatwellError, NotFound
from chatwell.services import bots, conversations, sessions
from chatwell.services.conversation_bus import Subscription
from chatwell.services.conversations import parse_uuid
from chatwell.services.sessions import conversation_not_found, visitor_owns
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Conversation, Message

# The live history re-reads the conversation after this long without a hint, in case one was lost.
RESYNC_SECONDS = 15.0


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


async def visitor_conversation(
    db: Database, *, conversation_id: str, session_id: str
) -> tuple[Conversation, Bot]:
    """The visitor's own conversation and its bot (another session's is reported missing)."""
    cid = conversations.parse_uuid(conversation_id, conversations.conversation_not_found())
    async with db.read() as session:
        conversation = await session.get(Conversation, cid) if cid else None
        bot = await bots.find_bot(session, conversation.bot_id) if conversation else None
    if bot is None or conversation is None:
        raise conversations.conversation_not_found()
    if not sessions.visitor_owns(conversation, session_id=session_id):
        raise conversations.conversation_not_found()
    return conversation, bot


async def visitor_history(
    db: Database, *, conversation_id: str, session_id: str, after: str | None
) -> tuple[Conversation, list[Message], Bot | None]:
    """The visitor's conversation, its messages after ``after``, and its bot."""
    conversation, messages = await session_messages(
        db, conversation_id=conversation_id, session_id=session_id, after=after
    )
    async with db.read() as session:
        bot = await bots.find_bot(session, conversation.bot_id)
    return conversation, messages, bot


@dataclass(frozen=True, slots=True)
class NewMessage:
    message: Message


@dataclass(frozen=True, slots=True)
class StatusChanged:
    status: str


@dataclass(frozen=True, slots=True)
class AgentTyping:
    pass


HistoryUpdate = NewMessage | StatusChanged | AgentTyping


async def follow_history(
    db: Database,
    hints: Subscription,
    conversation: Conversation,
    messages: list[Message],
    *,
    session_id: str,
    after: str | None,
    deadline: float,
) -> AsyncIterator[HistoryUpdate]:
    """What is new since ``after``, until ``deadline`` (``time.monotonic``): read, then read
    again on each hint (and when quiet for ``RESYNC_SECONDS``); the first read again comes at
    once, for what was stored between the first read and the subscription."""
    cursor, shown_status, waiting = after, None, False
    while True:
        for m in messages:
            yield NewMessage(m)
            cursor = str(m.id)
        messages = []
        if conversation.status != shown_status:
            shown_status = conversation.status
            yield StatusChanged(shown_status)
        if waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            heard = await hints.take(min(remaining, RESYNC_SECONDS))
            if any(h.get("type") == "typing" and h.get("who") == "agent" for h in heard):
                yield AgentTyping()
            if heard and all(h.get("type") == "typing" for h in heard):
                continue  # nothing was stored: no need to read again
        waiting = True
        try:
            conversation, messages = await session_messages(
                db, conversation_id=hints.conversation_id, session_id=session_id, after=cursor
            )
        except ChatwellError:  # deleted meanwhile, or the database is down: the client reconnects
            return
