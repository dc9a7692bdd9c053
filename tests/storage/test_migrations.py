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


async def test_upgrade_empty_database_then_down_and_up_again(database_url: str) -> None:
    db = Database(database_url)
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


async def test_every_previous_revision_upgrades_to_head(database_url: str) -> None:
    db = Database(database_url)
    try:
        for revision in _revisions():
            await migrate.downgrade(db, "base")
            await migrate.upgrade(db, revision)
            assert await migrate.current_revision(db) == revision
            await migrate.upgrade(db)
            assert await migrate.current_revision(db) == migrate.head_revision()
    finally:
        await db.dispose()


async def test_migrations_match_the_orm_tables(database_url: str) -> None:
    db = Database(database_url)
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
