"""Session namespaces: which conversation a turn joins, for every door.

A client-chosen session id (the developer API's ``session_id``, Chatbase's and the chatbots API's
``conversationId``, the widget's ``session_id``) means something only *inside the door and the
caller that chose it*. ``user-42`` of one app, ``user-42`` of another key and ``user-42`` typed by
an anonymous visitor are three different people. So every conversation carries a
``session_scope`` next to its ``session_id``:

==========================================  =========================================
caller                                      ``session_scope``
==========================================  =========================================
no key (a public door: the widget)          ``<door>:public``
a bot-scoped key                            ``<door>:key:<key id>``
a workspace key (or a signed-in person)     ``<door>:workspace:<workspace id>``
==========================================  =========================================

Rules (:func:`resolve_session` applies them; ``chat.persistence.start_turn`` re-checks the result
in its write transaction, so a door that skips this module can only open new conversations):

- A client session id continues the latest conversation of the bot under *the same scope* and
  id, never one of another door, another key or a visitor.
- A conversation named by its id (a server-issued UUID) continues only for a caller that owns
  it: a visitor's only with the same public scope and session id; a keyed one only for the bot
  key that opened it or a workspace key of its workspace. A visitor never reaches a keyed
  conversation, and a key never joins a visitor's (so a visitor's turns never become an app's
  model history, nor the other way round).
- Anything else is "not found" (``conversation_not_found``), indistinguishable from a missing id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from chatwell.domain.auth import Principal
from chatwell.errors import NotFound
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Conversation

PUBLIC = "public"
WIDGET_DOOR = "chatbotiq"  # the keyless /v1/public API the widget talks to


def conversation_not_found() -> NotFound:
    return NotFound("conversation not found", code="conversation_not_found")


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Where a turn goes. ``conversation_id`` None: open a new conversation, stored under
    ``scope`` and ``session_id``; else continue that conversation (whose own scope and session id
    these are). Pass all three to ``ChatRequest`` (``conversation_id``, ``session_id``,
    ``session_scope``)."""

    scope: str | None
    session_id: str | None
    conversation_id: uuid.UUID | None = None


def session_scope(door: str, principal: Principal | None) -> str:
    """The namespace of the session ids a caller chooses on a door (see the module table)."""
    if principal is None:
        return f"{door}:{PUBLIC}"
    if principal.bot_id is not None:
        return f"{door}:key:{principal.key_id}"
    return f"{door}:workspace:{principal.workspace_id}"


def is_public(scope: str | None) -> bool:
    return scope is not None and scope.endswith(f":{PUBLIC}")


def visitor_owns(
    conversation: Conversation | None, *, session_id: str, door: str = WIDGET_DOOR
) -> bool:
    """Whether an anonymous visitor of ``door`` presenting ``session_id`` owns ``conversation``
    (the public history, feedback, handoff and lead routes ask this)."""
    return (
        conversation is not None
        and conversation.session_scope == session_scope(door, None)
        and conversation.session_id is not None
        and conversation.session_id == session_id
    )


def key_owns(conversation: Conversation, principal: Principal) -> bool:
    """Whether a key may continue ``conversation`` by its id: a keyed conversation of its
    workspace, and for a bot key one that this very key opened (visitors' never)."""
    if conversation.workspace_id != principal.workspace_id or not principal.can_reach_bot(
        conversation.bot_id
    ):
        return False
    if is_public(conversation.session_scope):
        return False
    if principal.bot_id is None:
        return True
    return (conversation.session_scope or "").endswith(f":key:{principal.key_id}")


async def resolve_session(
    db: Database,
    *,
    bot: Bot,
    door: str,
    principal: Principal | None,
    client_session_id: str | None = None,
    conversation_id: str | uuid.UUID | None = None,
    continue_latest: bool = True,
) -> SessionRef:
    """The conversation a turn on ``door`` joins, for every door that keeps conversations.

    - ``bot``: the bot the turn is for (already authorised for ``principal``).
    - ``door``: the dialect's name, also its channel (``devapi``, ``chatbase``, ``dify``, ...).
    - ``principal``: the calling key, or None for a keyless (public) door.
    - ``client_session_id``: the client's own id of the session/conversation, if the door has
      one; it is namespaced by door and caller (module docstring), never global.
    - ``conversation_id``: a server-issued conversation id the client sent back to continue it.
      It must be one the caller owns, else ``NotFound`` ``conversation_not_found``. For a visitor
      it must also have been opened under ``client_session_id``.
    - ``continue_latest``: with only a ``client_session_id``, continue the latest conversation
      opened under it in this namespace (the developer API, Chatbase, Dify); False opens a new
      conversation unless ``conversation_id`` names one (the widget's "new chat" keeps its session).

    Returns a :class:`SessionRef`; raises only ``conversation_not_found``.
    """
    scope = session_scope(door, principal)
    if (
        client_session_id is not None
    ):  # stored without NUL (see ChatService.start); PostgreSQL refuses it
        client_session_id = client_session_id.replace("\x00", "")
    if conversation_id is not None:
        cid = conversation_id if isinstance(conversation_id, uuid.UUID) else _uuid(conversation_id)
        async with db.read() as session:
            conversation = await session.get(Conversation, cid) if cid is not None else None
        if conversation is None or conversation.bot_id != bot.id:
            raise conversation_not_found()
        if principal is None:
            if client_session_id is None or not visitor_owns(
                conversation, session_id=client_session_id, door=door
            ):
                raise conversation_not_found()
        elif not key_owns(conversation, principal):
            raise conversation_not_found()
        return SessionRef(conversation.session_scope, conversation.session_id, conversation.id)
    if client_session_id is None or not continue_latest:
        return SessionRef(scope, client_session_id)
    async with db.read() as session:
        latest = await session.scalar(
            select(Conversation.id)
            .where(
                Conversation.bot_id == bot.id,
                Conversation.session_scope == scope,
                Conversation.session_id == client_session_id,
            )
            .order_by(Conversation.created_at.desc(), Conversation.id.desc())
            .limit(1)
        )
    return SessionRef(scope, client_session_id, latest)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
