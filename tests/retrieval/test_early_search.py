"""The search starts with the chat turn: when its query does not depend on stored history (a new
conversation, a private turn, a self-contained question), ``ChatService.start`` starts it while
the user's turn is being stored, and the answer uses that result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import numpy as np
from fastapi import FastAPI
from tests.helpers import make_bot

from chatwell.chat.service import ChatRequest
from chatwell.services import bots as bot_service


class Recording:
    """Wraps the app's real embedder and records what it was asked, in order."""

    def __init__(self, inner: object, log: list[str]) -> None:
        self.inner = inner
        self.log = log
        self.model_id = inner.model_id  # type: ignore[attr-defined]
        self.dimension = inner.dimension  # type: ignore[attr-defined]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.log.append("embed:" + "|".join(texts))
        return await self.inner.embed(texts)  # type: ignore[attr-defined]


async def _bot_with_hours(client: httpx.AsyncClient, app: FastAPI) -> object:
    bot = await make_bot(client)
    await client.post(
        f"/v1/bots/{bot['id']}/sources",
        json={
            "type": "text",
            "title": "Hours",
            "text": "Support answers Monday to Friday, nine to five.",
        },
    )
    await app.state.runtime.ingestion.idle()
    async with app.state.runtime.db.read() as session:
        return await bot_service.find_bot(session, bot["id"])


async def test_start_searches_while_the_turn_is_stored_and_the_answer_uses_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    stored = await _bot_with_hours(client, app)
    log: list[str] = []
    retriever = app.state.runtime.chat.retriever
    retriever.embedder = Recording(retriever.embedder, log)
    question = "When does the support team answer questions from customers?"
    turn = await app.state.runtime.chat.start(ChatRequest(bot=stored, question=question))
    assert log == ["embed:" + question]  # already started, before any event was asked for
    events = [event async for event in turn.events()]
    assert log == ["embed:" + question]  # the answer used that search: nothing was embedded again
    assert type(events[-1]).__name__ == "Done"
    assert [c.title for c in events[-3].citations] == ["Hours"]  # Citations, Usage, Done


async def test_a_short_follow_up_waits_for_the_stored_history(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    stored = await _bot_with_hours(client, app)
    first = await app.state.runtime.chat.start(
        ChatRequest(bot=stored, question="When does support answer?")
    )
    [event async for event in first.events()]
    log: list[str] = []
    retriever = app.state.runtime.chat.retriever
    retriever.embedder = Recording(retriever.embedder, log)
    turn = await app.state.runtime.chat.start(
        ChatRequest(bot=stored, question="and Saturdays?", conversation_id=first.conversation_id)
    )
    assert turn.search is None and log == []
    [event async for event in turn.events()]
    assert log == [
        "embed:When does support answer? and Saturdays?"
    ]  # searched with the previous question


async def test_a_failed_early_search_is_a_notice_and_a_turn_that_stops_early_cancels_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    stored = await _bot_with_hours(client, app)
    retriever = app.state.runtime.chat.retriever
    release = asyncio.Event()

    class Failing:
        model_id, dimension = retriever.embedder.model_id, retriever.embedder.dimension

        async def embed(self, texts: Sequence[str]) -> np.ndarray:
            await release.wait()
            raise RuntimeError("the embedder is down")

    retriever.embedder = Failing()
    question = "When does the support team answer questions from customers?"
    turn = await app.state.runtime.chat.start(ChatRequest(bot=stored, question=question))
    release.set()
    events = [event async for event in turn.events()]
    assert [e.code for e in events if type(e).__name__ == "Notice"][:1] == ["rag_unavailable"]
    assert type(events[-1]).__name__ == "Done"

    release.clear()
    turn = await app.state.runtime.chat.start(ChatRequest(bot=stored, question=question))
    search = turn.search
    assert search is not None and not search.done()
    stream = turn.events()
    await stream.__anext__()  # the first event, then the client goes away
    await stream.aclose()
    assert search.cancelled()
