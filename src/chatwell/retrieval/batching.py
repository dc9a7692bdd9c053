"""Coalesce concurrent ``embed`` calls into larger batches.

Ingestion works on many small sources at once (a Q&A pair, a short page); embedding each alone
wastes most of the model's throughput. Calls that arrive within a short window share one batch;
a call arriving while a batch is being embedded starts the next window, so none is left waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from chatwell.retrieval.embeddings import Embedder


class BatchingEmbedder:
    def __init__(self, inner: Embedder, *, max_batch: int = 64, window_seconds: float = 0.01):
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_length = getattr(inner, "max_length", 0)  # part of the vector cache's key
        self.max_batch = max_batch
        self.window = window_seconds
        self._pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_sync(texts)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if len(texts) >= self.max_batch:
            return await self.inner.embed(texts)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after_window())
        return await future

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._pending = self._pending, []
        # From here on, new calls open the next window instead of joining a batch already sent.
        self._flusher = None
        try:
            vectors = await self.inner.embed([text for texts, _ in batch for text in texts])
        except BaseException as exc:  # every waiter gets the failure, not a hang
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for texts, future in batch:
            if not future.done():
                future.set_result(vectors[start:start + len(texts)])
            start += len(texts)
