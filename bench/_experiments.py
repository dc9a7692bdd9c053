"""Proposed product changes, applied to benchmark objects only, so their gain can be measured.

Nothing here patches a product class globally or edits a product file: the benchmarks swap an
instance in for the one ``build_knowledge`` made, and say so in their output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import ROOT  # noqa: F401  (puts src/ on sys.path)

from chatwell.retrieval.batching import BatchingEmbedder


class ContinuousBatchingEmbedder(BatchingEmbedder):
    """EXPERIMENT: one batch in flight at a time; texts that arrive meanwhile wait for it and all
    go together in the next batch (up to ``max_batch`` texts).

    As shipped (83a42de), every 10 ms window that sees a call sends its own batch, and those
    batches queue on the model's run lock: during ingestion the model gets one or two sources'
    chunks at a time, padded to the longer one. Here the model, once free, takes everything
    that queued up, which ``MiniLMOnnxEmbedder`` sorts by length before padding. No window is
    needed any more (``window_seconds=0`` by default): an idle model starts at once, so a
    lone query does not wait 10 ms for company that is not coming.
    """

    def __init__(self, inner: Any, *, max_batch: int = 64, window_seconds: float = 0.0):
        super().__init__(inner, max_batch=max_batch, window_seconds=window_seconds)
        self._drainer: asyncio.Task[None] | None = None
        self.batches: list[int] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if len(texts) >= self.max_batch:
            return await self.inner.embed(texts)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            # Let calls made in the same loop tick join (and honour a window if one is set).
            await asyncio.sleep(self.window)
            while self._pending:
                batch: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
                count = 0
                while self._pending and (not batch or count + len(self._pending[0][0]) <= self.max_batch):
                    entry = self._pending.pop(0)
                    batch.append(entry)
                    count += len(entry[0])
                self.batches.append(count)
                try:
                    vectors = await self.inner.embed([t for texts, _ in batch for t in texts])
                except Exception as exc:  # noqa: BLE001 - every waiter of this batch gets it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for texts, future in batch:
                    if not future.done():
                        future.set_result(vectors[start:start + len(texts)])
                    start += len(texts)
        finally:
            # No await between the last emptiness check and here: no call can be stranded.
            self._drainer = None


def swap_batcher(embedder: Any, factory: Any = ContinuousBatchingEmbedder) -> Any:
    """Replace the ``BatchingEmbedder`` inside ``embedder``'s chain; returns the new instance."""
    node = embedder
    while node is not None:
        inner = getattr(node, "inner", None)
        if isinstance(inner, BatchingEmbedder):
            node.inner = factory(inner.inner, max_batch=inner.max_batch)
            return node.inner
        node = inner
    raise RuntimeError("no BatchingEmbedder in the embedder chain")
