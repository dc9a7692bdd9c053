"""Each chunk's analysed terms, for the in-memory keyword index of the embedded default.

``chunks.terms`` holds the chunk's BM25 postings as :func:`chatwell.retrieval.keyword_index.encode_terms`
writes them when the chunk is stored (SQLite). Rows written before this revision have NULL and are
analysed from their text when their bot's index is first loaded. PostgreSQL ranks with its own
``search_vector`` and leaves the column NULL.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("chunks", sa.Column("terms", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("terms")
