"""Removing sources: their chunks and stored content go, and past answers stop quoting them.

Used when an owner deletes a source (``services.sources.delete_source``) and when a re-crawl no
longer finds a page it found before (``ingestion.service``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import String, cast, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.retrieval.index import bump_index_version
from chatwell.storage.tables import Chunk, Conversation, Message, Source, SourceContent


async def remove_sources(
    session: AsyncSession, bot_id: uuid.UUID, source_ids: Sequence[uuid.UUID]
) -> None:
    """Delete ``source_ids`` of ``bot_id`` with their chunks and content, in the caller's
    transaction; the bot's search index is told to reload."""
    if not source_ids:
        return
    ids = list(source_ids)
    await session.execute(delete(Chunk).where(Chunk.source_id.in_(ids)))
    await session.execute(delete(SourceContent).where(SourceContent.source_id.in_(ids)))
    await session.execute(delete(Source).where(Source.id.in_(ids)))
    await bump_index_version(session, bot_id)
    await _forget_citations(session, bot_id, ids)


async def _forget_citations(
    session: AsyncSession, bot_id: uuid.UUID, source_ids: list[uuid.UUID]
) -> None:
    """Past answers keep their text (the transcript), but their citations stop naming and quoting
    the deleted sources: nothing of a deleted source's content stays in the database."""
    names = {str(sid) for sid in source_ids}
    ordered = sorted(names)
    for start in range(0, len(ordered), MENTIONS_PER_QUERY):
        batch = ordered[start : start + MENTIONS_PER_QUERY]
        mentions = or_(*(cast(Message.citations, String).like(f"%{sid}%") for sid in batch))
        query = (
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.bot_id == bot_id, Message.citations.is_not(None), mentions)
        )
        for message in (await session.scalars(query)).all():
            _forget(message, names)


#: Source ids matched per query: SQLite refuses an expression deeper than 1,000 terms, and a
#: crawled site of 1,200 pages is deleted with its root.
MENTIONS_PER_QUERY = 500


def _forget(message: Message, names: set[str]) -> None:
    message.citations = [
        {
            "index": c.get("index"),
            "source_id": None,
            "title": None,
            "url": None,
            "page": None,
            "score": None,
            "snippet": None,
            "source_deleted": True,
        }
        if isinstance(c, dict) and c.get("source_id") in names
        else c
        for c in message.citations or []
    ]
