"""Who is calling: the resolved, non-secret view of an API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from chatwell.domain.models import KeyScope, Permission


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: uuid.UUID
    workspace_id: uuid.UUID
    bot_id: uuid.UUID | None
    is_owner: bool
    label: str
    prefix: str
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    daily_message_limit: int | None = None
    # A bot key's permissions (``Permission`` values); a workspace key's are all, whatever this holds.
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def scope(self) -> KeyScope:
        return KeyScope.BOT if self.bot_id is not None else KeyScope.WORKSPACE

    def can_reach_bot(self, bot_id: uuid.UUID) -> bool:
        return self.bot_id is None or self.bot_id == bot_id

    def allows(self, permission: Permission) -> bool:
        return self.bot_id is None or permission.value in self.scopes
