"""The embedding batcher the ingestion worker shares between sources must never strand a call:
a source whose texts arrive while another batch is being embedded must still get its vectors
(otherwise it stays ``processing`` until its lease runs out)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from chatwell.retrieval.batching import BatchingEmbedder


class SlowEmbedder:
    """A stand-in model whose first batch blocks until released."""

    model_id = "slow-test"
    dimension = 3

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.batches: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.started.set()
        await self.release.wait()
        return np.ones((len(texts), self.dimension), dtype=np.float32)


async def test_a_call_arriving_during_a_flush_is_embedded_too() -> None:
    inner = SlowEmbedder()
    batcher = BatchingEmbedder(inner, window_seconds=0.01)
    first = asyncio.create_task(batcher.embed(["first source"]))
    await asyncio.wait_for(inner.started.wait(), 5)  # the first batch is now being embedded
    second = asyncio.create_task(batcher.embed(["second source"]))
    await asyncio.sleep(0.05)  # well past the batching window
    inner.release.set()
    assert (await asyncio.wait_for(first, 5)).shape == (1, 3)
    done, _ = await asyncio.wait({second}, timeout=2)
    if not done:
        second.cancel()
    assert done, (
        "BatchingEmbedder stranded a call that arrived while a batch was being embedded; "
        f"batches sent to the model: {inner.batches}"
    )
    assert second.result().shape == (1, 3)
