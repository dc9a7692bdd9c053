"""Migrations: one linear history that upgrades an empty database and every earlier revision to
head on both SQLite and PostgreSQL, downgrades cleanly, and matches the ORM tables."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from chatwell.storage import migrate
from chatwell.storage.database import Database
from chatwell.storage.tables import Base

EXPECTED_TABLES = {
    "workspaces",
    "users",
    "memberships",
    "bots",
    "sources",
    "source_contents",
    "chunks",
    "api_keys",
    "conversations",
    "messages",
    "leads",
    "usage_events",
    "webhook_deliveries",
}


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


def test_history_is_linear() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


async def test_upgrade_empty_database_then_down_and_up_again(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await migrate.upgrade(db)
        assert await migrate.current_revision(db) == migrate.head_revision()
        assert EXPECTED_TABLES <= await _tables(db)
        await migrate.downgrade(db, "base")
        assert not (EXPECTED_TABLES & await _tables(db))
        await migrate.upgrade(db)
        assert EXPECTED_TABLES <= await _tables(db)
    finally:
        await db.dispose()


async def test_every_previous_revision_upgrades_to_head(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        for revision in _revisions():
            await migrate.downgrade(db, "base")
            await migrate.upgrade(db, revision)
            assert await migrate.current_revision(db) == revision
            await migrate.upgrade(db)
            assert await migrate.current_revision(db) == migrate.head_revision()
    finally:
        await db.dispose()


async def test_migrations_match_the_orm_tables(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await migrate.upgrade(db)

        def diff(sync: Any) -> list[Any]:
            context = MigrationContext.configure(
                sync,
                opts={
                    "compare_type": False,
                    # Search-index objects that migrations add by hand (FTS tables, tsvector and
                    # pgvector columns and their indexes) have no ORM counterpart.
                    "include_object": lambda obj, name, kind, reflected, other: (
                        not (reflected and other is None)
                    ),
                },
            )
            return compare_metadata(context, Base.metadata)

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


async def _fts_objects(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE name LIKE 'chunks_fts%'"
        )
        return {row[0] for row in rows}


async def test_sqlite_has_no_fts5_index_at_head(database_url: str) -> None:
    """Keyword search ranks the in-memory BM25 index; the FTS5 table and its triggers that kept
    it in step are dropped at head and come back on the way down."""
    db = Database(database_url)
    try:
        await migrate.upgrade(db)
        if db.is_postgres:
            async with db.engine.connect() as conn:
                columns = await conn.run_sync(lambda s: inspect(s).get_columns("chunks"))
            assert "search_vector" in {c["name"] for c in columns}  # PostgreSQL ranks with it
            return
        assert await _fts_objects(db) == set()
        await migrate.downgrade(db, "0012")
        assert {
            "chunks_fts",
            "chunks_fts_terms",
            "chunks_fts_insert",
            "chunks_fts_delete",
            "chunks_fts_update",
        } <= await _fts_objects(db)
        await migrate.upgrade(db)
        assert await _fts_objects(db) == set()
    finally:
        await db.dispose()
