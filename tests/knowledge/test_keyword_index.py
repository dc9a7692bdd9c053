"""The in-memory BM25 index of the embedded default (``retrieval.keyword_index``) and the SQLite
search index's in-memory paths: analysed terms stored with each chunk, rows stored before they
were (NULL terms), the int8 pre-scan of a large bot's vectors, one load for many cold queries."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from chatwell.retrieval.index import bump_index_version
from chatwell.retrieval.index import sqlite as sqlite_index
from chatwell.retrieval.keyword_index import (
    HEADING_WEIGHT,
    KeywordIndex,
    analyze,
    encode_terms,
    term_keys,
)
from chatwell.retrieval.text_search import porter_stems, query_terms
from chatwell.storage.tables import Chunk
from tests.helpers import make_bot
from tests.knowledge.helpers import add, idle, search


def _index(docs: list[tuple[str, str]]) -> KeywordIndex:
    return KeywordIndex.build([encode_terms(heading, text) for heading, text in docs])


def _top(index: KeywordIndex, question: str, k: int = 10) -> dict[int, float]:
    positions, scores = index.top(term_keys(query_terms(question)), k)
    return {int(p): float(s) for p, s in zip(positions, scores)}


def test_words_are_split_folded_stemmed_and_stopwords_left_out() -> None:
    assert analyze("The Cafés are RUNNING; naïve_users' e-mail 42x") == [
        "cafe",
        "run",
        "naiv",
        "user",
        "e",
        "mail",
        "42x",
    ]
    assert analyze("who are you") == []


def test_threads_stem_and_analyse_at_once_without_mixing_words_up() -> None:
    # The event loop stems questions while worker threads analyse chunks being stored or loaded.
    # One shared Snowball stemmer keeps the word it works on in itself: with threads switching
    # every microsecond it returned other words' stems or raised IndexError.
    words = [
        w + s
        for w in ("connect", "relate", "general", "operate", "national", "happy")
        for s in ("", "ing", "ed", "ions", "ational", "ness", "ly")
    ]
    texts = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    expected = ([porter_stems(words)], [encode_terms("Heading", t) for t in texts])
    failures: list[BaseException] = []
    mismatches: list[int] = []

    def work() -> None:
        try:
            for _ in range(150):
                if ([porter_stems(words)], [encode_terms("Heading", t) for t in texts]) != expected:
                    mismatches.append(1)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures and not mismatches


def test_scores_are_bm25_with_the_heading_counted_twice() -> None:
    docs = [
        ("", "refund policy refund window"),
        ("", "shipping policy and delivery"),
        ("Refund", "how to ask for money back"),
        ("", "opening hours of the shop"),
    ]
    index = _index(docs)
    scores = _top(index, "refund")
    assert set(scores) == {0, 2}

    def bm25(tf: float, length: float, average: float, df: int, n: int) -> float:
        idf = math.log1p((n - df + 0.5) / (df + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (0.6 + 0.4 * length / average))

    lengths = [
        4,
        4,
        HEADING_WEIGHT * 1 + 6,
        5,
    ]  # every word counts towards the length, stopwords too
    average = sum(lengths) / 4
    assert scores[0] == pytest.approx(bm25(2, lengths[0], average, 2, 4), rel=1e-5)
    assert scores[2] == pytest.approx(bm25(HEADING_WEIGHT, lengths[2], average, 2, 4), rel=1e-5)
    # A rare word outweighs a common one.
    both = _top(index, "policy delivery")
    assert max(both, key=both.__getitem__) == 1


def test_top_k_keeps_the_best_and_handles_nothing() -> None:
    index = _index([("", f"alpha {'beta ' * i}") for i in range(1, 30)] + [("", "gamma")])
    best = _top(index, "beta", k=5)
    assert len(best) == 5
    everything = _top(index, "beta", k=100)
    assert sorted(everything.values(), reverse=True)[:5] == sorted(best.values(), reverse=True)
    assert _top(index, "zebra") == {}
    assert _top(index, "the of and") == {}  # stopwords only: nothing indexed, nothing found
    empty = KeywordIndex.build([])
    assert empty.top(term_keys(["beta"]), 5)[0].size == 0


@pytest.mark.parametrize("backend", ["sqlite"])  # the in-memory indexes are the SQLite engine's
async def test_stored_chunks_carry_their_terms_and_old_rows_are_analysed_on_load(
    client: httpx.AsyncClient, app: FastAPI, backend: str
) -> None:
    bot = await make_bot(client, name="Terms")
    await add(
        client,
        bot,
        type="text",
        title="Returns",
        text="Parcels can be returned within thirty days.",
    )
    await add(client, bot, type="text", title="Hours", text="The shop opens at nine on weekdays.")
    await idle(app)
    index = app.state.runtime.knowledge.index
    bot_id = uuid.UUID(bot["id"])
    async with app.state.runtime.db.read() as session:
        stored = (
            await session.execute(
                select(Chunk.heading, Chunk.text, Chunk.terms).where(Chunk.bot_id == bot_id)
            )
        ).all()
        assert stored and all(row.terms == encode_terms(row.heading, row.text) for row in stored)
        before = await index.keyword_search(session, bot_id, "when are parcels returned?", 10)
    assert len(before) == 1
    # Rows written before migration 0008 have no terms: they are analysed when the bot is loaded.
    async with app.state.runtime.db.write() as session:
        await session.execute(update(Chunk).where(Chunk.bot_id == bot_id).values(terms=None))
        await bump_index_version(session, bot_id)
    async with app.state.runtime.db.read() as session:
        after = await index.keyword_search(session, bot_id, "when are parcels returned?", 10)
    assert after == pytest.approx(before)
    found = await search(client, bot, "when are parcels returned?", k=1)
    assert found["data"][0]["text"].startswith("Parcels")


@pytest.mark.parametrize("backend", ["sqlite"])  # the in-memory indexes are the SQLite engine's
async def test_a_large_bot_prescans_int8_vectors_and_finds_the_exact_top(
    client: httpx.AsyncClient, app: FastAPI, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(client, name="Vectors")
    bot_id = uuid.UUID(bot["id"])
    source = await add(client, bot, type="text", title="Seed", text="Seed text.")
    await idle(app)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with app.state.runtime.db.write() as session:
        template = (await session.scalars(select(Chunk).where(Chunk.bot_id == bot_id))).first()
        session.add_all(
            [
                Chunk(
                    workspace_id=template.workspace_id,
                    bot_id=bot_id,
                    source_id=uuid.UUID(source["id"]),
                    position=i + 1,
                    text=f"row {i}",
                    heading="",
                    content_hash=f"{i}",
                    embedding=v.tobytes(),
                    embedding_dim=384,
                )
                for i, v in enumerate(vectors)
            ]
        )
        await bump_index_version(session, bot_id)
    index = app.state.runtime.knowledge.index
    queries = vectors[:20] + 0.3 * rng.standard_normal((20, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    async with app.state.runtime.db.read() as session:
        exact = [await index.vector_search(session, bot_id, q, 50) for q in queries]
    monkeypatch.setattr(sqlite_index, "QUANTIZED_MIN_ROWS", 1_000)
    monkeypatch.setattr(sqlite_index, "RESCORE_MIN", 100)
    index._cache.clear()
    async with app.state.runtime.db.read() as session:
        approximate = [await index.vector_search(session, bot_id, q, 50) for q in queries]
        matrix = await index._matrix(session, bot_id, 384, await index._version(bot_id))
    assert matrix.quantized is not None and matrix.quantized.dtype == np.int8
    recall = np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approximate, exact)])
    assert recall >= 0.98
    for a, e in zip(approximate, exact):  # scores of what both found are the exact float32 ones
        assert all(a[i] == pytest.approx(e[i], abs=1e-6) for i in set(a) & set(e))


@pytest.mark.parametrize("backend", ["sqlite"])  # the in-memory indexes are the SQLite engine's
async def test_many_cold_queries_load_a_bot_once(
    client: httpx.AsyncClient, app: FastAPI, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await make_bot(client, name="Cold")
    await add(
        client,
        bot,
        type="text",
        title="Returns",
        text="Parcels can be returned within thirty days.",
    )
    await idle(app)
    index = app.state.runtime.knowledge.index
    index._cache.clear()
    loads: list[Any] = []
    build = sqlite_index._build_lexicon

    def counting(*args: Any) -> Any:
        loads.append(args)
        return build(*args)

    monkeypatch.setattr(sqlite_index, "_build_lexicon", counting)
    bot_id = uuid.UUID(bot["id"])

    async def one() -> dict[int, float]:
        async with app.state.runtime.db.read() as session:
            return await index.keyword_search(session, bot_id, "returned parcels", 5)

    results = await asyncio.gather(*(one() for _ in range(10)))
    assert len(loads) == 1
    assert all(r == results[0] and len(r) == 1 for r in results)
