"""One end user's conversations on a door that names its users (Dify's ``user``, Flowise's ``chatId``).

A door's end-user id is a client-chosen session id, so it means something only inside the
door's session namespace (``chatwell.services.sessions``: ``<door>:key:<key id>``,
``<door>:workspace:<id>`` or ``<door>:public``). Every function here takes that ``scope`` and
the end user's ``session_id`` and reaches only conversations stored under both, for one bot:
another user's conversation, another key's or another door's is "not found", never listed.
Which conversation a *turn* joins is not decided here but by ``sessions.resolve_session``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select

from chatwell.domain.auth import Principal
from chatwell.domain.models import MessageRole
from chatwell.errors import NotFound
from chatwell.services import conversations
from chatwell.services.conversations import parse_uuid
from chatwell.services.sessions import conversation_not_found
from chatwell.storage.database import Database
from chatwell.storage.tables import Conversation, Message

SortBy = Literal["created_at", "-created_at", "updated_at", "-updated_at"]


@dataclass(frozen=True, slots=True)
class EndUser:
    """Whose conversations: one bot, one session namespace, one end-user id."""

    bot_id: uuid.UUID
    scope: str
    session_id: str

    def owns(self, conversation: Conversation | None) -> bool:
        return (
            conversation is not None
            and conversation.bot_id == self.bot_id
            and conversation.session_scope == self.scope
            and conversation.session_id == self.session_id
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """A question and its answer, the unit Dify calls a message: its id is the answer's (the
    id feedback is given on), or the question's while no answer was stored."""

    question: Message | None
    answer: Message | None

    @property
    def id(self) -> uuid.UUID:
        message = self.answer or self.question
        assert message is not None
        return message.id

    @property
    def created_at(self) -> Any:
        message = self.question or self.answer
        assert message is not None
        return message.created_at


async def conversation_of(
    db: Database, user: EndUser, conversation_id: str | uuid.UUID
) -> Conversation:
    cid = parse_uuid(conversation_id, conversation_not_found())
    async with db.read() as session:
        conversation = await session.get(Conversation, cid)
    if not user.owns(conversation):
        raise conversation_not_found()
    assert conversation is not None
    return conversation


async def list_conversations(
    db: Database,
    user: EndUser,
    *,
    limit: int,
    last_id: str | None = None,
    sort_by: SortBy = "-updated_at",
) -> tuple[list[Conversation], bool]:
    """A page of the user's conversations after ``last_id`` (the last one of the previous page)
    in ``sort_by`` order; and whether more follow."""
    column = Conversation.updated_at if sort_by.endswith("updated_at") else Conversation.created_at
    descending = sort_by.startswith("-")
    query = select(Conversation).where(
        Conversation.bot_id == user.bot_id,
        Conversation.session_scope == user.scope,
        Conversation.session_id == user.session_id,
    )
    async with db.read() as session:
        if last_id:
            anchor = await session.get(
                Conversation,
                parse_uuid(
                    last_id,
                    NotFound("Last Conversation Not Exists.", code="last_conversation_not_found"),
                ),
            )
            if not user.owns(anchor):
                raise NotFound("Last Conversation Not Exists.", code="last_conversation_not_found")
            assert anchor is not None
            value = getattr(anchor, column.key)
            if descending:
                query = query.where(
                    (column < value) | ((column == value) & (Conversation.id < anchor.id))
                )
            else:
                query = query.where(
                    (column > value) | ((column == value) & (Conversation.id > anchor.id))
                )
        order = (
            (column.desc(), Conversation.id.desc())
            if descending
            else (column.asc(), Conversation.id.asc())
        )
        rows = list((await session.scalars(query.order_by(*order).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def exchanges(
    db: Database, user: EndUser, conversation_id: str | uuid.UUID
) -> list[Exchange]:
    """The conversation's questions with their answers, oldest first (a person's replies in a
    handed-off conversation count as answers)."""
    conversation = await conversation_of(db, user, conversation_id)
    async with db.read() as session:
        messages = list(
            (
                await session.scalars(
                    select(Message)
                    .where(
                        Message.conversation_id == conversation.id,
                        Message.role != MessageRole.SYSTEM,
                    )
                    .order_by(Message.created_at, Message.id)
                )
            ).all()
        )
    found: list[Exchange] = []
    for message in messages:
        if message.role == MessageRole.USER:
            found.append(Exchange(message, None))
        elif found and found[-1].answer is None:
            found[-1] = Exchange(found[-1].question, message)
        else:
            found.append(Exchange(None, message))
    return found


async def exchanges_page(
    db: Database,
    user: EndUser,
    conversation_id: str | uuid.UUID,
    *,
    limit: int,
    first_id: str | None = None,
) -> tuple[list[Exchange], bool]:
    """The latest ``limit`` exchanges before ``first_id`` (the oldest of the page the client
    has), oldest first; and whether older ones exist."""
    found = await exchanges(db, user, conversation_id)
    if first_id:
        ids = [str(e.id) for e in found]
        if first_id not in ids:
            raise NotFound("First Message Not Exists.", code="first_message_not_found")
        found = found[: ids.index(first_id)]
    return found[-limit:], len(found) > limit


async def rename(db: Database, user: EndUser, conversation_id: str, name: str) -> Conversation:
    async with db.write() as session:
        conversation = await session.get(
            Conversation, parse_uuid(conversation_id, conversation_not_found())
        )
        if not user.owns(conversation):
            raise conversation_not_found()
        assert conversation is not None
        conversation.title = name[:300]
        await session.flush()
        await session.refresh(conversation)
        return conversation


async def delete(
    db: Database, user: EndUser, conversation_id: str, *, principal: Principal
) -> None:
    """Delete the user's conversation with everything that names it (the GDPR deletion)."""
    conversation = await conversation_of(db, user, conversation_id)
    await conversations.delete_conversation(
        db, principal=principal, conversation_id=str(conversation.id)
    )


async def answer_of(db: Database, user: EndUser, message_id: str | uuid.UUID) -> Message:
    """One of the bot's answers in the user's conversations (anything else: ``message_not_found``)."""
    not_found = NotFound("Message Not Exists.", code="message_not_found")
    mid = parse_uuid(message_id, not_found)
    async with db.read() as session:
        message = await session.get(Message, mid)
        conversation = await session.get(Conversation, message.conversation_id) if message else None
    if message is None or message.role != MessageRole.ASSISTANT or not user.owns(conversation):
        raise not_found
    return message


async def set_feedback(
    db: Database,
    user: EndUser,
    message_id: str | uuid.UUID,
    *,
    rating: str | None,
    comment: str | None,
    keep_comment: bool = False,
) -> Message:
    """The user's rating (``positive``/``negative``; None clears it) and comment on an answer of
    theirs. ``keep_comment``: leave a stored comment as it is when ``comment`` is None."""
    answer = await answer_of(db, user, message_id)
    async with db.write() as session:
        message = await session.get(Message, answer.id)
        assert message is not None
        message.feedback = rating
        if comment is not None or not keep_comment:
            message.feedback_comment = comment
        return message


async def rated_conversation(db: Database, message_id: str) -> Conversation:
    """The conversation of a rated answer (``feedback_not_found`` for anything else)."""
    not_found = NotFound("feedback not found", code="feedback_not_found")
    mid = parse_uuid(message_id, not_found)
    async with db.read() as session:
        message = await session.get(Message, mid)
        conversation = await session.get(Conversation, message.conversation_id) if message else None
    if message is None or conversation is None or message.feedback is None:
        raise not_found
    return conversation


async def comment_on_rated(
    db: Database,
    *,
    bot_id: uuid.UUID,
    scopes: tuple[str, ...],
    message_id: str,
    comment: str | None,
    rating: str | None,
) -> tuple[Message, Conversation]:
    """Add a comment (and optionally change the rating) to an answer already rated through one of
    ``scopes``, named only by its id (Flowise's ``PUT /feedback/{id}`` carries no session)."""
    not_found = NotFound("feedback not found", code="feedback_not_found")
    mid = parse_uuid(message_id, not_found)
    async with db.write() as session:
        message = await session.get(Message, mid)
        conversation = await session.get(Conversation, message.conversation_id) if message else None
        if (
            message is None
            or conversation is None
            or conversation.bot_id != bot_id
            or conversation.session_scope not in scopes
            or message.feedback is None
        ):
            raise not_found
        if comment is not None:
            message.feedback_comment = comment
        if rating is not None:
            message.feedback = rating
        return message, conversation


async def session_messages(
    db: Database,
    *,
    bot_id: uuid.UUID,
    scopes: tuple[str, ...] = (),
    door: str | None = None,
    session_id: str | None,
    descending: bool = False,
    limit: int = 1000,
) -> list[tuple[Conversation, Message]]:
    """Messages of the bot's conversations in ``scopes``, or in every namespace of ``door`` (a
    workspace key's view), optionally one session's, with their conversation, in time order
    (Flowise's chat message history)."""
    in_scope = (
        Conversation.session_scope.like(f"{door}:%")
        if door is not None
        else Conversation.session_scope.in_(scopes)
    )
    query = (
        select(Conversation, Message)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Conversation.bot_id == bot_id, in_scope, Message.role != MessageRole.SYSTEM)
    )
    if session_id is not None:
        query = query.where(Conversation.session_id == session_id)
    order = (
        (Message.created_at.desc(), Message.id.desc())
        if descending
        else (Message.created_at, Message.id)
    )
    async with db.read() as session:
        return [
            (c, m) for c, m in (await session.execute(query.order_by(*order).limit(limit))).all()
        ]
