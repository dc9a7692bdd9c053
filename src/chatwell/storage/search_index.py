"""The keyword and vector indexes over a bot's chunks, one implementation per database.

SQLite (the embedded default): BM25 over each chunk's analysed terms (``chunks.terms``) and a
cosine scan over its float32 vectors (``chunks.embedding``), both in memory, loaded once per bot
and index version. PostgreSQL: ``ts_rank_cd`` over a weighted tsvector, and pgvector (an exact
scan for bots up to 20k chunks, HNSW with iterative scans above). Both return
``{chunk_id: raw_score}``, higher is better.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.retrieval.keyword_index import KeywordIndex, encode_terms, term_keys
from chatwell.retrieval.text_search import (
    PRUNE_KEEP,
    PRUNE_MIN_CHUNKS,
    english_stems,
    postgres_or_query,
    query_terms,
    rare_terms,
)
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Chunk

HNSW_DIMENSIONS = (384,)
MAX_CACHED_ENTRIES = 64  # SQLite: bots' vector matrices and keyword postings kept in memory ...
MAX_CACHED_BYTES = 2 << 30  # ... within this many bytes (a 100k-chunk bot takes about 300 MB)
INLINE_SCAN_MAX_ROWS = (
    20_000  # SQLite: smaller bots are scanned on the event loop's thread (< 1 ms)
)
QUANTIZED_MIN_ROWS = 20_000  # SQLite: bots this large scan an int8 copy of their vectors first ...
RESCORE_FACTOR, RESCORE_MIN = 3, 300  # ... and rescore this many of the best rows exactly
EXACT_SCAN_MAX_CHUNKS = (
    20_000  # PostgreSQL: bots up to this size get an exact vector scan, not HNSW
)
STATISTICS_TTL_SECONDS = 300.0


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


async def bump_index_version(session: AsyncSession, bot_id: uuid.UUID) -> None:
    """Mark the bot's chunks as changed (call in the transaction that changes them)."""
    await session.execute(
        update(Bot).where(Bot.id == bot_id).values(index_version=Bot.index_version + 1)
    )


@dataclass(slots=True)
class _Matrix:
    """A bot's unit vectors of one dimension, rows in chunk-id order; large ones also int8."""

    ids: np.ndarray
    vectors: np.ndarray
    quantized: np.ndarray | None = None  # int8 rows, scaled by one factor for the whole matrix

    @property
    def nbytes(self) -> int:
        return (
            self.ids.nbytes
            + self.vectors.nbytes
            + (0 if self.quantized is None else self.quantized.nbytes)
        )


@dataclass(slots=True)
class _Lexicon:
    """A bot's keyword postings (``keyword_index.KeywordIndex``) and the chunk id of each position."""

    ids: np.ndarray
    index: KeywordIndex

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.index.nbytes


class SqliteSearchIndex:
    """Keyword (BM25) and vector search for the embedded default, both over in-memory copies of a
    bot's chunks that are loaded once per bot and index version.

    Keyword: ``retrieval.keyword_index`` over the terms analysed when each chunk was stored.
    Vectors: an exact cosine scan of the float32 rows; bots of
    :data:`QUANTIZED_MIN_ROWS` chunks or more scan an int8 copy first (a quarter of the memory
    traffic, SIMD dot products) and rescore the best few hundred rows exactly.
    """

    def __init__(self, db: Database, *, max_cached_bytes: int = MAX_CACHED_BYTES) -> None:
        self.db = db  # each query reads the bot's index version through ``db.read_now``
        self._cache: OrderedDict[tuple[object, ...], tuple[int, _Matrix | _Lexicon]] = OrderedDict()
        self._loading: dict[tuple[object, ...], asyncio.Future[_Matrix | _Lexicon]] = {}
        self._lock = threading.Lock()
        self.max_cached_bytes = max_cached_bytes

    async def store_vectors(
        self, session: AsyncSession, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        terms = await asyncio.to_thread(lambda: [encode_terms(c.heading, c.text) for c in chunks])
        for chunk, vector, encoded in zip(chunks, vectors, terms, strict=True):
            chunk.embedding = vector_bytes(vector)
            chunk.embedding_dim = int(vector.shape[0])
            chunk.terms = encoded

    async def keyword_search(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, k: int
    ) -> dict[int, float]:
        keys = term_keys(query_terms(query))
        if not keys:
            return {}
        lexicon = await self._lexicon(session, bot_id, await self._version(bot_id))
        return await asyncio.to_thread(_keyword_top, lexicon, keys, k)

    async def candidates(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, vector: np.ndarray, depth: int
    ) -> tuple[dict[int, float], dict[int, float]]:
        """The ``depth`` best chunks by keyword and by vector, each candidate scored on the vector
        side too. For a bot of :data:`INLINE_SCAN_MAX_ROWS` chunks or more both scans run in worker
        threads at the same time (numpy and the SIMD kernel release the GIL), so a query costs
        about the slower of the two; a smaller bot is scanned right here."""
        version = await self._version(bot_id)
        query_vector = np.asarray(vector, dtype=np.float32)
        keys = term_keys(query_terms(query))
        matrix = await self._matrix(session, bot_id, int(vector.shape[0]), version)
        lexicon = await self._lexicon(session, bot_id, version) if keys else None
        if matrix.ids.size < INLINE_SCAN_MAX_ROWS:
            # Both scans take well under a millisecond here: less than handing them to a thread
            # (which, while the event loop runs Python, waits for the GIL up to 5 ms).
            dense = _top_k(matrix, query_vector, depth)
            lexical = _keyword_top(lexicon, keys, depth) if lexicon is not None else {}
        else:
            dense_scan = asyncio.ensure_future(
                asyncio.to_thread(_top_k, matrix, query_vector, depth)
            )
            try:
                lexical = (
                    await asyncio.to_thread(_keyword_top, lexicon, keys, depth)
                    if lexicon is not None
                    else {}
                )
            finally:
                dense = await dense_scan
        missing = [cid for cid in lexical if cid not in dense]
        dense |= _scores_of(matrix, query_vector, missing)
        return lexical, dense

    async def vector_search(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, k: int
    ) -> dict[int, float]:
        matrix = await self._matrix(
            session, bot_id, int(vector.shape[0]), await self._version(bot_id)
        )
        return await asyncio.to_thread(_top_k, matrix, np.asarray(vector, dtype=np.float32), k)

    async def vector_scores(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        """Exact cosine similarity of the given chunks (e.g. keyword-only hits) to ``vector``."""
        matrix = await self._matrix(
            session, bot_id, int(vector.shape[0]), await self._version(bot_id)
        )
        return _scores_of(matrix, np.asarray(vector, dtype=np.float32), chunk_ids)

    async def _version(self, bot_id: uuid.UUID) -> int:
        """The bot's index version, read on every query: a change made by another process is seen
        at once (a point read; on SQLite without leaving this thread)."""
        return (
            await self.db.read_now(
                lambda session: session.scalar(select(Bot.index_version).where(Bot.id == bot_id))
            )
            or 0
        )

    async def _matrix(
        self, session: AsyncSession, bot_id: uuid.UUID, dim: int, version: int
    ) -> _Matrix:
        async def load() -> _Matrix:
            rows = (
                await session.execute(
                    select(Chunk.id, Chunk.embedding)
                    .where(Chunk.bot_id == bot_id, Chunk.embedding_dim == dim)
                    .order_by(Chunk.id)
                )
            ).all()
            return await asyncio.to_thread(_build_matrix, rows, dim)

        return await self._cached(("vectors", bot_id, dim), version, load)  # type: ignore[return-value]

    async def _lexicon(self, session: AsyncSession, bot_id: uuid.UUID, version: int) -> _Lexicon:
        async def load() -> _Lexicon:
            rows = (
                await session.execute(
                    select(Chunk.id, Chunk.terms).where(Chunk.bot_id == bot_id).order_by(Chunk.id)
                )
            ).all()
            unanalysed = [row[0] for row in rows if row[1] is None]  # stored before migration 0008
            texts: dict[int, tuple[str, str]] = {}
            for first in range(0, len(unanalysed), 10_000):
                part = unanalysed[first : first + 10_000]
                texts |= {
                    r[0]: (r[1], r[2])
                    for r in await session.execute(
                        select(Chunk.id, Chunk.heading, Chunk.text).where(Chunk.id.in_(part))
                    )
                }
            return await asyncio.to_thread(_build_lexicon, rows, texts)

        return await self._cached(("terms", bot_id), version, load)  # type: ignore[return-value]

    async def _cached(
        self,
        key: tuple[object, ...],
        version: int,
        load: Callable[[], Awaitable[_Matrix | _Lexicon]],
    ) -> _Matrix | _Lexicon:
        """The cached value of ``key`` at ``version``, else ``load()``-ed once however many
        queries ask for it at the same time (a cold 100k-chunk bot takes a second or two)."""
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == version:
                self._cache.move_to_end(key)
                return cached[1]
        pending = self._loading.get((*key, version))
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                return await self._cached(
                    key, version, load
                )  # its loader's request went away: load here
        future: asyncio.Future[_Matrix | _Lexicon] = asyncio.get_running_loop().create_future()
        self._loading[(*key, version)] = future
        try:
            value = await load()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: the waiters, if any, raise it too
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(value)
        finally:
            self._loading.pop((*key, version), None)
        with self._lock:
            self._cache[key] = (version, value)
            self._cache.move_to_end(key)
            total = sum(entry.nbytes for _, entry in self._cache.values())
            while len(self._cache) > 1 and (
                total > self.max_cached_bytes or len(self._cache) > MAX_CACHED_ENTRIES
            ):
                _, (_, dropped) = self._cache.popitem(last=False)
                total -= dropped.nbytes
        return value


def _build_matrix(rows: Sequence[Any], dim: int) -> _Matrix:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = (
        np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        if rows
        else np.zeros((0, dim), dtype=np.float32)
    )
    quantized = None
    if len(rows) >= QUANTIZED_MIN_ROWS and _simsimd() is not None:
        scale = 127.0 / max(float(np.abs(vectors).max()), 1e-12)
        quantized = np.clip(np.rint(vectors * scale), -127, 127).astype(np.int8)
    return _Matrix(ids, vectors, quantized)


def _build_lexicon(rows: Sequence[Any], texts: dict[int, tuple[str, str]]) -> _Lexicon:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    encoded = [r[1] if r[1] is not None else encode_terms(*texts.get(r[0], ("", ""))) for r in rows]
    return _Lexicon(ids, KeywordIndex.build(encoded))


def _keyword_top(lexicon: _Lexicon, keys: list[int], k: int) -> dict[int, float]:
    positions, scores = lexicon.index.top(keys, k)
    return {int(lexicon.ids[p]): float(s) for p, s in zip(positions, scores)}


@functools.cache
def _simsimd() -> Any:
    """The SIMD dot-product kernels (``simsimd``), or None where the wheel is missing: then
    every scan is the exact float32 one."""
    try:
        import simsimd
    except ImportError:
        return None
    return simsimd


def _top_k(matrix: _Matrix, vector: np.ndarray, k: int) -> dict[int, float]:
    """Cosine top ``k`` of the bot's matrix (unit vectors: a dot product). Exact for a small
    matrix; a large one is ranked on its int8 copy first and the best ``RESCORE_FACTOR * k``
    rows (at least ``RESCORE_MIN``) are rescored in float32 (recall@100 of 1.0 measured on 100k
    random unit vectors with 300 rescored)."""
    if matrix.ids.size == 0 or k <= 0:
        return {}
    k = min(k, matrix.ids.size)
    if matrix.quantized is None:
        scores = matrix.vectors @ vector
        top = np.argpartition(-scores, k - 1)[:k]
        return {int(matrix.ids[i]): float(scores[i]) for i in top}
    query = np.clip(
        np.rint(vector * (127.0 / max(float(np.abs(vector).max()), 1e-12))), -127, 127
    ).astype(np.int8)
    approximate = np.asarray(_simsimd().cdist(query[None, :], matrix.quantized, metric="dot"))[0]
    pool = min(matrix.ids.size, max(RESCORE_FACTOR * k, RESCORE_MIN))
    rows = np.argpartition(-approximate, pool - 1)[:pool]
    scores = matrix.vectors[rows] @ vector
    best = np.argpartition(-scores, k - 1)[:k]
    return {int(matrix.ids[rows[i]]): float(scores[i]) for i in best}


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


SearchIndex = SqliteSearchIndex | PostgresSearchIndex


def search_index_for(db: Database) -> SearchIndex:
    return PostgresSearchIndex() if db.is_postgres else SqliteSearchIndex(db)
