"""Human handoff: agents' presence, the waiting queue, agent replies and resolution.

States of a conversation: ``open`` (the bot answers) → ``pending_human`` (a visitor asked for a
person, or the bot offered one; the bot stays silent) → ``human`` (an agent replied; still silent)
→ ``resolved`` (the agent closed it; the bot answers again and the conversation reopens as
``open`` on the visitor's next message). A handoff is only taken while an agent of the workspace
is online (presence refreshed within ``PRESENCE_SECONDS``); otherwise the visitor is told the
bot's offline message and offered the contact form, and the bot keeps answering.

Agents are API keys acting for a person or signed-in dashboard members; presence is kept per key
(``agent_presence``) and per user (``user_presence``), and either counts. An agent's message is stored with role ``agent`` and the key's label in its metadata. Everything lives in
the database, so every process sees the same queue and presence. Once a reply or a change of state
has committed, a hint goes to the conversation's listeners on every process (``bus``; the
visitor's event stream); the hint failing never fails the agent's request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select

from chatwell.domain.auth import Principal
from chatwell.domain.models import ConversationStatus, HandoffSettings, MessageRole
from chatwell.errors import Conflict, Forbidden, InvalidRequest
from chatwell.services import notifications
from chatwell.services.conversation_bus import ConversationBus
from chatwell.services.conversations import conversation_not_found, parse_uuid
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.services.sessions import visitor_owns
from chatwell.storage.database import Database
from chatwell.storage.tables import (
    AgentPresence,
    Bot,
    Conversation,
    Lead,
    Membership,
    Message,
    UserPresence,
    utcnow,
)

PRESENCE_SECONDS = 60
# A handoff nobody has answered for this long is flagged "missed" in the inbox and the transcript.
MISSED_AFTER = timedelta(minutes=5)
STATUS_LABELS = {
    ConversationStatus.OPEN: "Bot answering",
    ConversationStatus.PENDING_HUMAN: "Waiting for a person",
    ConversationStatus.HUMAN: "With a person",
    ConversationStatus.RESOLVED: "Resolved",
}
HELD = (ConversationStatus.PENDING_HUMAN, ConversationStatus.HUMAN)
MAX_AGENT_MESSAGE = 8_000
# A visitor who insists on a person ("I want to talk to a human", "agent please").
ASKS_FOR_HUMAN = re.compile(
    r"\b(human|real person|a person|live agent|an agent|agent please|representative|operator|someone real)\b",
    re.IGNORECASE,
)


def is_held(status: str | None) -> bool:
    return status in HELD


# An explicit request ("talk to a person", "I want a human"), as good as pressing the button.
ASKS_EXPLICITLY = re.compile(
    r"\b(talk|speak|chat|connect)\b.{0,20}\b(human|person|agent|someone|representative|operator)\b"
    r"|\b(want|need|get)\b.{0,12}\b(human|real person|live agent|agent|representative|operator)\b"
    r"|^\W*(human|agent|operator|representative)( please)?\W*$",
    re.IGNORECASE,
)


def asks_for_human(text: str) -> bool:
    return bool(ASKS_FOR_HUMAN.search(text))


def asks_explicitly(text: str) -> bool:
    return bool(ASKS_EXPLICITLY.search(text))


def status_label(status: str | None) -> str:
    """What a person reads for a conversation's state (never the raw code)."""
    return STATUS_LABELS.get(status, (status or "").replace("_", " ").capitalize())  # type: ignore[call-overload]


def is_missed(conversation: Conversation) -> bool:
    """Still waiting for a first agent reply long after the visitor asked for a person."""
    return (
        conversation.status == ConversationStatus.PENDING_HUMAN
        and utcnow() - conversation.updated_at >= MISSED_AFTER
    )


@dataclass(frozen=True, slots=True)
class Pulse:
    """What every open dashboard page shows of the handoff queue: how many wait, and when the
    last visitor message in a held conversation came (a change means "alert the agent")."""

    waiting: int
    held: int
    latest_visitor_message: str | None


async def pulse(db: Database, workspace_id: uuid.UUID) -> Pulse:
    async with db.read() as session:
        counts = dict(
            (
                await session.execute(
                    select(Conversation.status, func.count())
                    .where(
                        Conversation.workspace_id == workspace_id,
                        Conversation.status.in_([s.value for s in HELD]),
                    )
                    .group_by(Conversation.status)
                )
            ).all()
        )
        latest = await session.scalar(
            select(func.max(Message.created_at))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.workspace_id == workspace_id,
                Conversation.status.in_([s.value for s in HELD]),
                Message.role == MessageRole.USER,
            )
        )
    return Pulse(
        waiting=int(counts.get(ConversationStatus.PENDING_HUMAN, 0)),
        held=int(sum(counts.values())),
        latest_visitor_message=latest.isoformat() if latest else None,
    )


async def agents_online(db: Database, workspace_id: uuid.UUID) -> bool:
    since = utcnow() - timedelta(seconds=PRESENCE_SECONDS)
    async with db.read() as session:
        for table in (AgentPresence, UserPresence):
            count = await session.scalar(
                select(func.count())
                .select_from(table)
                .where(
                    table.workspace_id == workspace_id,
                    table.online.is_(True),
                    table.last_seen_at >= since,
                )
            )
            if count:
                return True
    return False


async def set_user_presence(
    db: Database, *, user_id: uuid.UUID, workspace_id: uuid.UUID, online: bool
) -> bool:
    """Record that a signed-in dashboard user is (still) online or has gone, in this workspace;
    returns whether any agent of the workspace is online."""
    async with db.write() as session:
        row = await session.get(UserPresence, user_id)
        if row is None:
            session.add(
                UserPresence(
                    user_id=user_id, workspace_id=workspace_id, online=online, last_seen_at=utcnow()
                )
            )
        else:
            row.workspace_id, row.online, row.last_seen_at = workspace_id, online, utcnow()
    return await agents_online(db, workspace_id)


async def set_presence(db: Database, *, principal: Principal, online: bool) -> bool:
    """Record that this agent is (still) online or has gone; returns whether any agent is online."""
    _require_workspace_key(principal)
    async with db.write() as session:
        row = await session.get(AgentPresence, principal.key_id)
        if row is None:
            row = AgentPresence(
                key_id=principal.key_id,
                workspace_id=principal.workspace_id,
                label=principal.label,
                online=online,
                last_seen_at=utcnow(),
            )
            session.add(row)
        else:
            row.online, row.last_seen_at, row.label = online, utcnow(), principal.label
    return await agents_online(db, principal.workspace_id)


async def user_online(db: Database, user_id: uuid.UUID, workspace_id: uuid.UUID) -> bool:
    """Whether this signed-in user marked themselves online in this workspace (and is still seen)."""
    since = utcnow() - timedelta(seconds=PRESENCE_SECONDS)
    async with db.read() as session:
        row = await session.get(UserPresence, user_id)
    return bool(
        row is not None
        and row.online
        and row.workspace_id == workspace_id
        and row.last_seen_at >= since
    )


def _require_workspace_key(principal: Principal) -> None:
    if principal.bot_id is not None:
        raise Forbidden("agents act with a workspace key", code="insufficient_scope")


async def request_handoff(
    db: Database,
    *,
    bot: Bot,
    conversation_id: uuid.UUID,
    session_id: str | None,
    bus: ConversationBus | None,
) -> tuple[str, bool]:
    """Move a conversation to ``pending_human`` when the bot hands off and an agent is online.

    Returns (status, agents available). ``session_id`` (the public door) must own the conversation.
    """
    settings = HandoffSettings.model_validate(bot.handoff_settings or {})
    if not settings.enabled:
        raise Forbidden("this bot does not hand off to humans", code="handoff_disabled")
    available = await agents_online(db, bot.workspace_id)
    async with db.write() as session:
        conversation = await session.get(Conversation, conversation_id)
        if (
            conversation is None
            or conversation.bot_id != bot.id
            or (session_id is not None and not visitor_owns(conversation, session_id=session_id))
        ):
            raise conversation_not_found()
        taken = available and not is_held(conversation.status)
        if taken:
            conversation.status = ConversationStatus.PENDING_HUMAN
            conversation.updated_at = utcnow()
        elif not available:
            await notifications.enqueue_offline_request(session, bot=bot, conversation=conversation)
    if taken:
        await _notify(bus, conversation.id, {"type": "status", "status": conversation.status})
    return conversation.status, available


async def queue(
    db: Database, *, principal: Principal, limit: int = 50, cursor: str | None = None
) -> Page[Conversation]:
    """Conversations waiting for or held by a person, oldest activity first within the page order."""
    _require_workspace_key(principal)
    query = select(Conversation).where(
        Conversation.workspace_id == principal.workspace_id,
        Conversation.status.in_([s.value for s in HELD]),
    )
    async with db.read() as session:
        rows = list(
            (
                await session.scalars(paginate(query, Conversation.id, limit=limit, cursor=cursor))
            ).all()
        )
    return page_of(rows, limit, lambda c: c.id)


async def _held_conversation(
    session: object, principal: Principal, conversation_id: str
) -> Conversation:
    cid = parse_uuid(conversation_id, conversation_not_found())
    conversation = await session.get(Conversation, cid)  # type: ignore[attr-defined]
    if conversation is None or conversation.workspace_id != principal.workspace_id:
        raise conversation_not_found()
    return conversation


async def agent_reply(
    db: Database,
    *,
    principal: Principal,
    conversation_id: str,
    content: str,
    bus: ConversationBus | None,
) -> Message:
    """An agent's message into the conversation; the conversation is then held by a human."""
    _require_workspace_key(principal)
    text = content.strip()
    if not text:
        raise InvalidRequest("content must not be empty")
    if len(text) > MAX_AGENT_MESSAGE:
        raise InvalidRequest(
            f"content is longer than {MAX_AGENT_MESSAGE} characters", code="message_too_long"
        )
    async with db.write() as session:
        conversation = await _held_conversation(session, principal, conversation_id)
        if conversation.status == ConversationStatus.RESOLVED:
            raise Conflict("this conversation is resolved", code="conversation_resolved")
        conversation.status = ConversationStatus.HUMAN
        conversation.updated_at = utcnow()
        message = Message(
            conversation_id=conversation.id,
            role=MessageRole.AGENT,
            content=text,
            metadata_={"agent": principal.label, "agent_key_id": str(principal.key_id)},
        )
        session.add(message)
        await session.flush()
    await _notify(bus, message.conversation_id, {"type": "message", "message_id": str(message.id)})
    return message


async def resolve(
    db: Database, *, principal: Principal, conversation_id: str, bus: ConversationBus | None
) -> Conversation:
    _require_workspace_key(principal)
    async with db.write() as session:
        conversation = await _held_conversation(session, principal, conversation_id)
        conversation.status = ConversationStatus.RESOLVED
        conversation.updated_at = utcnow()
    await _notify(bus, conversation.id, {"type": "status", "status": conversation.status})
    return conversation


async def _notify(
    bus: ConversationBus | None, conversation_id: uuid.UUID, payload: dict[str, str]
) -> None:
    """After the commit: listeners then read what they are told of (publish never raises)."""
    if bus is not None:
        await bus.publish(conversation_id, payload)


async def assign(
    db: Database,
    *,
    principal: Principal,
    conversation_id: str,
    user_id: uuid.UUID | None,
    bus: ConversationBus | None,
) -> Conversation:
    """Take a conversation (``user_id`` = yourself), transfer it to another member of the
    workspace, or release it (``None``)."""
    _require_workspace_key(principal)
    async with db.write() as session:
        conversation = await _held_conversation(session, principal, conversation_id)
        if user_id is not None:
            member = await session.get(
                Membership, {"workspace_id": principal.workspace_id, "user_id": user_id}
            )
            if member is None:
                raise InvalidRequest(
                    "that person is not a member of this workspace", code="not_a_member"
                )
        conversation.assigned_user_id = user_id
    await _notify(bus, conversation.id, {"type": "status", "status": conversation.status})
    return conversation


async def visitor_wrote(
    bus: ConversationBus | None, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> None:
    """A visitor's message was stored in a held conversation: the agents' live pages read it."""
    await _notify(bus, conversation_id, {"type": "message", "message_id": str(message_id)})


async def typing(bus: ConversationBus | None, conversation_id: uuid.UUID, *, who: str) -> None:
    """Someone (``visitor`` or ``agent``) is typing in this conversation: a hint, stored nowhere."""
    await _notify(bus, conversation_id, {"type": "typing", "who": who})


@dataclass(frozen=True, slots=True)
class VisitorContext:
    """What an agent sees beside a conversation: where the visitor is, what they left, and their
    earlier conversations with the same bot (same anonymous session)."""

    page_url: str | None
    leads: list[Lead]
    previous: list[Conversation]


async def visitor_context(db: Database, conversation: Conversation) -> VisitorContext:
    async with db.read() as session:
        leads: list[Lead] = []
        previous: list[Conversation] = []
        owned = [Lead.conversation_id == conversation.id]
        if conversation.session_id:
            # The same visitor: the same session id in the same namespace (services.sessions).
            same_session = (
                Conversation.bot_id == conversation.bot_id,
                Conversation.session_scope == conversation.session_scope,
                Conversation.session_id == conversation.session_id,
            )
            earlier = select(Conversation.id).where(*same_session)
            owned.append(Lead.conversation_id.in_(earlier))
            previous = list(
                (
                    await session.scalars(
                        select(Conversation)
                        .where(*same_session, Conversation.id != conversation.id)
                        .order_by(Conversation.created_at.desc())
                        .limit(10)
                    )
                ).all()
            )
        leads = list(
            (
                await session.scalars(
                    select(Lead)
                    .where(Lead.workspace_id == conversation.workspace_id, or_(*owned))
                    .order_by(Lead.created_at.desc())
                    .limit(5)
                )
            ).all()
        )
        page_url = (conversation.metadata_ or {}).get("page_url")
        if page_url is None:  # the newest page the visitor wrote from
            page_url = await session.scalar(
                select(Message.metadata_["page_url"].as_string())
                .where(Message.conversation_id == conversation.id, Message.role == MessageRole.USER)
                .order_by(Message.created_at.desc())
                .limit(1)
            )
    return VisitorContext(
        page_url=page_url if isinstance(page_url, str) else None, leads=leads, previous=previous
    )
