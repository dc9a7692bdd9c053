"""What an embedder is: texts in, float32 L2-normalised rows out (a dot product is a cosine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


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


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Return ``matrix`` as float32 with unit-length rows (all-zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, np.float32(1e-12))


def as_text_list(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of strings; one string is refused (it would embed each character)."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not one string")
    return [t if isinstance(t, str) else str(t) for t in texts]
