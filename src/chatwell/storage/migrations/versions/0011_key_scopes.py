"""Key permissions: ``api_keys.scopes``, what a bot key may do with its bot.

A bot key is the kind handed to a website, so existing bot keys keep ``chat`` only (reading and
deleting transcripts, rating answers and reading leads now need ``conversations:read``,
``conversations:write`` and ``leads:read``, granted to a new key). Workspace keys hold every
permission and store an empty list.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
api_keys = sa.table("api_keys", sa.column("bot_id", sa.Uuid()), sa.column("scopes", JSON))


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("scopes", JSON, nullable=True))
    op.execute(api_keys.update().where(api_keys.c.bot_id.is_not(None)).values(scopes=["chat"]))
    op.execute(api_keys.update().where(api_keys.c.bot_id.is_(None)).values(scopes=[]))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=JSON, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
