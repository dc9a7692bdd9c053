"""Principals for trusted local callers (the CLI, start-up) that act as a workspace's owner."""

from __future__ import annotations

import uuid

from chatwell.domain.auth import Principal

LOCAL_KEY_ID = uuid.UUID(int=0)


def owner_principal(workspace_id: uuid.UUID) -> Principal:
    return Principal(
        key_id=LOCAL_KEY_ID,
        workspace_id=workspace_id,
        bot_id=None,
        is_owner=True,
        label="local",
        prefix="local",
    )
