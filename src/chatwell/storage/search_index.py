"""The keyword and vector indexes over a bot's chunks, one implementation per database.

SQLite: FTS5 ``bm25()`` (kept in step by triggers) and an exact in-memory cosine scan over the
float32 vectors in ``chunks.embedding``, loaded once per bot and index version. PostgreSQL:
``ts_rank_cd`` over a weighted tsvector, and pgvector HNSW (cosine) with iterative scans so a
bot filter does not starve the result. Both return ``{chunk_id: raw_score}``, higher is better.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.retrieval.text_search import (
    PRUNE_KEEP,
    PRUNE_MIN_CHUNKS,
    english_stems,
    fts5_match,
    porter_stems,
    postgres_or_query,
    query_terms,
    rare_terms,
)
from chatwell.storage.tables import Bot, Chunk

HNSW_DIMENSIONS = (384,)
FTS_WEIGHTS = (2.0, 1.0)  # bm25 column weights: heading (title, section path), text
MAX_CACHED_BOTS = 32
EXACT_SCAN_MAX_CHUNKS = 20_000  # PostgreSQL: bots up to this size get an exact vector scan, not HNSW
STATISTICS_TTL_SECONDS = 300.0


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


async def bump_index_version(session: AsyncSession, bot_id: uuid.UUID) -> None:
    """Mark the bot's chunks as changed (call in the transaction that changes them)."""
    await session.execute(update(Bot).where(Bot.id == bot_id).values(index_version=Bot.index_version + 1))


async def purge_deleted_text(session: AsyncSession) -> None:
    """Make deleted chunks' words leave the keyword index itself (call after deleting chunks).

    SQLite's FTS5 (3.40 here, before its ``secure-delete`` option) only marks deleted rows and keeps
    their terms in its segments until they are merged; ``optimize`` merges them now. It rewrites the
    index (about a second per 50,000 chunks), a price paid on deletions only. PostgreSQL keeps the
    tsvector in the chunk's own row, which is gone with it.
    """
    if session.bind.dialect.name == "sqlite":
        await session.execute(text("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')"))


@dataclass(slots=True)
class _Matrix:
    version: int
    ids: np.ndarray
    vectors: np.ndarray


class SqliteSearchIndex:
    """FTS5 keyword search and exact in-memory vector search for the embedded default."""

    def __init__(self) -> None:
        self._matrices: OrderedDict[tuple[uuid.UUID, int], _Matrix] = OrderedDict()
        self._lock = threading.Lock()

    async def store_vectors(self, session: AsyncSession, chunks: Sequence[Chunk],
                            vectors: np.ndarray) -> None:
        for chunk, vector in zip(chunks, vectors, strict=True):
            chunk.embedding = vector_bytes(vector)
            chunk.embedding_dim = int(vector.shape[0])

    async def keyword_search(self, session: AsyncSession, bot_id: uuid.UUID, query: str,
                             k: int) -> dict[int, float]:
        terms = query_terms(query)
        if len(terms) > PRUNE_KEEP:
            terms = await self._rare_terms(session, terms)
        match = fts5_match(terms)
        if not match:
            return {}
        rows = await session.execute(
            text(
                "SELECT c.id, -bm25(chunks_fts, :wh, :wt) AS score FROM chunks_fts"
                " JOIN chunks c ON c.id = chunks_fts.rowid"
                " WHERE chunks_fts MATCH :match AND c.bot_id = :bot"
                " ORDER BY bm25(chunks_fts, :wh, :wt) LIMIT :k"
            ),
            {"match": match, "bot": _bot_param(session, bot_id), "k": k,
             "wh": FTS_WEIGHTS[0], "wt": FTS_WEIGHTS[1]},
        )
        return {int(row[0]): float(row[1]) for row in rows}

    async def candidates(self, session: AsyncSession, bot_id: uuid.UUID, query: str, vector: np.ndarray,
                         depth: int) -> tuple[dict[int, float], dict[int, float]]:
        """The ``depth`` best chunks by keyword and by vector, each candidate scored on the vector
        side too. The keyword query (in the driver's thread) and the vector scan (in a worker
        thread) run at the same time: both release the GIL, so a query costs the slower of the two."""
        matrix = await self._matrix(session, bot_id, int(vector.shape[0]))
        query_vector = np.asarray(vector, dtype=np.float32)
        dense_scan = asyncio.ensure_future(asyncio.to_thread(_top_k, matrix, query_vector, depth))
        try:
            lexical = await self.keyword_search(session, bot_id, query, depth)
        finally:
            dense = await dense_scan
        missing = [cid for cid in lexical if cid not in dense]
        dense |= _scores_of(matrix, query_vector, missing)
        return lexical, dense

    async def _rare_terms(self, session: AsyncSession, terms: list[str]) -> list[str]:
        """``terms`` without the common ones when the index is large (``text_search.rare_terms``);
        the counts come from the FTS index itself (``chunks_fts_terms``, by Porter stem)."""
        total = await _fts_row_count(session)
        if total < PRUNE_MIN_CHUNKS:
            return terms
        stems = porter_stems(terms)
        placeholders = ", ".join(f":t{i}" for i in range(len(stems)))
        rows = await session.execute(text(f"SELECT term, doc FROM chunks_fts_terms WHERE term IN ({placeholders})"),
                                     {f"t{i}": stem for i, stem in enumerate(stems)})
        by_stem = {row[0]: int(row[1]) for row in rows}
        return rare_terms(terms, {t: by_stem.get(s, 0) for t, s in zip(terms, stems)}, total)

    async def vector_search(self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray,
                            k: int) -> dict[int, float]:
        matrix = await self._matrix(session, bot_id, int(vector.shape[0]))
        return _top_k(matrix, np.asarray(vector, dtype=np.float32), k)

    async def vector_scores(self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray,
                            chunk_ids: Sequence[int]) -> dict[int, float]:
        """Exact cosine similarity of the given chunks (e.g. keyword-only hits) to ``vector``."""
        matrix = await self._matrix(session, bot_id, int(vector.shape[0]))
        return _scores_of(matrix, np.asarray(vector, dtype=np.float32), chunk_ids)

    async def _matrix(self, session: AsyncSession, bot_id: uuid.UUID, dim: int) -> _Matrix:
        # Read the version and the rows in one transaction, so they describe the same snapshot.
        version = await session.scalar(select(Bot.index_version).where(Bot.id == bot_id)) or 0
        key = (bot_id, dim)
        with self._lock:
            cached = self._matrices.get(key)
            if cached is not None and cached.version == version:
                self._matrices.move_to_end(key)
                return cached
        rows = (await session.execute(
            select(Chunk.id, Chunk.embedding)
            .where(Chunk.bot_id == bot_id, Chunk.embedding_dim == dim)
            .order_by(Chunk.id)
        )).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = (np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
                   if rows else np.zeros((0, dim), dtype=np.float32))
        matrix = _Matrix(version, ids, vectors)
        with self._lock:
            self._matrices[key] = matrix
            self._matrices.move_to_end(key)
            while len(self._matrices) > MAX_CACHED_BOTS:
                self._matrices.popitem(last=False)
        return matrix


def _top_k(matrix: _Matrix, vector: np.ndarray, k: int) -> dict[int, float]:
    """Exact cosine top ``k`` of the bot's matrix (unit vectors: a dot product)."""
    if matrix.ids.size == 0 or k <= 0:
        return {}
    scores = matrix.vectors @ vector
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    return {int(matrix.ids[i]): float(scores[i]) for i in top}


def _scores_of(matrix: _Matrix, vector: np.ndarray, chunk_ids: Sequence[int]) -> dict[int, float]:
    if not chunk_ids or matrix.ids.size == 0:
        return {}
    wanted = np.asarray(list(chunk_ids), dtype=np.int64)
    positions = np.clip(np.searchsorted(matrix.ids, wanted), 0, matrix.ids.size - 1)
    found = matrix.ids[positions] == wanted
    scores = matrix.vectors[positions[found]] @ vector
    return {int(i): float(s) for i, s in zip(wanted[found], scores)}


class PostgresSearchIndex:
    """Full-text search and pgvector HNSW search on PostgreSQL."""

    async def store_vectors(self, session: AsyncSession, chunks: Sequence[Chunk],
                            vectors: np.ndarray) -> None:
        if not chunks:
            return
        await session.flush()
        await session.execute(
            text("UPDATE chunks SET embedding_vec = CAST(:v AS vector), embedding_dim = :d WHERE id = :id"),
            [{"v": vector_literal(v), "d": int(v.shape[0]), "id": c.id} for c, v in zip(chunks, vectors, strict=True)],
        )

    def __init__(self) -> None:
        self._counts: OrderedDict[uuid.UUID, tuple[int, int]] = OrderedDict()  # bot -> (version, chunks)
        self._common: tuple[float, int, dict[str, float]] = (0.0, 0, {})  # (read at, total, lexeme -> share)

    async def keyword_search(self, session: AsyncSession, bot_id: uuid.UUID, query: str,
                             k: int) -> dict[int, float]:
        small = await self._chunk_count(session, bot_id) <= EXACT_SCAN_MAX_CHUNKS
        return {cid: score for cid, (score, _) in (await self._keyword(session, bot_id, query, k, None, small)).items()}

    async def _keyword(self, session: AsyncSession, bot_id: uuid.UUID, query: str, k: int,
                       vector: np.ndarray | None, small: bool) -> dict[int, tuple[float, float | None]]:
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
        similarity = (f"CASE WHEN embedding_dim = {int(vector.shape[0])} THEN 1 - (embedding_vec <=> CAST(:v AS vector))"
                      " END" if vector is not None else "NULL::float8")
        rows = await session.execute(
            text(
                f"SELECT id, score, {similarity} FROM ("
                " SELECT id, embedding_vec, embedding_dim, ts_rank_cd(search_vector, q, 1) AS score"
                " FROM chunks, to_tsquery('english', :q) AS q"
                f" WHERE bot_id = :bot AND {match} ORDER BY score DESC LIMIT :k) AS best"
            ),
            {"q": tsquery, "bot": bot_id, "k": k,
             **({"v": vector_literal(vector)} if vector is not None else {})},
        )
        return {int(row[0]): (float(row[1]), None if row[2] is None else float(row[2])) for row in rows}

    async def candidates(self, session: AsyncSession, bot_id: uuid.UUID, query: str, vector: np.ndarray,
                         depth: int) -> tuple[dict[int, float], dict[int, float]]:
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
            total = int(await session.scalar(text(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'chunks'::regclass")) or 0)
            row = (await session.execute(text(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
                " WHERE tablename = 'chunks' AND attname = 'search_vector'"))).first()
            shares = dict(zip(row[0], row[1])) if row is not None and row[0] else {}
            self._common = (time.monotonic(), total, shares)
        if total < PRUNE_MIN_CHUNKS or not shares:
            return terms
        lexemes = english_stems(terms)
        return rare_terms(terms, {t: int(shares.get(x, 0.0) * total) for t, x in zip(terms, lexemes)}, total)

    async def _chunk_count(self, session: AsyncSession, bot_id: uuid.UUID) -> int:
        """The bot's chunk count, cached per index version (one primary-key read per search)."""
        version = await session.scalar(select(Bot.index_version).where(Bot.id == bot_id)) or 0
        cached = self._counts.get(bot_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        count = int(await session.scalar(text("SELECT count(*) FROM chunks WHERE bot_id = :bot"),
                                         {"bot": bot_id}) or 0)
        self._counts[bot_id] = (version, count)
        while len(self._counts) > 10_000:
            self._counts.popitem(last=False)
        return count

    async def vector_search(self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray,
                            k: int) -> dict[int, float]:
        small = await self._chunk_count(session, bot_id) <= EXACT_SCAN_MAX_CHUNKS
        return await self._vector(session, bot_id, vector, k, small)

    async def _vector(self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, k: int,
                      small: bool) -> dict[int, float]:
        dim = int(vector.shape[0])
        literal = vector_literal(vector)
        if dim in HNSW_DIMENSIONS and small:
            # A bot of a few thousand chunks is scanned exactly through its bot index: faster than
            # an HNSW walk that must skip every other bot's vectors, and exact. (This expression
            # does not match the HNSW index's, so the planner cannot pick it.)
            rows = await session.execute(
                text(f"SELECT id, embedding_vec <=> CAST(:v AS vector) AS d FROM chunks"
                     f" WHERE bot_id = :bot AND embedding_dim = {dim} ORDER BY d LIMIT :k"),
                {"v": literal, "bot": bot_id, "k": k})
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
            text(f"SELECT id, {distance} AS d FROM chunks WHERE bot_id = :bot AND embedding_dim = {dim}"
                 f" ORDER BY d LIMIT :k"),
            {"v": literal, "bot": bot_id, "k": k},
        )
        return {int(row[0]): 1.0 - float(row[1]) for row in rows}


    async def vector_scores(self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray,
                            chunk_ids: Sequence[int]) -> dict[int, float]:
        if not chunk_ids:
            return {}
        rows = await session.execute(
            text("SELECT id, 1 - (embedding_vec <=> CAST(:v AS vector)) FROM chunks"
                 " WHERE bot_id = :bot AND embedding_dim = :dim AND id = ANY(:ids)"),
            {"v": vector_literal(vector), "bot": bot_id, "dim": int(vector.shape[0]),
             "ids": list(chunk_ids)},
        )
        return {int(row[0]): float(row[1]) for row in rows}


SearchIndex = SqliteSearchIndex | PostgresSearchIndex


def search_index_for(dialect: str) -> SearchIndex:
    return PostgresSearchIndex() if dialect == "postgresql" else SqliteSearchIndex()


async def _fts_row_count(session: AsyncSession) -> int:
    """Rows in the FTS index, read from its "averages" record (FTS5 keeps the total row count
    there as the first varint), so it costs one lookup instead of a count over every chunk."""
    blob = await session.scalar(text("SELECT block FROM chunks_fts_data WHERE id = 1"))
    if not blob:
        return 0
    value = 0
    for byte in bytes(blob[:9]):  # SQLite varint: 7 bits per byte, high bit = more follow
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return value


def _bot_param(session: AsyncSession, bot_id: uuid.UUID) -> object:
    # Raw SQL bypasses the Uuid type: SQLite stores UUIDs as 32 hex characters.
    return bot_id.hex
