"""fastembed models (Qdrant's ONNX runtime wrappers) as an embedder, for users who choose one.

``CHATWELL_FASTEMBED_MODEL`` names any model fastembed knows (e.g. ``BAAI/bge-small-en-v1.5``,
which scores better than MiniLM on SciFact). fastembed downloads the model on first use into
``<data dir>/cache/fastembed`` — unless ``CHATWELL_FASTEMBED_MODEL_PATH`` points at a folder that
already holds it (``model.onnx`` plus its tokenizer files), which is how offline machines and the
tests use it. fastembed is an optional extra: ``pip install 'chatwell[fastembed]'``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chatwell.embedders.base import EmbeddingError, normalize_rows


class FastEmbedEmbedder:
    def __init__(
        self,
        model: str,
        *,
        cache_dir: Path | None = None,
        model_path: Path | None = None,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        try:
            from fastembed import TextEmbedding
        except ImportError:
            raise EmbeddingError(
                "fastembed is not installed: pip install 'chatwell[fastembed]'"
            ) from None
        options: dict[str, Any] = {"threads": threads, "lazy_load": True}
        if cache_dir is not None:
            options["cache_dir"] = str(cache_dir)
        if model_path is not None:
            options["specific_model_path"] = str(model_path)
        self._model = TextEmbedding(model, **options)
        self.model_id = f"fastembed:{model}"
        self.dimension = int(self._dimension_of(model))
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one ONNX run at a time; batching happens above this

    @staticmethod
    def _dimension_of(model: str) -> int:
        from fastembed import TextEmbedding

        for description in TextEmbedding.list_supported_models():
            if description.get("model", "").lower() == model.lower():
                return int(description["dim"])
        raise EmbeddingError(f"fastembed does not know the model {model!r}")

    def __repr__(self) -> str:
        return f"FastEmbedEmbedder({self.model_id!r})"

    def _embed_blocking(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            rows = list(self._model.embed(list(texts), batch_size=self.batch_size))
        return normalize_rows(np.vstack(rows))

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self._embed_blocking, list(texts))
