"""Conversations carry the content digest of their exchange so far, so a stateless client (the
OpenAI doors) that resends the whole history continues the stored conversation.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("content_digest", sa.String(64), nullable=True))
    op.create_index("ix_conversations_content_digest", "conversations", ["content_digest"])


def downgrade() -> None:
    op.drop_index("ix_conversations_content_digest", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("content_digest")
