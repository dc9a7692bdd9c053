"""Keyword and vector indexes over chunks, and a per-bot index version.

SQLite: an FTS5 table over (heading, text) kept in step with ``chunks`` by triggers; vectors stay
in ``chunks.embedding`` and are searched exactly in memory. PostgreSQL: a weighted tsvector with
a GIN index, and a pgvector column with an HNSW index (cosine) for 384-dimension embeddings.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, text, content='chunks', content_rowid='id',"
    " tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN"
    " INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) VALUES ('delete', old.id, old.heading, old.text);"
    " END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF heading, text ON chunks BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, heading, text) VALUES ('delete', old.id, old.heading, old.text);"
    " INSERT INTO chunks_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END",
    "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS chunks_fts_update",
    "DROP TRIGGER IF EXISTS chunks_fts_delete",
    "DROP TRIGGER IF EXISTS chunks_fts_insert",
    "DROP TABLE IF EXISTS chunks_fts",
]
POSTGRES_UP = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    "ALTER TABLE chunks ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    " setweight(to_tsvector('english', coalesce(heading, '')), 'A') ||"
    " setweight(to_tsvector('english', coalesce(text, '')), 'B')) STORED",
    "CREATE INDEX ix_chunks_search_vector ON chunks USING gin (search_vector)",
    "ALTER TABLE chunks ADD COLUMN embedding_vec vector",
    "CREATE INDEX ix_chunks_embedding_384 ON chunks USING hnsw ((embedding_vec::vector(384)) vector_cosine_ops)"
    " WHERE embedding_dim = 384",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_chunks_embedding_384",
    "ALTER TABLE chunks DROP COLUMN IF EXISTS embedding_vec",
    "DROP INDEX IF EXISTS ix_chunks_search_vector",
    "ALTER TABLE chunks DROP COLUMN IF EXISTS search_vector",
]


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(
            sa.Column("index_version", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("embedding_dim", sa.Integer(), nullable=True))
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_UP if dialect == "sqlite" else POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_DOWN if dialect == "sqlite" else POSTGRES_DOWN:
        op.execute(statement)
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("embedding_dim")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("index_version")
