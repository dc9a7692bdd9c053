"""Dashboard Playground: ask a bot a question and watch the answer stream (owners and admins).

The answer comes from the same ``ChatService`` as every door, on channel ``playground`` and in
private mode, so nothing is stored but a content-free usage row. The passages the retriever finds
for the question are sent first, with their scores, so the owner sees what the answer rests on.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chatwell.api.dashboard.web import (
    CheckedManagerDep,
    DashboardRoute,
    ManagerDep,
    db_of,
    form_of,
    render,
)
from chatwell.api.native.chat import event_payload
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import ChatRequest
from chatwell.errors import InvalidRequest
from chatwell.services import bots

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
MAX_QUESTION = 4000
MAX_MODEL = 200
PASSAGES = 8


@router.get("/bots/{bot_id}/playground")
async def playground_page(request: Request, bot_id: str, user: ManagerDep) -> Response:
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    return render(request, "bot_playground.html", user=user, bot=bot, tab="playground")


def _temperature(value: Any) -> float | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise InvalidRequest("temperature must be a number between 0 and 2") from None
    if not math.isfinite(number) or not 0 <= number <= 2:
        raise InvalidRequest("temperature must be a number between 0 and 2")
    return number


async def _passages(request: Request, bot_id: Any, question: str) -> list[dict[str, Any]]:
    knowledge = getattr(request.app.state, "knowledge", None)
    if knowledge is None:
        return []
    found = await knowledge.retriever.search(bot_id=bot_id, query=question, k=PASSAGES)
    return [
        {
            "title": p.title,
            "url": p.url,
            "page": p.page,
            "heading": p.heading,
            "text": p.text[:1200],
            "score": round(p.score, 4),
            "similarity": round(p.similarity, 4),
        }
        for p in found.passages
    ]


@router.post("/bots/{bot_id}/playground/chat")
async def playground_chat(request: Request, bot_id: str, user: CheckedManagerDep) -> Response:
    form = await form_of(request)
    question = str(form.get("question", "")).strip()
    if not question:
        raise InvalidRequest("ask a question", code="missing_question")
    if len(question) > MAX_QUESTION:
        raise InvalidRequest(f"the question is longer than {MAX_QUESTION} characters")
    model = str(form.get("model", "")).strip() or None
    if model is not None and len(model) > MAX_MODEL:
        raise InvalidRequest(f"the model name is longer than {MAX_MODEL} characters")
    temperature = _temperature(form.get("temperature"))
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    passages = await _passages(request, bot.id, question)
    turn = await request.app.state.chat.start(
        ChatRequest(
            bot=bot,
            question=question,
            channel="playground",
            private=True,
            model=model,
            temperature=temperature,
            client_ip=request.client.host if request.client else None,
        )
    )

    async def frames() -> AsyncIterator[str]:
        yield frame({"passages": passages}, event="passages")
        async for event in turn.events():
            name, payload = event_payload(event)
            yield frame(payload, event=name)

    response = sse_response(frames())
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
