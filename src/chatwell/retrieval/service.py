"""Hybrid retrieval for one bot: keyword + vector candidates, fused, with what a citation needs.

``Retriever.search`` embeds the question, takes the best candidates from the keyword index and
from the vector index, scores every candidate on both sides, fuses them (convex combination,
weights tuned on SciFact train), lifts Q&A pairs that match, and reports whether anything is
relevant enough to answer from (the best passage's cosine similarity against a threshold).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.domain.models import SourceType
from chatwell.embedders.base import Embedder
from chatwell.observability.tracing import span
from chatwell.retrieval.fusion import DEFAULT_ALPHA, hybrid_scores, ranked
from chatwell.retrieval.index import SearchIndex
from chatwell.storage.database import Database
from chatwell.storage.tables import Chunk, Source

MAX_QUERY_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    candidates: int = 100  # from each index, before fusion
    alpha: float = DEFAULT_ALPHA  # weight of the vector side
    qa_boost: float = 0.5  # times the question's similarity, added to a matching Q&A pair's score
    qa_min_similarity: float = 0.7  # a Q&A pair matches when its *question* is this close (cosine)
    min_similarity: float = 0.25  # below this best cosine similarity, nothing is relevant
    max_per_source: int = (
        3  # passages of one page (source) among a search's k, so other pages get seen
    )


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved chunk with everything a citation needs."""

    chunk_id: int
    source_id: uuid.UUID
    source_type: str
    title: str
    url: str | None
    page: int | None
    heading: str
    text: str
    score: float  # fused, in [0, 1]
    similarity: float  # cosine similarity to the question, in [-1, 1]
    keyword: float = 0.0  # the keyword side's raw score (0: no query word in it)


@dataclass(frozen=True, slots=True)
class Ranking:
    """Chunk scores of one query: fused, and each side before fusion (for baselines and debugging)."""

    fused: dict[int, float]
    lexical: dict[int, float]
    dense: dict[int, float]
    vector: np.ndarray | None = None  # the query's embedding


@dataclass(frozen=True, slots=True)
class SearchResult:
    passages: list[Passage]
    relevant: bool


class Reranker(Protocol):
    """Reorders (and may rescore) the head of a result list, e.g. with a cross-encoder."""

    async def rerank(self, query: str, passages: list[Passage]) -> list[Passage]: ...


class Retriever:
    def __init__(
        self,
        db: Database,
        index: SearchIndex,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
        *,
        reranker: Reranker | None = None,
    ):
        self.db = db
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.reranker = reranker

    async def _query_vector(self, query: str) -> np.ndarray:
        return (await self.embedder.embed([query]))[0]

    async def rank(
        self,
        *,
        bot_id: uuid.UUID,
        query: str,
        depth: int | None = None,
        session: AsyncSession | None = None,
    ) -> Ranking:
        """Score the bot's best chunks for ``query``: ``depth`` candidates from each index, every
        candidate scored on both sides, then fused."""
        query = query.strip()[:MAX_QUERY_CHARS]
        if not query:
            return Ranking({}, {}, {})
        depth = depth or self.config.candidates
        vector = await self._query_vector(query)
        if session is None:
            async with self.db.read() as own:
                return await self._rank(own, bot_id, query, vector, depth)
        return await self._rank(session, bot_id, query, vector, depth)

    async def _rank(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, vector: np.ndarray, depth: int
    ) -> Ranking:
        lexical, dense = await self.index.candidates(session, bot_id, query, vector, depth)
        return Ranking(
            hybrid_scores(lexical, dense, alpha=self.config.alpha), lexical, dense, vector
        )

    async def search(
        self, *, bot_id: uuid.UUID, query: str, k: int = 8, candidates: int | None = None
    ) -> SearchResult:
        """The ``k`` best passages for ``query``, hydrated for citations, Q&A pairs lifted."""
        with span("chatwell.retrieval", bot_id=bot_id, top_k=k) as traced:
            result = await self._search(bot_id=bot_id, query=query, k=k, candidates=candidates)
            traced.set(passages=len(result.passages), relevant=result.relevant)
            return result

    async def _search(
        self, *, bot_id: uuid.UUID, query: str, k: int, candidates: int | None
    ) -> SearchResult:
        ranking = await self.rank(
            bot_id=bot_id, query=query, depth=max(candidates or self.config.candidates, k)
        )
        if not ranking.fused:
            return SearchResult([], False)
        # Fetch a few more than k: the Q&A boost may reorder the head of the list.
        head = [cid for cid, _ in ranked(ranking.fused)[: k * 3]]
        rows = await self.db.read_now(
            lambda session: session.execute(
                select(
                    Chunk.id,
                    Chunk.source_id,
                    Chunk.heading,
                    Chunk.text,
                    Chunk.page,
                    Source.type,
                    Source.title,
                    Source.url,
                )
                .join(Source, Source.id == Chunk.source_id)
                .where(Chunk.id.in_(head))
            ).all()
        )
        question_similarity = await self._qa_question_similarity(ranking, rows)
        passages = []
        for row in rows:
            score = ranking.fused[row.id]
            matched = question_similarity.get(row.id, 0.0)
            if matched >= self.config.qa_min_similarity:
                # A Q&A pair whose question matches is the curated answer: lift it to the top.
                score += self.config.qa_boost * matched
            passages.append(
                Passage(
                    chunk_id=row.id,
                    source_id=row.source_id,
                    source_type=row.type,
                    title=row.title,
                    url=row.url,
                    page=row.page,
                    heading=row.heading,
                    text=row.text,
                    score=score,
                    similarity=ranking.dense.get(row.id, 0.0),
                    keyword=ranking.lexical.get(row.id, 0.0),
                )
            )
        passages.sort(key=lambda p: p.score, reverse=True)
        if self.reranker is not None:
            passages = await self.reranker.rerank(query, passages)
        passages = distinct_passages(passages, k, max_per_source=self.config.max_per_source)
        top = max((p.score for p in passages), default=1.0)
        if top > 1.0:  # keep scores in [0, 1] after the boost
            passages = [replace(p, score=p.score / top) for p in passages]
        relevant = any(p.similarity >= self.config.min_similarity for p in passages)
        return SearchResult(passages, relevant)

    async def _qa_question_similarity(
        self, ranking: Ranking, rows: Sequence[Any]
    ) -> dict[int, float]:
        """Cosine similarity of the query to each Q&A passage's question (its heading); the
        questions' vectors come from the embedding cache after the first time."""
        qa_rows = [row for row in rows if row.type == SourceType.QA and row.heading]
        if not qa_rows or ranking.vector is None:
            return {}
        vectors = await self.embedder.embed([row.heading for row in qa_rows])
        return {row.id: float(v @ ranking.vector) for row, v in zip(qa_rows, vectors)}


def distinct_passages(passages: Sequence[Passage], k: int, *, max_per_source: int) -> list[Passage]:
    """The ``k`` best passages, best first, without near-duplicates (the same text on two pages,
    a page published twice: the better one stays) and at most ``max_per_source`` from one page
    while other pages have candidates (a long page matching everywhere would hide the rest)."""
    kept: list[Passage] = []
    held: list[Passage] = []  # over their page's share: used only if nothing else fills k
    shingles: list[frozenset[str]] = []
    per_source: dict[uuid.UUID, int] = {}
    for passage in passages:
        words = _shingles(passage.text)
        if any(_near_duplicate(words, other) for other in shingles):
            continue
        shingles.append(words)
        if per_source.get(passage.source_id, 0) >= max_per_source:
            held.append(passage)
            continue
        per_source[passage.source_id] = per_source.get(passage.source_id, 0) + 1
        kept.append(passage)
        if len(kept) == k:
            return kept
    kept.extend(held[: k - len(kept)])
    kept.sort(key=lambda p: p.score, reverse=True)
    return kept


def _shingles(text: str) -> frozenset[str]:
    words = text.lower().split()
    return frozenset(" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2)))


def _near_duplicate(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) >= 0.9 * min(len(a), len(b))
