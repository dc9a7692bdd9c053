"""The question is embedded while the chat turn's database work runs: ``ChatService.start``
prefetches it, and the search that follows uses that vector instead of embedding again."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
from fastapi import FastAPI

from chatwell.chat.service import ChatRequest
from chatwell.services import bots as bot_service
from tests.helpers import make_bot


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


async def test_start_prefetches_the_question_and_search_reuses_it(client: httpx.AsyncClient, app: FastAPI) -> None:
    bot = await make_bot(client)
    await client.post(f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Hours",
                                                             "text": "Support answers Monday to Friday, nine to five."})
    await app.state.ingestion.idle()
    log: list[str] = []
    retriever = app.state.chat.retriever
    retriever.embedder = Recording(retriever.embedder, log)
    question = "When does the support team answer questions from customers?"
    async with app.state.db.read() as session:
        stored = await bot_service.find_bot(session, bot["id"])
    turn = await app.state.chat.start(ChatRequest(bot=stored, question=question))
    assert log == ["embed:" + question]  # already started, before any event was asked for
    events = [event async for event in turn.events()]
    assert log == ["embed:" + question]  # the search used the prefetched vector
    assert type(events[-1]).__name__ == "Done"


async def test_a_failed_prefetch_is_embedded_again(app: FastAPI) -> None:
    retriever = app.state.chat.retriever
    calls: list[int] = []

    class FailsOnce:
        model_id, dimension = retriever.embedder.model_id, retriever.embedder.dimension

        async def embed(self, texts: Sequence[str]) -> np.ndarray:
            calls.append(len(texts))
            if len(calls) == 1:
                raise RuntimeError("transient")
            return np.ones((len(texts), self.dimension), dtype=np.float32) / np.sqrt(self.dimension)

    retriever.embedder = FailsOnce()
    retriever.prefetch("a question long enough to be searched alone")
    vector = await retriever._query_vector("a question long enough to be searched alone")
    assert calls == [1, 1] and vector.shape == (retriever.embedder.dimension,)
