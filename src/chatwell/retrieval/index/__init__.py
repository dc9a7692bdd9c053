"""The keyword and vector indexes over a bot's chunks, one implementation per database
(``sqlite``: in memory; ``postgres``: tsvector and pgvector) behind :class:`SearchIndex`."""

from __future__ import annotations

from chatwell.retrieval.index.base import SearchIndex, bump_index_version
from chatwell.retrieval.index.postgres import PostgresSearchIndex
from chatwell.retrieval.index.sqlite import SqliteSearchIndex
from chatwell.storage.database import Database

__all__ = ["SearchIndex", "bump_index_version", "search_index_for"]


def search_index_for(db: Database) -> SearchIndex:
    return PostgresSearchIndex() if db.is_postgres else SqliteSearchIndex(db)
