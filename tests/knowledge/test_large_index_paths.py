"""The paths a large index takes, forced on small data by lowering their thresholds: keyword
queries without their most common terms (PostgreSQL; SQLite's in-memory BM25 needs no pruning),
PostgreSQL's HNSW walk for a big bot against the exact per-bot scan every smaller bot gets, and
SQLite's scans in worker threads against the ones a smaller bot gets on the event loop's thread."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from chatwell.retrieval import text_search
from chatwell.retrieval.index import postgres as postgres_index
from chatwell.retrieval.index import sqlite as sqlite_index
from tests.helpers import make_bot
from tests.knowledge.helpers import add, idle, search

# Every text says "support"; only one says "escalation". A question with both must still find
# the rare word's chunk first once "support" is dropped as too common.
COMMON = [
    f"Support note {i}: support answers tickets about topic {i} on weekdays." for i in range(24)
]
RARE = "Escalation matrix: support hands a ticket to the duty engineer after two hours."


def test_rare_terms_drop_common_terms_only_in_large_indexes() -> None:
    terms = ["support", "ticket", "escalation", "engineer"]
    df = {"support": 90_000, "ticket": 30_000, "escalation": 12, "engineer": 800}
    # A large index: terms in more than 2% of 100k chunks go, the three rarest stay at least.
    assert text_search.rare_terms(terms, df, 100_000) == ["ticket", "escalation", "engineer"]
    assert text_search.rare_terms(terms, df, 100_000, keep=2) == ["escalation", "engineer"]
    # A small index keeps everything; so does a short question.
    assert text_search.rare_terms(terms, df, 5_000) == terms
    assert text_search.rare_terms(["support", "escalation"], df, 100_000) == [
        "support",
        "escalation",
    ]
    # A term the statistics do not know counts as rare.
    assert text_search.rare_terms(
        ["support", "zebra", "ticket", "x"], {"support": 99_000, "ticket": 99_000}, 100_000, keep=2
    ) == ["zebra", "x"]


def test_stems_match_the_engines_lexemes() -> None:
    assert text_search.porter_stems(["properties", "escalation", "running"]) == [
        "properti",
        "escal",
        "run",
    ]
    assert text_search.english_stems(["properties", "escalation", "running"]) == [
        "properti",
        "escal",
        "run",
    ]


async def _bot_with_common_words(
    client: httpx.AsyncClient, app: FastAPI
) -> tuple[dict[str, Any], dict[str, Any]]:
    bot = await make_bot(client, name="Helpdesk")
    for i, note in enumerate(COMMON):
        await add(client, bot, type="text", title=f"Note {i}", text=note)
    rare = await add(client, bot, type="text", title="Escalation", text=RARE)
    await idle(app)
    return bot, rare


@pytest.mark.parametrize(
    "backend", ["postgres"]
)  # SQLite ranks in memory, every term at a few microseconds
async def test_keyword_search_without_common_terms_still_finds_the_rare_ones(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, rare = await _bot_with_common_words(client, app)
    db = app.state.runtime.db
    index = app.state.runtime.knowledge.retriever.index
    async with db.write() as session:  # the planner's statistics are what PostgreSQL prunes by
        await session.execute(text("ANALYZE chunks"))
    question = "support ticket escalation engineer hours"
    async with db.read() as session:
        before = await index.keyword_search(session, _uuid(bot), question, 100)
    assert len(before) == 25  # every chunk says "support"
    monkeypatch.setattr(postgres_index, "PRUNE_MIN_CHUNKS", 0)
    monkeypatch.setattr(text_search, "PRUNE_MIN_CHUNKS", 0)
    monkeypatch.setattr(
        postgres_index,
        "rare_terms",
        lambda terms, df, total: text_search.rare_terms(terms, df, total, max_df=0.5, keep=2),
    )
    index._common = (0.0, 0, {})  # read the statistics now
    async with db.read() as session:
        after = await index.keyword_search(session, _uuid(bot), question, 100)
    assert 1 <= len(after) < len(before)  # "support" (in every chunk) no longer matches everything
    found = await search(client, bot, question, k=3)
    assert found["data"][0]["source_id"] == rare["id"]


async def _big_bot_index_and_question(
    client: httpx.AsyncClient, app: FastAPI
) -> tuple[dict, Any, np.ndarray]:
    """The bot of common words, the app's search index, and the vector of a question about it."""
    bot, _ = await _bot_with_common_words(client, app)
    vector = (
        await app.state.runtime.knowledge.retriever.embedder.embed(
            ["who takes an escalated ticket?"]
        )
    )[0]
    return bot, app.state.runtime.knowledge.retriever.index, vector


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_big_bot_walks_hnsw_and_finds_what_the_exact_scan_finds(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, index, vector = await _big_bot_index_and_question(client, app)
    async with app.state.runtime.db.read() as session:
        exact = await index.vector_search(session, _uuid(bot), vector, 5)
    monkeypatch.setattr(postgres_index, "EXACT_SCAN_MAX_CHUNKS", 0)  # every bot is "big" now
    async with app.state.runtime.db.read() as session:
        walked = await index.vector_search(session, _uuid(bot), vector, 5)
    assert set(walked) == set(exact)  # 25 vectors: the graph holds them all
    assert np.allclose([walked[i] for i in exact], list(exact.values()), atol=1e-4)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_big_sqlite_bot_is_scanned_in_worker_threads_and_finds_the_same(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, index, vector = await _big_bot_index_and_question(client, app)
    question = "who takes an escalated support ticket?"
    async with app.state.runtime.db.read() as session:
        inline = await index.candidates(session, _uuid(bot), question, vector, 10)
    threads: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counted(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(fn.__name__)
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(sqlite_index, "INLINE_SCAN_MAX_ROWS", 0)  # every bot is "big" now
    monkeypatch.setattr(sqlite_index.asyncio, "to_thread", counted)
    async with app.state.runtime.db.read() as session:
        threaded = await index.candidates(session, _uuid(bot), question, vector, 10)
    assert sorted(threads) == ["_keyword_top", "_top_k"]
    assert threaded == inline and len(inline[0]) == 10 and len(inline[1]) >= 10


def _uuid(bot: dict[str, Any]) -> Any:
    import uuid

    return uuid.UUID(bot["id"])
