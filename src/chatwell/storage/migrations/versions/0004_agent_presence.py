"""Agent presence for human handoff: which agents (API keys acting as agents) are online.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_presence",
        sa.Column(
            "key_id", sa.Uuid(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "workspace_id",
            sa.Uuid(),
            sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_agent_presence_workspace", "agent_presence", ["workspace_id", "last_seen_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_agent_presence_workspace", table_name="agent_presence")
    op.drop_table("agent_presence")
