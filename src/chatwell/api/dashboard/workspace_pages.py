"""Dashboard workspace pages: API keys (owners and admins), conversations, the handoff inbox and leads.

Agents see conversations and the inbox; keys and leads (personal data) are for owners and admins.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from chatwell.api.dashboard.web import (
    CheckedManagerDep,
    CheckedUserDep,
    DashboardRoute,
    ManagerDep,
    UserDep,
    db_of,
    form_of,
    int_or_none,
    lines_of,
    render,
    see_other,
    valid_input,
)
from chatwell.api.deps import get_conversation_bus
from chatwell.api.native.keys import KeyCreate
from chatwell.api.native.leads import csv_lines
from chatwell.api.params import date_param
from chatwell.domain.models import HandoffSettings
from chatwell.errors import InvalidRequest, NotFound
from chatwell.services import accounts, bots, conversations, handoff, keys, leads

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
# The key form's permission boxes (a bot key's scopes; chatwell.domain.models.Permission).
SCOPE_CHOICES = (
    ("chat", "chat with its bot"),
    ("conversations:read", "read its transcripts"),
    ("conversations:write", "delete transcripts and rate answers"),
    ("leads:read", "read its leads (contact details)"),
)


async def _bot_names(request: Request, user: Any) -> dict[uuid.UUID, Any]:
    page = await bots.list_bots(db_of(request), principal=user.principal, limit=100)
    return {bot.id: bot for bot in page.items}


async def _keys_page(
    request: Request,
    user: Any,
    *,
    created: Any = None,
    secret: str | None = None,
    status: int = 200,
) -> Response:
    page = await keys.list_keys(db_of(request), workspace_id=user.workspace_id, limit=100)
    return render(
        request,
        "keys.html",
        user=user,
        keys=page.items,
        bots=await _bot_names(request, user),
        created=created,
        secret=secret,
        status=status,
        scope_choices=SCOPE_CHOICES,
    )


@router.get("/api-keys")
async def keys_page(request: Request, user: ManagerDep) -> Response:
    return await _keys_page(request, user)


@router.post("/api-keys")
async def create_key(request: Request, user: CheckedManagerDep) -> Response:
    form = await form_of(request)
    data = valid_input(
        KeyCreate,
        label=str(form.get("label", "")).strip(),
        bot_id=str(form.get("bot_id", "")).strip() or None,
        allowed_origins=lines_of(form.get("allowed_origins")),
        daily_message_limit=int_or_none(form.get("daily_message_limit")),
        scopes=[str(s) for s in form.getlist("scopes")] if form.get("bot_id") else None,
    )
    bot_id = None
    if data.bot_id is not None:
        bot_id = (await bots.get_bot(db_of(request), principal=user.principal, ref=data.bot_id)).id
    key, secret = await keys.create_key(
        db_of(request),
        workspace_id=user.workspace_id,
        label=data.label,
        bot_id=bot_id,
        allowed_origins=data.allowed_origins,
        daily_message_limit=data.daily_message_limit,
        scopes=data.scopes,
    )
    # Rendered, not redirected: the secret exists only in this one response.
    return await _keys_page(request, user, created=key, secret=secret, status=201)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, user: CheckedManagerDep) -> Response:
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise NotFound("key not found", code="key_not_found") from None
    await keys.revoke_key(db_of(request), workspace_id=user.workspace_id, key_id=parsed)
    return see_other("/dashboard/api-keys")


FILTER_PARAMS = ("bot_id", "from", "to", "feedback", "handed_off", "q")
MAX_SEARCH = 200


async def _filters_of(
    request: Request, user: Any
) -> tuple[conversations.ConversationFilter, dict[str, str]]:
    """The Conversations page's filters from the query string, and the values to keep in links."""
    params = {name: request.query_params.get(name, "").strip() for name in FILTER_PARAMS}
    params = {name: value for name, value in params.items() if value}
    bot_id = None
    if "bot_id" in params:
        bot_id = (
            await bots.get_bot(db_of(request), principal=user.principal, ref=params["bot_id"])
        ).id
    start, to = date_param(params.get("from", ""), "from"), date_param(params.get("to", ""), "to")
    feedback = params.get("feedback")
    if feedback not in (None, "positive", "negative"):
        raise InvalidRequest("feedback must be positive or negative", code="invalid_filter")
    text = params.get("q")
    if text is not None and len(text) > MAX_SEARCH:
        raise InvalidRequest(
            f"the search is longer than {MAX_SEARCH} characters", code="invalid_filter"
        )
    filters = conversations.ConversationFilter(
        bot_id=bot_id,
        start=start,
        end=to + timedelta(days=1) if to else None,
        feedback=feedback,
        handed_off=params.get("handed_off") in ("1", "on", "true"),
        text=text,
    )
    return filters, params


@router.get("/conversations")
async def conversations_page(request: Request, user: UserDep) -> Response:
    names = await _bot_names(request, user)
    filters, params = await _filters_of(request, user)
    page = await conversations.search_conversations(
        db_of(request),
        principal=user.principal,
        filters=filters,
        limit=100,
        cursor=request.query_params.get("cursor"),
    )
    return render(
        request,
        "conversations.html",
        user=user,
        conversations=page.items,
        bots=names,
        selected=filters.bot_id,
        filters=params,
        query=urlencode(params),
        next_cursor=page.next_cursor if page.has_more else None,
    )


EXPORT_COLUMNS = [
    "id",
    "bot_id",
    "bot",
    "created_at",
    "updated_at",
    "channel",
    "status",
    "title",
    "messages",
    "positive_feedback",
    "negative_feedback",
]


async def _export(
    request: Request, user: Any
) -> tuple[list[tuple[Any, list[Any]]], dict[uuid.UUID, Any]]:
    filters, _ = await _filters_of(request, user)
    found = await conversations.export_conversations(
        db_of(request), principal=user.principal, filters=filters
    )
    return found, await _bot_names(request, user)


@router.get("/conversations.csv")
async def conversations_csv(request: Request, user: ManagerDep) -> Response:
    found, names = await _export(request, user)
    rows = [EXPORT_COLUMNS]
    for c, messages in found:
        bot = names.get(c.bot_id)
        rows.append(
            [
                str(c.id),
                str(c.bot_id),
                bot.name if bot else "",
                conversations.iso(c.created_at) or "",
                conversations.iso(c.updated_at) or "",
                c.channel,
                c.status,
                c.title or "",
                str(len(messages)),
                str(sum(m.feedback == "positive" for m in messages)),
                str(sum(m.feedback == "negative" for m in messages)),
            ]
        )
    return Response(
        csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="conversations.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/conversations.json")
async def conversations_json(request: Request, user: ManagerDep) -> Response:
    found, names = await _export(request, user)
    data = [
        {
            "id": str(c.id),
            "bot_id": str(c.bot_id),
            "bot": names[c.bot_id].name if c.bot_id in names else None,
            "created_at": conversations.iso(c.created_at),
            "updated_at": conversations.iso(c.updated_at),
            "channel": c.channel,
            "status": c.status,
            "title": c.title,
            "messages": [
                {
                    "id": str(m.id),
                    "role": m.role,
                    "content": m.content,
                    "feedback": m.feedback,
                    "created_at": conversations.iso(m.created_at),
                }
                for m in messages
            ],
        }
        for c, messages in found
    ]
    return JSONResponse(
        {"conversations": data},
        headers={
            "Content-Disposition": 'attachment; filename="conversations.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/conversations/{conversation_id}/delete")
async def delete_conversation(
    request: Request, conversation_id: str, user: CheckedManagerDep
) -> Response:
    await conversations.delete_conversation(
        db_of(request), principal=user.principal, conversation_id=conversation_id
    )
    return see_other("/dashboard/conversations")


@router.get("/conversations/{conversation_id}")
async def transcript_page(request: Request, conversation_id: str, user: UserDep) -> Response:
    conversation, messages = await conversations.get_conversation(
        db_of(request), principal=user.principal, conversation_id=conversation_id
    )
    names = await _bot_names(request, user)
    bot = names.get(conversation.bot_id)
    members = await accounts.list_members(db_of(request), workspace_id=user.workspace_id)
    canned = (
        HandoffSettings.model_validate(bot.handoff_settings or {}).canned_replies if bot else []
    )
    return render(
        request,
        "transcript.html",
        user=user,
        conversation=conversation,
        messages=messages,
        bot=bot,
        held=handoff.is_held(conversation.status),
        missed=handoff.is_missed(conversation),
        context=await handoff.visitor_context(db_of(request), conversation),
        members=members,
        assignee=next((u for u, _ in members if u.id == conversation.assigned_user_id), None),
        canned=canned,
    )


@router.get("/inbox")
async def inbox_page(request: Request, user: UserDep) -> Response:
    page = await handoff.queue(db_of(request), principal=user.principal, limit=100)
    online = await handoff.agents_online(db_of(request), user.workspace_id)
    me_online = await handoff.user_online(db_of(request), user.user_id, user.workspace_id)
    members = {
        u.id: u
        for u, _ in await accounts.list_members(db_of(request), workspace_id=user.workspace_id)
    }
    return render(
        request,
        "inbox.html",
        user=user,
        waiting=page.items,
        bots=await _bot_names(request, user),
        online=online,
        me_online=me_online,
        missed={c.id for c in page.items if handoff.is_missed(c)},
        members=members,
    )


@router.post("/inbox/presence")
async def presence(request: Request, user: CheckedUserDep) -> Response:
    """Any member goes online ("online" = 1) or away; the inbox page's script re-posts every 30 s."""
    form = await form_of(request)
    online = str(form.get("online", "")).strip() in ("1", "true", "on")
    available = await handoff.set_user_presence(
        db_of(request), user_id=user.user_id, workspace_id=user.workspace_id, online=online
    )
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(
            {"online": online, "handoff_available": available},
            headers={"Cache-Control": "no-store"},
        )
    return see_other("/dashboard/inbox")


@router.post("/inbox/{conversation_id}/reply")
async def reply(request: Request, conversation_id: str, user: CheckedUserDep) -> Response:
    form = await form_of(request)
    await handoff.agent_reply(
        db_of(request),
        principal=user.principal,
        conversation_id=conversation_id,
        content=str(form.get("content", "")),
        bus=get_conversation_bus(request),
    )
    return see_other(f"/dashboard/conversations/{conversation_id}")


@router.post("/inbox/{conversation_id}/resolve")
async def resolve(request: Request, conversation_id: str, user: CheckedUserDep) -> Response:
    await handoff.resolve(
        db_of(request),
        principal=user.principal,
        conversation_id=conversation_id,
        bus=get_conversation_bus(request),
    )
    return see_other("/dashboard/inbox")


@router.get("/leads")
async def leads_page(
    request: Request,
    user: ManagerDep,
    bot_id: str | None = Query(None, max_length=100),
    q: str | None = Query(None, max_length=200),
    since: str | None = Query(None, alias="from", max_length=10),
    until: str | None = Query(None, alias="to", max_length=10),
) -> Response:
    """The newest 100 leads of each bot, filtered by bot, date range (UTC days) and a text match
    on name, email, phone or any field."""
    names = await _bot_names(request, user)
    start, end = date_param(since, "from"), date_param(until, "to")
    wanted = (q or "").strip().lower()
    rows: list[tuple[Any, Any]] = []
    for bot in names.values():
        if bot_id and str(bot.id) != bot_id:
            continue
        page = await leads.leads_page(
            db_of(request), principal=user.principal, bot_id=bot.id, limit=100
        )
        for lead in page.items:
            created = lead.created_at
            if (start and created < start) or (end and created >= end + timedelta(days=1)):
                continue
            text = " ".join(
                str(v)
                for v in (lead.name, lead.email, lead.phone, *(lead.fields or {}).values())
                if v
            )
            if wanted and wanted not in text.lower():
                continue
            rows.append((bot, lead))
    rows.sort(key=lambda pair: pair[1].created_at, reverse=True)
    return render(
        request,
        "leads.html",
        user=user,
        rows=rows,
        bots=names,
        filters={"bot_id": bot_id or "", "q": q or "", "from": since or "", "to": until or ""},
    )


@router.get("/bots/{bot_id}/leads.csv")
async def leads_csv(request: Request, bot_id: str, user: ManagerDep) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    export = await leads.export_leads(db_of(request), principal=user.principal, bot=bot)

    async def body() -> AsyncIterator[str]:
        yield csv_lines([export.columns])
        async for batch in export.rows:
            yield csv_lines(batch)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{bot.slug}-leads.csv"',
            "Cache-Control": "no-store",
        },
    )
