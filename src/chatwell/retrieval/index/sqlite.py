"""The embedded default's search index: BM25 over each chunk's analysed terms
(``chunks.terms``) and a cosine scan over its float32 vectors (``chunks.embedding``), both in
memory, loaded once per bot and index version."""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.retrieval.keyword_index import KeywordIndex, encode_terms, term_keys
from chatwell.retrieval.text_search import query_terms
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Chunk

MAX_CACHED_ENTRIES = 64  # bots' vector matrices and keyword postings kept in memory ...
MAX_CACHED_BYTES = 2 << 30  # ... within this many bytes (a 100k-chunk bot takes about 300 MB)
INLINE_SCAN_MAX_ROWS = 20_000  # smaller bots are scanned on the event loop's thread (< 1 ms)
QUANTIZED_MIN_ROWS = 20_000  # bots this large scan an int8 copy of their vectors first ...
RESCORE_FACTOR, RESCORE_MIN = 3, 300  # ... and rescore this many of the best rows exactly


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


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
    rows (at least ``RESCORE_MIN``) are rescored in float32."""
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
