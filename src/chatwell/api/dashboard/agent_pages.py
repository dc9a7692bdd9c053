"""The support agent's live dashboard: presence and alerts from any open page, the conversation
page's live feed, typing hints both ways, and taking or transferring a conversation.

Every open dashboard page polls ``GET /dashboard/pulse.json`` (dashboard.js): it keeps an online
member online (presence lapses after a minute without it) and tells the page how many visitors
wait, so it can badge its title and alert. A conversation page listens to
``GET /dashboard/conversations/{id}/events`` (server-sent events fed by the conversation bus, the
same hints the widget's stream hears) and re-reads itself when something was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chatwell.api.dashboard.web import (
    CheckedUserDep,
    DashboardRoute,
    UserDep,
    db_of,
    form_of,
    see_other,
)
from chatwell.api.deps import get_conversation_bus
from chatwell.api.sse import frame, sse_response
from chatwell.errors import InvalidRequest
from chatwell.services import conversations, handoff

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
FEED_SECONDS = 600.0  # the page's script reconnects after this
RESYNC_SECONDS = 20.0  # a lost hint costs at most this long: the page is told to re-read anyway


@router.get("/pulse.json")
async def pulse(request: Request, user: UserDep) -> JSONResponse:
    db = db_of(request)
    me_online = await handoff.user_online(db, user.user_id, user.workspace_id)
    if me_online:  # an open page is a heartbeat for a member who said they are online
        await handoff.set_user_presence(
            db, user_id=user.user_id, workspace_id=user.workspace_id, online=True
        )
    state = await handoff.pulse(db, user.workspace_id)
    return JSONResponse(
        {
            "me_online": me_online,
            "agents_online": await handoff.agents_online(db, user.workspace_id),
            "waiting": state.waiting,
            "held": state.held,
            "latest_visitor_message": state.latest_visitor_message,
            "refresh_within_seconds": handoff.PRESENCE_SECONDS,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/conversations/{conversation_id}/events")
async def conversation_feed(request: Request, conversation_id: str, user: UserDep) -> Response:
    """``event: changed`` when a message or the state was stored, ``event: typing`` {"who"} when the
    visitor types; the page re-reads itself on ``changed``."""
    conversation, _ = await conversations.get_conversation(
        db_of(request), principal=user.principal, conversation_id=conversation_id
    )
    held = contextlib.AsyncExitStack()
    try:
        hints = await held.enter_async_context(
            get_conversation_bus(request).subscribe(str(conversation.id))
        )
    except BaseException:
        await held.aclose()
        raise

    async def frames() -> AsyncIterator[str]:
        deadline = time.monotonic() + FEED_SECONDS
        yield frame({"status": conversation.status}, event="ready")
        while (remaining := deadline - time.monotonic()) > 0:
            heard = await hints.take(min(remaining, RESYNC_SECONDS))
            if not heard:
                yield frame({}, event="changed")  # a quiet while: re-read in case a hint was lost
                continue
            if any(h.get("type") == "typing" and h.get("who") == "visitor" for h in heard):
                yield frame({"who": "visitor"}, event="typing")
            if any(h.get("type") != "typing" for h in heard):
                yield frame({}, event="changed")
            await asyncio.sleep(0)

    return sse_response(frames(), on_close=held.aclose)


@router.post("/conversations/{conversation_id}/typing", status_code=204)
async def agent_typing(request: Request, conversation_id: str, user: CheckedUserDep) -> Response:
    conversation, _ = await conversations.get_conversation(
        db_of(request), principal=user.principal, conversation_id=conversation_id
    )
    if handoff.is_held(conversation.status):
        await handoff.typing(get_conversation_bus(request), conversation.id, who="agent")
    return Response(status_code=204)


@router.post("/inbox/{conversation_id}/assign")
async def assign(request: Request, conversation_id: str, user: CheckedUserDep) -> Response:
    """``user_id``: ``me`` (take it), a member's id (transfer) or empty (release)."""
    form = await form_of(request)
    wanted = str(form.get("user_id", "")).strip()
    target: uuid.UUID | None
    if wanted == "me":
        target = user.user_id
    elif not wanted:
        target = None
    else:
        try:
            target = uuid.UUID(wanted)
        except ValueError:
            raise InvalidRequest("choose a member of this workspace", code="not_a_member") from None
    await handoff.assign(
        db_of(request),
        principal=user.principal,
        conversation_id=conversation_id,
        user_id=target,
        bus=get_conversation_bus(request),
    )
    return see_other(f"/dashboard/conversations/{conversation_id}")
