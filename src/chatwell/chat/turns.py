"""Opening a turn, the same way for every door: :func:`open_turn`.

The steps, in this order: the bot (by reference, for the key or for the public); the key's
``chat`` scope; the door's own checks that need the request (a browser's origin, reCAPTCHA:
``Caller.admit``); the limits (per key and bot, or per client IP and bot); the workspace's credit
when the door reports it before streaming; the conversation the turn joins
(``services.sessions.resolve_session``); and the user's turn, stored (``ChatService.start``).
A door then only encodes ``Opened.turn``: its events, or ``collect()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chatwell.chat.service import ChatRequest, ChatService, Turn
from chatwell.domain.auth import Principal
from chatwell.domain.events import HistoryTurn
from chatwell.domain.models import Permission
from chatwell.errors import NotFound
from chatwell.limits.service import Decision
from chatwell.services import bots, keys, sessions
from chatwell.services.sessions import SessionRef
from chatwell.storage.tables import Bot

# A client's history roles, in every door's words: these are the bot's turns, and these are
# skipped (instructions are not history); any other role is the user's.
ASSISTANT_ROLES = frozenset({"assistant", "apimessage", "ai", "bot"})
SKIPPED_ROLES = frozenset({"system", "developer", "tool"})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who opens a turn, as the door saw them."""

    principal: Principal | None  # None: a keyless call (the widget, a public chatflow)
    client_ip: str | None = None
    admit: Callable[[Bot], Awaitable[None]] | None = None  # the door's checks of the request


@dataclass(frozen=True, slots=True)
class Opened:
    turn: Turn
    bot: Bot
    session: SessionRef
    decision: Decision | None  # the limit that has the fewest requests left, for headers

    def limit_headers(self) -> dict[str, str]:
        return self.decision.headers() if self.decision is not None else {}


def client_history(
    items: Iterable[tuple[str | None, str | None] | HistoryTurn],
) -> list[HistoryTurn]:
    """A client's earlier turns as the engine takes them (roles mapped here, once)."""
    turns = []
    for item in items:
        role, content = (item.role, item.content) if isinstance(item, HistoryTurn) else item
        kind = (role or "").lower()
        if content and kind not in SKIPPED_ROLES:
            turns.append(HistoryTurn("assistant" if kind in ASSISTANT_ROLES else "user", content))
    return turns


async def open_turn(
    chat: ChatService,
    caller: Caller,
    *,
    door: str,
    bot: Bot | str,
    question: str,
    history: Iterable[tuple[str | None, str | None] | HistoryTurn] = (),
    private: bool = False,
    conversation_id: str | uuid.UUID | None = None,
    client_session_id: str | None = None,
    continue_latest: bool = True,
    same_session: bool = False,
    id_or_session: bool = False,
    require_credit: bool = False,
    **request: Any,
) -> Opened:
    """Check, limit and start a turn on ``door`` (also its channel and session namespace).

    - ``bot``: the bot, or its id or slug (looked up for ``caller.principal``; without one it
      must be public).
    - ``conversation_id``, ``client_session_id``, ``continue_latest``: where the turn goes
      (``resolve_session``); ``same_session``: a conversation named by id must also be
      ``client_session_id``'s; ``id_or_session``: a ``conversation_id`` that is not ours is the
      client's own id for one (kept under it as ``client_session_id``).
    - ``private``: nothing is stored and no conversation is joined.
    - ``require_credit``: an empty workspace is refused now (503 ``insufficient_credits``), not
      as an error event of the stream.
    - ``request``: further ``ChatRequest`` fields (metadata, image, options, ...).
    """
    principal = caller.principal
    if isinstance(bot, str):
        bot = (
            await bots.get_bot(chat.db, principal=principal, ref=bot)
            if principal is not None
            else await bots.get_public_bot(chat.db, ref=bot)
        )
    if principal is not None:
        keys.require(principal, Permission.CHAT)
    if caller.admit is not None:
        await caller.admit(bot)
    decision = None
    if chat.limits is not None:
        decision = await (
            chat.limits.keyed_chat(bot, principal)
            if principal is not None
            else chat.limits.public_chat(bot, caller.client_ip)
        )
    if require_credit:
        await chat.ensure_credit(bot)
    session = (
        SessionRef(None, None)
        if private
        else await _session(
            chat,
            bot,
            door,
            principal,
            conversation_id=conversation_id,
            client_session_id=client_session_id,
            continue_latest=continue_latest,
            same_session=same_session,
            id_or_session=id_or_session,
        )
    )
    turn = await chat.start(
        ChatRequest(
            bot=bot,
            question=question,
            channel=door,
            conversation_id=session.conversation_id,
            session_id=session.session_id,
            session_scope=session.scope,
            history=client_history(history),
            private=private,
            api_key_id=principal.key_id if principal is not None and principal.key_id.int else None,
            client_ip=caller.client_ip,
            **request,
        )
    )
    return Opened(turn, bot, session, decision)


async def _session(
    chat: ChatService,
    bot: Bot,
    door: str,
    principal: Principal | None,
    *,
    conversation_id: str | uuid.UUID | None,
    client_session_id: str | None,
    continue_latest: bool,
    same_session: bool,
    id_or_session: bool,
) -> SessionRef:
    if id_or_session and conversation_id is not None:
        try:
            return await sessions.resolve_session(
                chat.db, bot=bot, door=door, principal=principal, conversation_id=conversation_id
            )
        except NotFound:
            return await sessions.resolve_session(
                chat.db,
                bot=bot,
                door=door,
                principal=principal,
                client_session_id=str(conversation_id),
            )
    ref = await sessions.resolve_session(
        chat.db,
        bot=bot,
        door=door,
        principal=principal,
        client_session_id=client_session_id,
        conversation_id=conversation_id,
        continue_latest=continue_latest,
    )
    if (
        same_session
        and conversation_id is not None
        and (
            ref.scope != sessions.session_scope(door, principal)
            or ref.session_id != client_session_id
        )
    ):
        raise sessions.conversation_not_found()  # another user's conversation
    return ref
