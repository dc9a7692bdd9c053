"""Dashboard Playground: chat with a bot and watch each answer stream (owners and admins).

The answer comes from the same ``ChatService`` as every door, on channel ``playground`` and in
private mode, so nothing is stored but a content-free usage row: the page keeps the conversation
and sends the earlier turns with each question (``history``, JSON). The passages the turn's own
search found (the question read in its conversation, as the engine reads it) are sent first, with
their scores, so the owner sees what each answer rests on; the answer's Markdown comes last,
rendered by the same safe renderer as the transcripts (``rendered``).
"""

from __future__ import annotations

import json
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
    render_markdown,
)
from chatwell.api.deps import runtime_of
from chatwell.api.native.chat import event_payload
from chatwell.api.sse import frame, sse_response
from chatwell.chat.service import ChatRequest
from chatwell.domain.events import Delta, HistoryTurn, Replace
from chatwell.errors import InvalidRequest
from chatwell.retrieval.service import Passage
from chatwell.services import bots

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
MAX_QUESTION = 4000
MAX_MODEL = 200
MAX_TURNS = 40  # earlier turns a playground question may bring (20 exchanges)
MAX_TURN_CHARS = 20_000


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


def _history(value: Any) -> list[HistoryTurn]:
    """The page's earlier turns: ``[{"role": "user"|"assistant", "content": str}, ...]``."""
    text = str(value or "").strip()
    if not text:
        return []
    refused = InvalidRequest(
        f"history must be a JSON list of at most {MAX_TURNS} turns, each "
        '{"role": "user" or "assistant", "content": text}',
        code="invalid_history",
    )
    try:
        turns = json.loads(text)
    except ValueError:
        raise refused from None
    if not isinstance(turns, list) or len(turns) > MAX_TURNS:
        raise refused
    history = []
    for turn in turns:
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
            or len(turn["content"]) > MAX_TURN_CHARS
        ):
            raise refused
        history.append(HistoryTurn(role=turn["role"], content=turn["content"]))
    return history


def _shown(found: list[Passage]) -> list[dict[str, Any]]:
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
        for p in found
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
    history = _history(form.get("history"))
    bot = await bots.get_bot(db_of(request), principal=user.principal, ref=bot_id)
    turn = await runtime_of(request).chat.start(
        ChatRequest(
            bot=bot,
            question=question,
            history=history,
            channel="playground",
            private=True,
            model=model,
            temperature=temperature,
            client_ip=request.client.host if request.client else None,
        )
    )

    async def frames() -> AsyncIterator[str]:
        # The passages the turn's own search found come first: the frames before it answered
        # (its "retrieving" status) wait for them.
        answer = ""
        waiting: list[str] | None = []
        async for event in turn.events():
            if isinstance(event, Delta):
                answer += event.text
            elif isinstance(event, Replace):
                answer = event.text
            name, payload = event_payload(event)
            if waiting is not None and turn.found is None:
                waiting.append(frame(payload, event=name))
                continue
            if waiting is not None:
                yield frame({"passages": _shown(turn.found or [])}, event="passages")
                if waiting:
                    yield "".join(waiting)
                waiting = None
            yield frame(payload, event=name)
        if waiting is not None:  # it never searched (a person holds it, no credit left)
            yield frame({"passages": []}, event="passages")
            if waiting:
                yield "".join(waiting)
        yield frame({"text": answer, "html": str(render_markdown(answer))}, event="rendered")

    response = sse_response(frames())
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
