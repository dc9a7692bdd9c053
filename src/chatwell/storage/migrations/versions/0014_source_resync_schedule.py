"""URL sources may be re-synced on a schedule (daily, weekly): when each is due again.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_sources_next_sync_at", "sources", ["next_sync_at"])


def downgrade() -> None:
    op.drop_index("ix_sources_next_sync_at", table_name="sources")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("next_sync_at")
