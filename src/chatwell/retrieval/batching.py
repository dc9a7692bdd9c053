"""Coalesce concurrent ``embed`` calls into larger batches ("continuous batching").

Ingestion works on many small sources at once (a Q&A pair, a short page), and their chunks reach
the embedder one source at a time, a text or two per call.
Embedding each call alone wastes most of the model's throughput (tiny ONNX batches, each padded
to its own longest text).

How it works: one drain loop per embedder (per event loop, should one embedder be shared by
several) keeps at most one batch in flight (or the inner embedder's ``parallel``, when it runs
that many calls side by side: MiniLM's one-thread sessions, see its docstring; a call arriving
while a slot is free starts at once). While the model is busy, new calls wait in a FIFO
queue; as soon as it is free, the loop takes everything that queued up, whole calls only, up to
``max_batch`` texts, sorts those texts by length (characters; a cheap proxy for word pieces) so
similar lengths share a padded model batch, and hands them to the inner embedder in one call. The
rows are put back in each caller's own order. An idle model starts at once (after one loop tick,
so calls made in the same tick share the batch): no time window is needed, so a lone query does
not wait for company that is not coming. ``window_seconds`` still delays the first batch after an
idle spell, for callers that want it.

* A call longer than ``max_batch`` is split into ``max_batch`` slices submitted one after the
  other, so other callers' texts get a turn between its slices; shorter calls are never split.
* A failure of the inner embedder (or a result of the wrong shape) is raised in every call of
  that batch; queued calls go on to the next batch. If the drain loop itself is cancelled (the
  event loop shutting down), every waiting call gets an ``EmbeddingError``: nobody hangs.
* A cancelled caller is simply dropped: its texts leave the queue, or its rows of a batch in
  flight are discarded; the other callers are not affected.
* The inner ``embed`` is already asynchronous (MiniLM runs in a worker thread), so the event loop
  never blocks here.

Why: batches sent on a timer queued behind the model's run lock, so during ingestion it saw a
few texts at a time; taking everything that waited while the model was busy keeps its batches
full. A batch can only hold the calls that are waiting, hence the default ingestion concurrency
of 16. ``batch_sizes`` counts the texts per batch sent to the inner embedder (the ingestion
benchmarks print it; their figures are on the docs' performance page).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chatwell.embedders.base import Embedder, EmbeddingError

__all__ = ["BatchingEmbedder"]


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future[np.ndarray]


@dataclass(eq=False)
class _Queue:
    """The waiting calls and the drain loop of one event loop."""

    pending: deque[_Request] = field(default_factory=deque)
    drainer: asyncio.Task[None] | None = None
    arrived: asyncio.Event = field(
        default_factory=asyncio.Event
    )  # a call queued: a free slot may take it


class BatchingEmbedder:
    """Wraps an embedder; concurrent ``embed`` calls share batches (see the module docstring)."""

    def __init__(self, inner: Embedder, *, max_batch: int = 64, window_seconds: float = 0.0):
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        if window_seconds < 0:
            raise ValueError("window_seconds must not be negative")
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_length = getattr(inner, "max_length", 0)  # part of the vector cache's key
        self.max_batch = max_batch
        self.window = window_seconds
        # Batches in flight at once: as many as the model runs side by side (MiniLM's
        # ``parallel`` sessions), else one.
        self.in_flight = max(1, int(getattr(inner, "parallel", 1) or 1))
        #: texts per batch sent to the inner embedder -> number of such batches
        self.batch_sizes: Counter[int] = Counter()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"BatchingEmbedder({self.inner!r}, max_batch={self.max_batch})"

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) <= self.max_batch:
            return await self._submit(texts)
        # One slice at a time: each goes to the back of the queue, so others are not starved.
        parts = [
            await self._submit(texts[start : start + self.max_batch])
            for start in range(0, len(texts), self.max_batch)
        ]
        return np.concatenate(parts)

    async def _submit(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        queue.pending.append(_Request(texts, future))
        queue.arrived.set()
        if queue.drainer is None:
            queue.drainer = loop.create_task(self._drain(queue))
        # If this caller is cancelled, awaiting cancels ``future`` too; the drain loop skips it.
        return await future

    async def _drain(self, queue: _Queue) -> None:
        running: dict[asyncio.Task[None], list[_Request]] = {}
        try:
            # Let calls made in the same loop tick (or within the window) join the first batch.
            await asyncio.sleep(self.window)
            while True:
                while len(running) < self.in_flight:
                    batch = self._take(queue.pending)
                    if not batch:
                        break
                    running[asyncio.ensure_future(self._run(batch))] = batch
                if not running:
                    break
                # A batch ends, or (with a slot free) a call arrives to fill it.
                arrival = None
                if len(running) < self.in_flight:
                    queue.arrived.clear()
                    arrival = asyncio.ensure_future(queue.arrived.wait())
                try:
                    done, _ = await asyncio.wait(
                        {*running, *([arrival] if arrival else [])},
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    if arrival is not None:
                        arrival.cancel()
                for task in done:
                    running.pop(task, None)  # type: ignore[call-overload]
        except BaseException:
            # Only reached if this task is cancelled (or on a bug): fail every waiter, then stop.
            error = EmbeddingError("the embedding batcher stopped before this call was embedded")
            for task in running:
                task.cancel()
            for request in [*(r for batch in running.values() for r in batch), *queue.pending]:
                if not request.future.done():
                    request.future.set_exception(error)
            queue.pending.clear()
            raise
        finally:
            # No await between the last look at an empty queue and here, so no call is stranded:
            # the next call starts a new drain loop.
            queue.drainer = None

    def _take(self, pending: deque[_Request]) -> list[_Request]:
        """Whole calls from the head of the queue, up to ``max_batch`` texts (FIFO, no skipping)."""
        batch: list[_Request] = []
        count = 0
        while pending:
            request = pending[0]
            if request.future.done():  # its caller was cancelled while it waited
                pending.popleft()
                continue
            if batch and count + len(request.texts) > self.max_batch:
                break
            batch.append(pending.popleft())
            count += len(request.texts)
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        # Longest first, stable: similar lengths end up in the same padded model batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        self.batch_sizes[len(texts)] += 1
        try:
            vectors = np.asarray(await self.inner.embed([texts[i] for i in order]))
            if vectors.shape != (len(texts), self.dimension):
                raise EmbeddingError(
                    f"embedder returned shape {vectors.shape}, "
                    f"expected ({len(texts)}, {self.dimension})"
                )
        except Exception as exc:  # every caller of this batch gets the failure, not a hang
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        rows = np.empty_like(vectors)
        rows[order] = vectors  # back to the order the texts arrived in
        start = 0
        for request in batch:
            end = start + len(request.texts)
            if not request.future.done():
                request.future.set_result(rows[start:end])
            start = end
