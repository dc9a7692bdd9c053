"""PostgreSQL's search index: ``ts_rank_cd`` over each chunk's weighted tsvector
(``chunks.search_vector``) and pgvector (an exact scan for bots up to
:data:`EXACT_SCAN_MAX_CHUNKS` chunks, HNSW with iterative scans above)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.retrieval.text_search import (
    PRUNE_KEEP,
    PRUNE_MIN_CHUNKS,
    english_stems,
    postgres_or_query,
    query_terms,
    rare_terms,
)
from chatwell.storage.tables import Bot, Chunk

HNSW_DIMENSIONS = (384,)
EXACT_SCAN_MAX_CHUNKS = 20_000  # bots up to this size get an exact vector scan, not HNSW
STATISTICS_TTL_SECONDS = 300.0


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


class PostgresSearchIndex:
    """Full-text search and pgvector HNSW search on PostgreSQL."""

    async def store_vectors(
        self, session: AsyncSession, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        if not chunks:
            return
        await session.flush()
        await session.execute(
            text(
                "UPDATE chunks SET embedding_vec = CAST(:v AS vector), embedding_dim = :d WHERE id = :id"
            ),
            [
                {"v": vector_literal(v), "d": int(v.shape[0]), "id": c.id}
                for c, v in zip(chunks, vectors, strict=True)
            ],
        )

    def __init__(self) -> None:
        self._counts: OrderedDict[uuid.UUID, tuple[int, int]] = (
            OrderedDict()
        )  # bot -> (version, chunks)
        self._common: tuple[float, int, dict[str, float]] = (
            0.0,
            0,
            {},
        )  # (read at, total, lexeme -> share)

    async def keyword_search(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, k: int
    ) -> dict[int, float]:
        small = await self._chunk_count(session, bot_id) <= EXACT_SCAN_MAX_CHUNKS
        return {
            cid: score
            for cid, (score, _) in (
                await self._keyword(session, bot_id, query, k, None, small)
            ).items()
        }

    async def _keyword(
        self,
        session: AsyncSession,
        bot_id: uuid.UUID,
        query: str,
        k: int,
        vector: np.ndarray | None,
        small: bool,
    ) -> dict[int, tuple[float, float | None]]:
        """{chunk: (keyword score, cosine similarity to ``vector`` or None)} of the ``k`` best."""
        terms = query_terms(query)
        if len(terms) > PRUNE_KEEP:
            terms = await self._rare_terms(session, terms)
        tsquery = postgres_or_query(terms)
        if not tsquery:
            return {}
        # A bot of a few thousand chunks is filtered row by row through its bot index (the
        # function form of @@ keeps the planner off the GIN index, whose lists for common words
        # span every bot); a big bot goes through the GIN index.
        match = "ts_match_vq(search_vector, q)" if small else "search_vector @@ q"
        similarity = (
            f"CASE WHEN embedding_dim = {int(vector.shape[0])} THEN 1 - (embedding_vec <=> CAST(:v AS vector))"
            " END"
            if vector is not None
            else "NULL::float8"
        )
        rows = await session.execute(
            text(
                f"SELECT id, score, {similarity} FROM ("
                " SELECT id, embedding_vec, embedding_dim, ts_rank_cd(search_vector, q, 1) AS score"
                " FROM chunks, to_tsquery('english', :q) AS q"
                f" WHERE bot_id = :bot AND {match} ORDER BY score DESC LIMIT :k) AS best"
            ),
            {
                "q": tsquery,
                "bot": bot_id,
                "k": k,
                **({"v": vector_literal(vector)} if vector is not None else {}),
            },
        )
        return {
            int(row[0]): (float(row[1]), None if row[2] is None else float(row[2])) for row in rows
        }

    async def candidates(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, vector: np.ndarray, depth: int
    ) -> tuple[dict[int, float], dict[int, float]]:
        """The ``depth`` best chunks by keyword (with their cosine similarity, in the same
        statement) and by vector. The vector query runs on a second connection at the same time:
        each is one PostgreSQL backend, so the search costs the slower of the two."""
        small = await self._chunk_count(session, bot_id) <= EXACT_SCAN_MAX_CHUNKS
        async with AsyncSession(session.bind) as other:
            dense_query = asyncio.ensure_future(self._vector(other, bot_id, vector, depth, small))
            try:
                keyword = await self._keyword(session, bot_id, query, depth, vector, small)
            finally:
                dense = await dense_query
        lexical = {cid: score for cid, (score, _) in keyword.items()}
        for cid, (_, similarity) in keyword.items():
            if cid not in dense and similarity is not None:
                dense[cid] = similarity
        return lexical, dense

    async def _rare_terms(self, session: AsyncSession, terms: list[str]) -> list[str]:
        """``terms`` without the common ones in a large index (``text_search.rare_terms``); how
        common a lexeme is comes from the planner's statistics of ``search_vector`` (the most
        common lexemes and the share of rows holding each), re-read every few minutes."""
        read_at, total, shares = self._common
        if time.monotonic() - read_at > STATISTICS_TTL_SECONDS:
            total = int(
                await session.scalar(
                    text(
                        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'chunks'::regclass"
                    )
                )
                or 0
            )
            row = (
                await session.execute(
                    text(
                        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
                        " WHERE tablename = 'chunks' AND attname = 'search_vector'"
                    )
                )
            ).first()
            shares = dict(zip(row[0], row[1])) if row is not None and row[0] else {}
            self._common = (time.monotonic(), total, shares)
        if total < PRUNE_MIN_CHUNKS or not shares:
            return terms
        lexemes = english_stems(terms)
        return rare_terms(
            terms, {t: int(shares.get(x, 0.0) * total) for t, x in zip(terms, lexemes)}, total
        )

    async def _chunk_count(self, session: AsyncSession, bot_id: uuid.UUID) -> int:
        """The bot's chunk count, cached per index version (one primary-key read per search)."""
        version = await session.scalar(select(Bot.index_version).where(Bot.id == bot_id)) or 0
        cached = self._counts.get(bot_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        count = int(
            await session.scalar(
                text("SELECT count(*) FROM chunks WHERE bot_id = :bot"), {"bot": bot_id}
            )
            or 0
        )
        self._counts[bot_id] = (version, count)
        while len(self._counts) > 10_000:
            self._counts.popitem(last=False)
        return count

    async def vector_search(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, k: int
    ) -> dict[int, float]:
        small = await self._chunk_count(session, bot_id) <= EXACT_SCAN_MAX_CHUNKS
        return await self._vector(session, bot_id, vector, k, small)

    async def _vector(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, k: int, small: bool
    ) -> dict[int, float]:
        dim = int(vector.shape[0])
        literal = vector_literal(vector)
        if dim in HNSW_DIMENSIONS and small:
            # A bot of a few thousand chunks is scanned exactly through its bot index: faster than
            # an HNSW walk that must skip every other bot's vectors, and exact. (This expression
            # does not match the HNSW index's, so the planner cannot pick it.)
            rows = await session.execute(
                text(
                    f"SELECT id, embedding_vec <=> CAST(:v AS vector) AS d FROM chunks"
                    f" WHERE bot_id = :bot AND embedding_dim = {dim} ORDER BY d LIMIT :k"
                ),
                {"v": literal, "bot": bot_id, "k": k},
            )
            return {int(row[0]): 1.0 - float(row[1]) for row in rows}
        if dim in HNSW_DIMENSIONS:
            await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, 2 * k))}"))
            distance = f"embedding_vec::vector({dim}) <=> CAST(:v AS vector({dim}))"
        else:
            distance = "embedding_vec <=> CAST(:v AS vector)"
        # The dimension is inlined (an int we computed) so the planner can match the partial
        # HNSW index's predicate; a bound parameter would hide it from a generic plan.
        rows = await session.execute(
            text(
                f"SELECT id, {distance} AS d FROM chunks WHERE bot_id = :bot AND embedding_dim = {dim}"
                f" ORDER BY d LIMIT :k"
            ),
            {"v": literal, "bot": bot_id, "k": k},
        )
        return {int(row[0]): 1.0 - float(row[1]) for row in rows}

    async def vector_scores(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        if not chunk_ids:
            return {}
        rows = await session.execute(
            text(
                "SELECT id, 1 - (embedding_vec <=> CAST(:v AS vector)) FROM chunks"
                " WHERE bot_id = :bot AND embedding_dim = :dim AND id = ANY(:ids)"
            ),
            {
                "v": vector_literal(vector),
                "bot": bot_id,
                "dim": int(vector.shape[0]),
                "ids": list(chunk_ids),
            },
        )
        return {int(row[0]): float(row[1]) for row in rows}
