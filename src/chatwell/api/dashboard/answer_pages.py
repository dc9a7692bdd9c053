"""Fixing bad answers from the dashboard (owners and admins): "add the right answer" beside a
transcript message or an unanswered question creates a Q&A source, and a text or Q&A source is
edited in place. Both are ingested like any new source; the same question then finds the answer.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chatwell.api.dashboard.web import (
    CheckedManagerDep,
    DashboardRoute,
    ManagerDep,
    db_of,
    form_of,
    render,
    see_other,
    valid_input,
)
from chatwell.api.dialect import wake_ingestion
from chatwell.domain.models import SourceType
from chatwell.domain.sources import QASourceIn, TextSourceIn
from chatwell.errors import InvalidRequest
from chatwell.services import bots, sources

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


def _back(value: object, fallback: str) -> str:
    """Where to return after the form: a dashboard path only (never another site)."""
    target = str(value or "")
    return (
        target
        if target.startswith("/dashboard/") and "//" not in target and "\\" not in target
        else fallback
    )


@router.post("/bots/{bot_id}/improve")
async def add_right_answer(request: Request, bot_id: str, user: CheckedManagerDep) -> Response:
    form = await form_of(request)
    data = valid_input(
        QASourceIn,
        type="qa",
        question=str(form.get("question", "")).strip(),
        answer=str(form.get("answer", "")).strip(),
    )
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    await sources.add_qa_source(
        db_of(request), principal=user.principal, bot_ref=str(bot.id), data=data
    )
    wake_ingestion(request)
    back = _back(form.get("back"), f"/dashboard/bots/{bot.id}/sources")
    return see_other(back + ("&" if "?" in back else "?") + "improved=1")


@router.get("/bots/{bot_id}/sources/{source_id}/edit")
async def edit_source_page(
    request: Request, bot_id: str, source_id: str, user: ManagerDep
) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    source = await sources.get_source(
        db_of(request), principal=user.principal, bot_ref=str(bot.id), source_id=source_id
    )
    if source.type not in (SourceType.TEXT, SourceType.QA):
        raise InvalidRequest(
            "only text and Q&A sources are edited here; re-sync or replace the others",
            code="wrong_source_type",
        )
    raw = (await sources.source_content(db_of(request), source=source)).decode("utf-8", "replace")
    content = json.loads(raw) if source.type == SourceType.QA and raw else {"text": raw}
    return render(
        request,
        "source_edit.html",
        user=user,
        bot=bot,
        source=source,
        tab="sources",
        content=content,
    )


@router.post("/bots/{bot_id}/sources/{source_id}/edit")
async def edit_source(
    request: Request, bot_id: str, source_id: str, user: CheckedManagerDep
) -> Response:
    form = await form_of(request)
    data: TextSourceIn | QASourceIn
    if "question" in form:
        data = valid_input(
            QASourceIn,
            type="qa",
            question=str(form.get("question", "")).strip(),
            answer=str(form.get("answer", "")).strip(),
        )
    else:
        data = valid_input(
            TextSourceIn,
            type="text",
            title=str(form.get("title", "")),
            text=str(form.get("text", "")),
        )
    await sources.edit_content(
        db_of(request), principal=user.principal, bot_ref=bot_id, source_id=source_id, data=data
    )
    wake_ingestion(request)
    return see_other(f"/dashboard/bots/{bot_id}/sources")
