"""``BatchingEmbedder``: continuous batching of concurrent ``embed`` calls.

Semantics are checked with :class:`HashEmbedder`, a small deterministic embedder whose vector for
a text is derived from the text's SHA-256 (so a row handed to the wrong caller, or un-sorted
wrongly, is caught), and whose batches can be held open to make calls arrive "while the model is
busy". The real MiniLM model checks the same mapping end to end and that the loop never blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from chatwell.embedders.base import Embedder, EmbeddingError
from chatwell.embedders.minilm import MiniLMOnnxEmbedder
from chatwell.retrieval.batching import BatchingEmbedder


def hash_vectors(texts: Sequence[str], dimension: int = 16) -> np.ndarray:
    rows = []
    for text in texts:
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        rows.append(np.frombuffer(digest[:dimension], dtype=np.uint8).astype(np.float32) - 127.5)
    matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), dimension)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


class HashEmbedder:
    """Deterministic embedder; records every batch, can hold batches open, fail or misbehave."""

    model_id = "hash-test"
    dimension = 16
    max_length = 99

    def __init__(self, *, hold: bool = False) -> None:
        self.batches: list[list[str]] = []
        # While held, each batch waits for a permit (``allow``) until ``open`` lets all through.
        self._permits: asyncio.Semaphore | None = asyncio.Semaphore(0) if hold else None
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_when: Callable[[list[str]], bool] = lambda texts: False
        self.drop_last_row = False

    def allow(self, batches: int = 1) -> None:
        assert self._permits is not None
        for _ in range(batches):
            self._permits.release()

    def open(self) -> None:
        permits, self._permits = self._permits, None
        if permits is not None:
            self.allow_all(permits)

    @staticmethod
    def allow_all(permits: asyncio.Semaphore) -> None:
        for _ in range(1000):
            permits.release()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        self.batches.append(texts)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._permits is not None:
                await self._permits.acquire()
            if self.fail_when(texts):
                raise RuntimeError(f"model failed on a batch of {len(texts)}")
            vectors = hash_vectors(texts, self.dimension)
            return vectors[:-1] if self.drop_last_row else vectors
        finally:
            self.in_flight -= 1


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def hold_first_batch(
    batcher: BatchingEmbedder, inner: HashEmbedder, texts: list[str]
) -> asyncio.Task[np.ndarray]:
    """Start a call and wait until its batch is being embedded (the model is now busy)."""
    task = asyncio.create_task(batcher.embed(texts))
    await until(lambda: len(inner.batches) == 1)
    return task


def assert_rows(result: np.ndarray, texts: Sequence[str]) -> None:
    np.testing.assert_array_equal(result, hash_vectors(list(texts)))


# ---------------------------------------------------------------------------- mapping, coalescing


async def test_it_satisfies_the_protocol_and_keeps_the_cache_key_fields() -> None:
    batcher = BatchingEmbedder(HashEmbedder())
    assert isinstance(batcher, Embedder)
    assert (batcher.model_id, batcher.dimension, batcher.max_length) == ("hash-test", 16, 99)
    assert_rows(await batcher.embed(["a", "bb"]), ["a", "bb"])
    with pytest.raises(ValueError):
        BatchingEmbedder(HashEmbedder(), max_batch=0)


async def test_a_lone_call_goes_to_the_model_at_once() -> None:
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner)
    assert_rows(await batcher.embed(["only one"]), ["only one"])
    assert (await batcher.embed([])).shape == (0, 16)
    with pytest.raises(TypeError):
        await batcher.embed("not a list")
    # No time window: the call reaches the model within a few loop iterations.
    hold = HashEmbedder(hold=True)
    held = BatchingEmbedder(hold)
    task = asyncio.create_task(held.embed(["query"]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert hold.batches == [["query"]]
    hold.open()
    assert_rows(await task, ["query"])


async def test_calls_arriving_during_a_batch_are_coalesced_sorted_and_mapped_back() -> None:
    inner = HashEmbedder(hold=True)
    batcher = BatchingEmbedder(inner, max_batch=64)
    first = await hold_first_batch(batcher, inner, ["first source"])
    calls = [
        ["a medium length chunk of text", "x", "the longest chunk of all in this test, by far"],
        ["zz", "a chunk of twenty-two"],
        ["same length A", "same length B", "q"],
        ["one more text of some length"],
    ]
    tasks = [asyncio.create_task(batcher.embed(texts)) for texts in calls]
    await asyncio.sleep(0.02)
    assert len(inner.batches) == 1  # the model is busy: everybody waits
    inner.open()
    assert_rows(await first, ["first source"])
    results = await asyncio.gather(*tasks)
    for texts, result in zip(calls, results):
        assert_rows(result, texts)  # each caller gets its own rows, in its own order
    every_text = [t for texts in calls for t in texts]
    # All four calls shared the next batch, which the model got sorted longest first (stable).
    assert inner.batches[1] == sorted(every_text, key=len, reverse=True)
    assert inner.batches[1] != every_text
    assert len(inner.batches) == 2
    assert inner.max_in_flight == 1  # one batch in flight at a time
    assert batcher.batch_sizes == {1: 1, len(every_text): 1}


async def test_a_model_that_runs_batches_side_by_side_gets_that_many_in_flight() -> None:
    """``parallel`` (MiniLM's side-by-side sessions): a call arriving while a slot is free starts
    at once; calls arriving while every slot is busy share the next free one."""
    inner = HashEmbedder(hold=True)
    inner.parallel = 2  # type: ignore[attr-defined]
    batcher = BatchingEmbedder(inner, max_batch=64)
    first = await hold_first_batch(batcher, inner, ["first"])
    second = asyncio.create_task(batcher.embed(["second"]))
    await until(lambda: len(inner.batches) == 2)  # the free slot took it at once
    assert inner.in_flight == 2
    later = [asyncio.create_task(batcher.embed([f"later {i}"])) for i in range(3)]
    await asyncio.sleep(0.02)
    assert len(inner.batches) == 2  # both slots busy: the later calls wait
    inner.allow(1)
    await until(lambda: len(inner.batches) == 3)
    assert sorted(inner.batches[2]) == [
        "later 0",
        "later 1",
        "later 2",
    ]  # together, in the freed slot
    inner.open()
    for task, texts in zip(
        [first, second, *later], [["first"], ["second"], *[[f"later {i}"] for i in range(3)]]
    ):
        assert_rows(await task, texts)
    assert inner.max_in_flight == 2


async def test_batches_take_whole_calls_up_to_max_batch_in_arrival_order() -> None:
    inner = HashEmbedder(hold=True)
    batcher = BatchingEmbedder(inner, max_batch=5)
    first = await hold_first_batch(batcher, inner, ["t0"])
    calls = [[f"a{i}" for i in range(3)], [f"bb{i}" for i in range(3)], ["c0", "c1"], ["d0"]]
    tasks = [asyncio.create_task(batcher.embed(texts)) for texts in calls]
    await asyncio.sleep(0.01)
    inner.open()
    await first
    for texts, result in zip(calls, await asyncio.gather(*tasks)):
        assert_rows(result, texts)
    # 3 + 3 > 5: the second call is not split, it waits for the next batch with the ones after it.
    assert [sorted(b) for b in inner.batches] == [
        ["t0"],
        sorted(calls[0]),
        sorted(calls[1] + calls[2]),
        ["d0"],
    ]
    assert all(len(b) <= 5 for b in inner.batches)


async def test_a_call_longer_than_max_batch_is_sliced_and_reassembled() -> None:
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner, max_batch=4)
    texts = [f"text number {i}" + "!" * (i % 3) for i in range(11)]
    assert_rows(await batcher.embed(texts), texts)
    assert [len(b) for b in inner.batches] == [4, 4, 3]


async def test_an_idle_window_delays_only_the_first_batch() -> None:
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner, window_seconds=0.05)
    first = asyncio.create_task(batcher.embed(["early"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.embed(["late"]))
    assert_rows(await first, ["early"])
    assert_rows(await second, ["late"])
    assert inner.batches == [["early", "late"]]  # both made the window


# ---------------------------------------------------------------------------- failures


async def test_a_failure_reaches_every_caller_of_the_batch_and_the_next_batch_still_runs() -> None:
    inner = HashEmbedder(hold=True)
    inner.fail_when = lambda texts: "boom" in texts
    batcher = BatchingEmbedder(inner, max_batch=4)
    first = await hold_first_batch(batcher, inner, ["warm"])
    doomed = [asyncio.create_task(batcher.embed(t)) for t in (["boom", "x"], ["y"], ["z"])]
    later = asyncio.create_task(batcher.embed(["after", "the", "failure"]))  # 4 + 3 > 4: next batch
    await asyncio.sleep(0.01)
    inner.open()
    assert_rows(await first, ["warm"])
    outcomes = await asyncio.wait_for(asyncio.gather(*doomed, return_exceptions=True), 5)
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes
    assert_rows(await asyncio.wait_for(later, 5), ["after", "the", "failure"])
    # The drain loop survived: a new call is served.
    assert_rows(await asyncio.wait_for(batcher.embed(["fine"]), 5), ["fine"])


async def test_a_result_of_the_wrong_shape_fails_the_batch_instead_of_misassigning_rows() -> None:
    inner = HashEmbedder(hold=True)
    batcher = BatchingEmbedder(inner)
    first = await hold_first_batch(batcher, inner, ["warm"])
    inner.drop_last_row = True
    tasks = [asyncio.create_task(batcher.embed([f"text {i}"])) for i in range(3)]
    await asyncio.sleep(0.01)
    inner.open()
    for outcome in await asyncio.wait_for(asyncio.gather(first, *tasks, return_exceptions=True), 5):
        assert isinstance(outcome, EmbeddingError), outcome


async def test_if_the_drain_loop_is_cancelled_no_waiter_hangs() -> None:
    inner = HashEmbedder(hold=True)
    batcher = BatchingEmbedder(inner)
    first = await hold_first_batch(batcher, inner, ["in flight"])
    queued = asyncio.create_task(batcher.embed(["queued"]))
    await asyncio.sleep(0.01)
    drainer = batcher._queues[asyncio.get_running_loop()].drainer
    assert drainer is not None
    drainer.cancel()
    for outcome in await asyncio.wait_for(asyncio.gather(first, queued, return_exceptions=True), 5):
        assert isinstance(outcome, EmbeddingError), outcome
    inner.open()
    assert_rows(await asyncio.wait_for(batcher.embed(["again"]), 5), ["again"])


# ---------------------------------------------------------------------------- cancellation


async def test_a_caller_cancelled_while_queued_is_dropped_and_others_are_served() -> None:
    inner = HashEmbedder(hold=True)
    batcher = BatchingEmbedder(inner)
    first = await hold_first_batch(batcher, inner, ["busy"])
    keep_a = asyncio.create_task(batcher.embed(["keep a", "keep a 2"]))
    gone = asyncio.create_task(batcher.embed(["cancelled text"]))
    keep_b = asyncio.create_task(batcher.embed(["keep b"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    inner.open()
    assert_rows(await first, ["busy"])
    assert_rows(await asyncio.wait_for(keep_a, 5), ["keep a", "keep a 2"])
    assert_rows(await asyncio.wait_for(keep_b, 5), ["keep b"])
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert "cancelled text" not in [t for b in inner.batches for t in b]


async def test_a_caller_cancelled_while_its_batch_runs_does_not_break_the_batch() -> None:
    inner = HashEmbedder(hold=True)
    batcher = BatchingEmbedder(inner)
    first = await hold_first_batch(batcher, inner, ["busy"])
    calls = [["alpha", "alpha two"], ["beta"], ["gamma, the longest one"]]
    tasks = [asyncio.create_task(batcher.embed(texts)) for texts in calls]
    await asyncio.sleep(0.01)
    inner.allow(1)  # the first batch finishes; the three calls go in flight together and wait
    assert_rows(await first, ["busy"])
    await until(lambda: len(inner.batches) == 2)
    assert sorted(inner.batches[1]) == sorted(t for texts in calls for t in texts)
    tasks[1].cancel()  # one caller gives up while its batch is being embedded
    await asyncio.sleep(0.01)
    inner.open()
    assert_rows(await asyncio.wait_for(tasks[0], 5), calls[0])
    assert_rows(await asyncio.wait_for(tasks[2], 5), calls[2])
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert_rows(await asyncio.wait_for(batcher.embed(["after"]), 5), ["after"])


def test_one_embedder_serves_successive_event_loops() -> None:
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner)
    for round_no in range(2):
        texts = [f"loop {round_no}", "x"]
        assert_rows(asyncio.run(batcher.embed(texts)), texts)


# ---------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def minilm() -> MiniLMOnnxEmbedder:
    embedder = MiniLMOnnxEmbedder(batch_size=4, threads=1)
    embedder.warm_up()
    return embedder


async def test_real_model_rows_match_the_bare_model_and_the_loop_keeps_ticking(
    minilm: MiniLMOnnxEmbedder,
) -> None:
    batcher = BatchingEmbedder(minilm, max_batch=16)
    calls = [
        [f"Paragraph {i} about returns, shipping and invoices. " * (1 + 3 * (i % 4)), f"Short {i}."]
        for i in range(10)
    ] + [["", "Ünïcödé and emoji 🚀 survive tokenisation."], ["opening hours"] * 3]
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    results = await asyncio.gather(*(batcher.embed(texts) for texts in calls))
    elapsed = time.perf_counter() - started
    stop.set()
    await ticking
    for texts, result in zip(calls, results):
        np.testing.assert_allclose(result, await minilm.embed(texts), atol=1e-4)
    assert sum(batcher.batch_sizes.values()) < len(calls)  # calls did share batches
    assert max(batcher.batch_sizes) <= 16
    gaps = np.diff(ticks)
    assert len(ticks) > 5
    assert gaps.max() < max(0.15, elapsed / 3)
