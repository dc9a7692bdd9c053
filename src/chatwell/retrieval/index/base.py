"""What a search index over a bot's chunks offers, whichever database holds them.

Each backend (``sqlite``, ``postgres``) stores a chunk's vector and keyword data when it is
written and answers keyword and vector queries as ``{chunk_id: raw_score}``, higher is better.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.storage.tables import Bot, Chunk


class SearchIndex(Protocol):
    """Keyword and vector search over one bot's chunks."""

    async def store_vectors(
        self, session: AsyncSession, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """Store each chunk's vector (and what keyword search needs) in ``session``."""
        ...

    async def keyword_search(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, k: int
    ) -> dict[int, float]: ...

    async def candidates(
        self, session: AsyncSession, bot_id: uuid.UUID, query: str, vector: np.ndarray, depth: int
    ) -> tuple[dict[int, float], dict[int, float]]:
        """The ``depth`` best chunks by keyword and by vector, each also scored by vector."""
        ...

    async def vector_search(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, k: int
    ) -> dict[int, float]: ...

    async def vector_scores(
        self, session: AsyncSession, bot_id: uuid.UUID, vector: np.ndarray, chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        """Cosine similarity of the given chunks (e.g. keyword-only hits) to ``vector``."""
        ...


async def bump_index_version(session: AsyncSession, bot_id: uuid.UUID) -> None:
    """Mark the bot's chunks as changed (call in the transaction that changes them)."""
    await session.execute(
        update(Bot).where(Bot.id == bot_id).values(index_version=Bot.index_version + 1)
    )
