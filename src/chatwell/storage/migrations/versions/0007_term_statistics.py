"""Term statistics for keyword search: how many chunks contain each (stemmed) term.

SQLite: an ``fts5vocab`` table over ``chunks_fts`` (a live view of the FTS index, nothing stored).
Large indexes drop their most common query terms before ranking (``retrieval.text_search``).
PostgreSQL reads the same figure from the planner's statistics of ``search_vector``.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE chunks_fts_terms USING fts5vocab(chunks_fts, 'row')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts_terms")
