"""Drop SQLite's FTS5 index over chunks: keyword search ranks the in-memory BM25 index built from
``chunks.terms`` (``retrieval.keyword_index``), so the FTS5 table, its ``fts5vocab`` view and the
triggers that kept it in step were work on every chunk write for nothing.

PostgreSQL keeps its ``search_vector`` tsvector: its keyword search ranks with it.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_DROP = [
    "DROP TABLE IF EXISTS chunks_fts_terms",
    "DROP TRIGGER IF EXISTS chunks_fts_update",
    "DROP TRIGGER IF EXISTS chunks_fts_delete",
    "DROP TRIGGER IF EXISTS chunks_fts_insert",
    "DROP TABLE IF EXISTS chunks_fts",
]

# Revisions 0002 and 0007 as they were, rebuilt from the chunks on the way down.
_RECREATE = [
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
    "CREATE VIRTUAL TABLE chunks_fts_terms USING fts5vocab(chunks_fts, 'row')",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _DROP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _RECREATE:
            op.execute(statement)
