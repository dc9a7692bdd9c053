"""The embedders: offline MiniLM model, the SQLite vector cache, the OpenAI-compatible client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from chatwell.embedders.base import Embedder, EmbeddingError
from chatwell.embedders.cache import CachedEmbedder
from chatwell.embedders.minilm import MINILM_DIMENSION, MINILM_MODEL_ID, MiniLMOnnxEmbedder
from chatwell.embedders.openai import OpenAICompatibleEmbedder
from chatwell.embedders.tokenizer import count_tokens


@pytest.fixture(scope="module")
def minilm() -> MiniLMOnnxEmbedder:
    # One model per module: loading the session is the slow part.
    return MiniLMOnnxEmbedder(batch_size=4)


class CountingEmbedder:
    """A fake embedder that records every text it is asked to embed."""

    model_id = "fake-model"
    dimension = 8
    max_length = 64

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rng = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
        matrix = np.asarray(rng, dtype=np.float32).reshape(len(texts), 8)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(texts)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


# ---------------------------------------------------------------------------- MiniLM


def test_minilm_satisfies_the_protocol(minilm: MiniLMOnnxEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.model_id == MINILM_MODEL_ID
    assert minilm.dimension == MINILM_DIMENSION == 384


async def test_vectors_are_float32_and_unit_length(minilm: MiniLMOnnxEmbedder) -> None:
    vectors = await minilm.embed(["Opening hours are 9 to 5.", "", "x" * 5000, "naïve café ☕"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_empty_input_gives_an_empty_matrix(minilm: MiniLMOnnxEmbedder) -> None:
    assert (await minilm.embed([])).shape == (0, 384)


async def test_a_single_string_is_rejected(minilm: MiniLMOnnxEmbedder) -> None:
    with pytest.raises(TypeError):
        await minilm.embed("not a list")  # type: ignore[arg-type]


async def test_similar_sentences_score_higher_than_unrelated_ones(
    minilm: MiniLMOnnxEmbedder,
) -> None:
    query, paraphrase, unrelated = await minilm.embed(
        [
            "How do I reset my password?",
            "Steps to change a forgotten account password",
            "Our bakery sells sourdough bread on Saturdays.",
        ]
    )
    assert float(query @ paraphrase) > float(query @ unrelated) + 0.2


async def test_mixed_length_batches_match_one_by_one(minilm: MiniLMOnnxEmbedder) -> None:
    texts = [
        "short",
        "A somewhat longer sentence about refund policies and delivery times.",
        " ".join(["The warranty covers manufacturing defects for two years."] * 12),
        "",
        "Ünïcödé and emoji 🚀 survive tokenisation.",
        "Medium length text about the shop's opening hours on public holidays.",
    ]
    together = await minilm.embed(texts)
    alone = np.stack([(await minilm.embed([t]))[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)


async def test_long_texts_are_truncated_at_max_length() -> None:
    short = MiniLMOnnxEmbedder(max_length=16)
    base = "Chatwell answers questions from your documents. "
    # Everything after the first 16 pieces is cut, so the tails cannot change the vector.
    a, b = await short.embed([base * 3 + "apples", base * 3 + "submarines"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        MiniLMOnnxEmbedder(max_length=1024)
    with pytest.raises(ValueError):
        MiniLMOnnxEmbedder(batch_size=0)


async def test_embed_does_not_block_the_event_loop() -> None:
    embedder = MiniLMOnnxEmbedder(batch_size=8, threads=1)
    embedder.warm_up()
    texts = [f"Paragraph {i} about returns, shipping and invoices. " * 12 for i in range(48)]
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await embedder.embed(texts)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    gaps = np.diff(ticks)
    # The embedding takes far longer than a tick; the loop kept ticking all the while.
    assert elapsed > 0.2
    assert len(ticks) > 10
    assert gaps.max() < max(0.15, elapsed / 3)


async def test_session_is_created_once_under_concurrency() -> None:
    embedder = MiniLMOnnxEmbedder(threads=1)
    # Four calls at once, each in a worker thread of its own.
    results = await asyncio.gather(*(embedder.embed(["same text"]) for _ in range(4)))
    session = embedder._session
    assert session is not None
    await embedder.embed(["again"])
    assert embedder._session is session
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


# ---------------------------------------------------------------------------- tokens


def test_count_tokens_counts_word_pieces_without_special_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello") == 1
    assert count_tokens("hello world") == 2
    # Not truncated at the model's limits and not padded like the shipped tokenizer.json.
    assert count_tokens("word " * 1000) == 1000


# ---------------------------------------------------------------------------- cache


async def test_cache_returns_identical_vectors_without_recomputing(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path)
    first = await cached.embed(["a", "b", "a"])
    assert inner.embedded == ["a", "b"]  # duplicates inside one call are embedded once
    second = await cached.embed(["b", "a", "c"])
    assert inner.embedded == ["a", "b", "c"]
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(second[1], first[0])
    assert cached.hits == 3 and cached.misses == 3
    cached.close()


async def test_cache_persists_across_instances(tmp_path: Path) -> None:
    with CachedEmbedder(CountingEmbedder(), tmp_path) as cached:
        first = await cached.embed(["persisted text"])
    inner = CountingEmbedder()
    with CachedEmbedder(inner, tmp_path) as cached:
        again = await cached.embed(["persisted text"])
    assert inner.calls == []
    np.testing.assert_array_equal(first, again)


async def test_cache_key_includes_model_and_max_length(tmp_path: Path) -> None:
    with CachedEmbedder(CountingEmbedder(), tmp_path) as cached:
        await cached.embed(["text"])
    other = CountingEmbedder()
    other.max_length = 128
    with CachedEmbedder(other, tmp_path) as cached:
        await cached.embed(["text"])
    assert other.embedded == ["text"]


async def test_async_cache_uses_the_inner_async_path(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    with CachedEmbedder(inner, tmp_path) as cached:
        first = await cached.embed(["x", "y"])
        second = await cached.embed(["y", "x"])
        assert await cached.embed([]) is not None
    assert inner.embedded == ["x", "y"]
    np.testing.assert_array_equal(first[::-1], second)


async def test_recent_small_calls_are_answered_from_memory_without_the_file(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path)
    question = await cached.embed(["when do you open?"])
    batch = [f"chunk {i}" for i in range(CachedEmbedder.MEMORY_BATCH + 1)]
    await cached.embed(batch)  # an ingestion-sized batch is not kept in memory
    cached._conn.close()  # from here on, anything that reaches the file fails
    again = await cached.embed(["when do you open?"])
    np.testing.assert_array_equal(again, question)
    with pytest.raises(Exception, match="closed"):
        await cached.embed(batch[:1])
    assert inner.embedded == ["when do you open?", *batch]


async def test_memory_of_recent_vectors_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CachedEmbedder, "MEMORY_ENTRIES", 3)
    with CachedEmbedder(CountingEmbedder(), tmp_path) as cached:
        for text in ("a", "b", "c", "d"):
            await cached.embed([text])
        assert len(cached._recent) == 3
        assert cached._key("a") not in cached._recent  # the least recently used went first


async def test_cache_with_the_real_model(tmp_path: Path, minilm: MiniLMOnnxEmbedder) -> None:
    with CachedEmbedder(minilm, tmp_path) as cached:
        fresh = await cached.embed(["refund policy", "delivery times"])
        again = await cached.embed(["delivery times", "refund policy"])
        assert cached.hits == 2
    np.testing.assert_array_equal(fresh[::-1], again)


def test_the_cached_default_is_an_embedder(tmp_path: Path) -> None:
    assert isinstance(MiniLMOnnxEmbedder(), Embedder)
    with CachedEmbedder(MiniLMOnnxEmbedder(), tmp_path) as embedder:
        assert isinstance(embedder, Embedder)
        assert embedder.dimension == 384


# ---------------------------------------------------------------------------- OpenAI-compatible


def _fake_api(requests: list[dict], *, fail_first: int = 0, status: int = 429):
    state = {"failures": fail_first}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append({"body": body, "auth": request.headers.get("authorization")})
        if state["failures"] > 0:
            state["failures"] -= 1
            return httpx.Response(status, json={"error": "slow down"})
        data = [
            {"index": i, "embedding": [float(len(text)), 1.0, 0.0]}
            for i, text in enumerate(body["input"])
        ]
        # Servers may answer out of order; the index field decides.
        return httpx.Response(200, json={"data": data[::-1], "model": body["model"]})

    return handler


async def test_openai_embedder_batches_orders_and_normalises() -> None:
    requests: list[dict] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(_fake_api(requests))) as client:
        embedder = OpenAICompatibleEmbedder(
            base_url="http://llm.local/v1/",
            model="m",
            api_key="k",
            dimension=3,
            batch_size=2,
            client=client,
        )
        vectors = await embedder.embed(["a", "bbb", "cc"])
    assert [r["body"]["input"] for r in requests] == [["a", "bbb"], ["cc"]]
    assert requests[0]["auth"] == "Bearer k"
    assert vectors.shape == (3, 3) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    expected = np.array([1.0, 3.0, 2.0]) / np.sqrt(np.array([1.0, 3.0, 2.0]) ** 2 + 1)
    np.testing.assert_allclose(vectors[:, 0], expected, atol=1e-6)


async def test_openai_embedder_retries_transient_errors() -> None:
    requests: list[dict] = []
    transport = httpx.MockTransport(_fake_api(requests, fail_first=2))
    async with httpx.AsyncClient(transport=transport) as client:
        embedder = OpenAICompatibleEmbedder(
            base_url="http://llm.local/v1", model="m", dimension=3, client=client
        )
        vectors = await embedder.embed(["hello"])  # after backing off 0.5 s, then 1 s
    assert len(requests) == 3
    assert vectors.shape == (1, 3)


async def test_openai_embedder_reports_errors() -> None:
    requests: list[dict] = []
    transport = httpx.MockTransport(_fake_api(requests, fail_first=1, status=401))
    async with httpx.AsyncClient(transport=transport) as client:
        embedder = OpenAICompatibleEmbedder(
            base_url="http://llm.local/v1", model="m", dimension=3, client=client
        )
        with pytest.raises(EmbeddingError, match="401"):
            await embedder.embed(["x"])
    assert len(requests) == 1  # 401 is not retried


async def test_openai_embedder_rejects_wrong_dimension() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_fake_api([]))) as client:
        embedder = OpenAICompatibleEmbedder(
            base_url="http://llm.local/v1", model="m", dimension=5, client=client
        )
        with pytest.raises(EmbeddingError, match="shape"):
            await embedder.embed(["x"])


def test_openai_embedder_knows_common_dimensions() -> None:
    assert OpenAICompatibleEmbedder(base_url="x", model="text-embedding-3-small").dimension == 1536
    with pytest.raises(ValueError):
        OpenAICompatibleEmbedder(base_url="x", model="mystery-model")


async def test_a_call_of_several_batches_runs_them_side_by_side_with_the_same_vectors() -> None:
    texts = [
        f"Paragraph {i} about returns, shipping and invoices. " * (1 + i % 6) for i in range(40)
    ]
    side_by_side = MiniLMOnnxEmbedder(batch_size=4, threads=2, parallel=2)
    one_session = MiniLMOnnxEmbedder(batch_size=4, threads=2, parallel=1)
    np.testing.assert_allclose(
        await side_by_side.embed(texts), await one_session.embed(texts), atol=2e-5
    )
    assert side_by_side._scheduler.bulk is not None and one_session._scheduler.bulk is None  # noqa: SLF001
    # A question (one batch) runs on the session with every thread; no side-by-side sessions.
    question = MiniLMOnnxEmbedder(batch_size=4, threads=2, parallel=2)
    np.testing.assert_allclose(
        await question.embed(["one question"]), await one_session.embed(["one question"]), atol=2e-5
    )
    assert question._scheduler.bulk is None  # noqa: SLF001


def test_an_onnx_run_holds_as_many_texts_as_fit_the_token_budget() -> None:
    embedder = MiniLMOnnxEmbedder(batch_size=8, batch_tokens=100)
    widths = [120, 60, 50, 50, 20, 20, 20, 20, 20, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    runs = embedder._batches(widths, list(range(len(widths))))  # noqa: SLF001
    # Longer than the budget: alone. 50 + 50: two. Five of 20. Ten of 10, but at most eight.
    assert runs == [[0], [1], [2, 3], [4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16], [17, 18]]
    with pytest.raises(ValueError):
        MiniLMOnnxEmbedder(batch_tokens=0)


async def test_small_runs_give_the_vectors_of_one_big_batch() -> None:
    texts = [
        f"Paragraph {i} about returns, shipping and invoices. " * (1 + i % 9) for i in range(24)
    ]
    small = MiniLMOnnxEmbedder(threads=1, parallel=1)  # the default budget: a few texts per run
    big = MiniLMOnnxEmbedder(threads=1, parallel=1, batch_size=64, batch_tokens=10**6)
    np.testing.assert_allclose(await small.embed(texts), await big.embed(texts), atol=2e-5)


class _SeenSession:
    """An ONNX session that records the threads it ran on (and can fail on a given run)."""

    def __init__(self, session: object, fail_on: int | None = None) -> None:
        self.session, self.fail_on = session, fail_on
        self.threads: list[int] = []

    def run(self, *args: object) -> object:
        self.threads.append(threading.get_ident())
        if self.fail_on is not None and len(self.threads) >= self.fail_on:
            raise RuntimeError("onnx failed")
        return self.session.run(*args)  # type: ignore[attr-defined]


def _seen_sessions(embedder: MiniLMOnnxEmbedder, fail_on: int | None = None) -> list[_SeenSession]:
    """Wrap the main session and the side-by-side ones: main first."""
    embedder.warm_up()
    free = embedder._scheduler.bulk_sessions()  # noqa: SLF001
    bulk = [_SeenSession(free.get(), fail_on) for _ in range(embedder.parallel)]
    for seen in bulk:
        free.put(seen)
    main = _SeenSession(embedder._session)  # noqa: SLF001
    embedder._session = main  # type: ignore[assignment]  # noqa: SLF001
    return [main, *bulk]


async def test_a_lone_large_call_runs_on_every_free_session() -> None:
    texts = [f"Invoice question {i}: " + "how are refunds paid back? " * 30 for i in range(8)]
    embedder = MiniLMOnnxEmbedder(
        threads=2, parallel=2, batch_size=4, batch_tokens=256
    )  # 8 texts: large
    main, first, second = _seen_sessions(embedder)
    await embedder.embed(texts)
    assert main.threads == [] and first.threads and second.threads
    assert len(first.threads) + len(second.threads) == 8  # every text is one run at this length
    assert set(first.threads).isdisjoint(second.threads)  # two threads, side by side
    # With one session busy (held by another call), the call runs on the one left, whole.
    held = embedder._scheduler.bulk.get()  # noqa: SLF001
    left = second if held is first else first
    held_runs, left_runs = len(held.threads), len(left.threads)
    await embedder.embed(texts)
    assert (
        len(held.threads) == held_runs and len(left.threads) == left_runs + 8 and main.threads == []
    )
    embedder._scheduler.bulk.put(held)  # noqa: SLF001


async def test_a_small_call_runs_beside_busy_sessions_never_waiting_for_them() -> None:
    sentences = [f"Sentence {i} of an answer, about parcels and refunds." for i in range(30)]
    fresh = MiniLMOnnxEmbedder(threads=2, parallel=2, batch_tokens=64)
    await fresh.embed(
        sentences
    )  # several runs, but a small call: no one-thread sessions made for it
    assert fresh._scheduler.bulk is None  # noqa: SLF001
    with fresh._scheduler.run_lock:  # noqa: SLF001 - another call is embedding: two at once make them
        await fresh.embed(sentences)
    assert fresh._scheduler.bulk is not None and fresh._scheduler.bulk.qsize() == 2  # noqa: SLF001
    embedder = MiniLMOnnxEmbedder(threads=2, parallel=2)
    main, *bulk = _seen_sessions(embedder)
    await embedder.embed(["a lone question"])
    assert len(main.threads) == 1 and not any(s.threads for s in bulk)  # alone: every thread
    held = embedder._scheduler.bulk.get()  # noqa: SLF001 - another call is embedding on it
    await embedder.embed(["a question during ingestion"])
    assert len(main.threads) == 1  # it took the free one-thread session
    assert sum(len(s.threads) for s in bulk) == 1 and not held.threads
    other = embedder._scheduler.bulk.get()  # noqa: SLF001 - now every one-thread session is busy
    await embedder.embed(["another question"])  # runs now, on the main session, no waiting
    assert len(main.threads) == 2
    embedder._scheduler.bulk.put(held)  # noqa: SLF001
    embedder._scheduler.bulk.put(other)  # noqa: SLF001


async def test_a_failing_lane_fails_the_call_and_frees_every_session() -> None:
    texts = [f"Shipping note {i}: " + "parcels leave the warehouse daily. " * 30 for i in range(8)]
    embedder = MiniLMOnnxEmbedder(threads=2, parallel=2, batch_size=4)
    _seen_sessions(embedder, fail_on=2)
    with pytest.raises(RuntimeError, match="onnx failed"):
        await embedder.embed(texts)
    assert embedder._scheduler.bulk.qsize() == 2  # noqa: SLF001 - both back, the next call does not hang
