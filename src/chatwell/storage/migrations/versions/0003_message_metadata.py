"""Per-message metadata (the chatbots API stores a request's ``metadata`` with its message) and
an index for finding a session's conversation.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("metadata", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
        )
    op.create_index("ix_conversations_bot_session", "conversations", ["bot_id", "session_id"])


def downgrade() -> None:
    op.drop_index("ix_conversations_bot_session", table_name="conversations")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("metadata")
