"""Session namespaces: ``conversations.session_scope`` beside ``session_id``.

A client's session id means something only within its door and caller
(``chatwell.services.sessions``). Existing rows get the scope their door and key imply: the
widget's (``chatbotiq``) ``chatbotiq:public``; a conversation opened with a bot-scoped key
``<channel>:key:<key id>``; every other keyed one ``<channel>:workspace:<workspace id>``. The
session index now leads with the scope's columns.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

conversations = sa.table(
    "conversations",
    sa.column("id", sa.Uuid()),
    sa.column("workspace_id", sa.Uuid()),
    sa.column("channel", sa.String()),
    sa.column("api_key_id", sa.Uuid()),
    sa.column("session_scope", sa.String()),
)
api_keys = sa.table("api_keys", sa.column("id", sa.Uuid()), sa.column("bot_id", sa.Uuid()))


def upgrade() -> None:
    op.add_column("conversations", sa.Column("session_scope", sa.String(length=120), nullable=True))
    bind = op.get_bind()
    # One UPDATE per (door, key, workspace): few groups, however many conversations.
    groups = bind.execute(
        sa.select(
            conversations.c.channel,
            conversations.c.api_key_id,
            conversations.c.workspace_id,
            api_keys.c.bot_id.is_not(None).label("bot_key"),
        )
        .select_from(conversations.outerjoin(api_keys, api_keys.c.id == conversations.c.api_key_id))
        .distinct()
    ).all()
    for channel, key_id, workspace_id, bot_key in groups:
        if channel == "chatbotiq" and key_id is None:
            scope = "chatbotiq:public"
        elif bot_key:
            scope = f"{channel}:key:{key_id}"
        else:
            scope = f"{channel}:workspace:{workspace_id}"
        key_matches = (
            conversations.c.api_key_id.is_(None)
            if key_id is None
            else conversations.c.api_key_id == key_id
        )
        bind.execute(
            conversations.update()
            .where(
                conversations.c.channel == channel,
                key_matches,
                conversations.c.workspace_id == workspace_id,
            )
            .values(session_scope=scope)
        )
    op.drop_index("ix_conversations_bot_session", table_name="conversations")
    op.create_index(
        "ix_conversations_bot_scope_session",
        "conversations",
        ["bot_id", "session_scope", "session_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_bot_scope_session", table_name="conversations")
    op.create_index("ix_conversations_bot_session", "conversations", ["bot_id", "session_id"])
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("session_scope")
