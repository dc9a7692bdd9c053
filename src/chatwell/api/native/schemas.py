"""Outgoing shapes of the native API: what callers see of stored rows (never secrets or hashes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from chatwell.domain.models import (
    AnswerSettings,
    ContactFormSettings,
    HandoffSettings,
    ModelSettings,
    RateLimits,
    WidgetSettings,
)
from chatwell.services import keys
from chatwell.services.pagination import Page
from chatwell.storage.tables import ApiKey, Bot, Source

T = TypeVar("T")


class ListOut(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool = False
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page.")

    @classmethod
    def of(cls, page: Page[Any], convert: Any) -> ListOut[T]:
        return cls(
            data=[convert(item) for item in page.items],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )


class BotOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    public: bool
    active: bool
    instructions: str
    welcome_message: str | None
    suggested_questions: list[str]
    allowed_origins: list[str]
    model: ModelSettings
    rate_limits: RateLimits
    answer: AnswerSettings
    handoff: HandoffSettings
    contact_form: ContactFormSettings
    widget: WidgetSettings
    webhook_url: str | None
    webhook_secret: str | None = Field(
        None,
        description="The webhook's signing secret (`whsec_…`), only in the reply of the request that "
        "set the bot's first webhook URL: it is shown this once (`POST /v1/bots/{id}/webhook-secret` "
        "replaces it).",
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, bot: Bot) -> BotOut:
        return cls(
            id=bot.id,
            slug=bot.slug,
            name=bot.name,
            public=bot.public,
            active=bot.active,
            instructions=bot.instructions or "",
            welcome_message=bot.welcome_message,
            suggested_questions=list(bot.suggested_questions or []),
            allowed_origins=list(bot.allowed_origins or []),
            model=ModelSettings.model_validate(bot.model_settings or {}),
            rate_limits=RateLimits.model_validate(bot.rate_limits or {}),
            answer=AnswerSettings.model_validate(bot.answer_settings or {}),
            handoff=HandoffSettings.model_validate(bot.handoff_settings or {}),
            contact_form=ContactFormSettings.model_validate(bot.contact_form or {}),
            widget=WidgetSettings.model_validate(bot.widget_settings or {}),
            webhook_url=bot.webhook_url,
            webhook_secret=getattr(bot, "issued_webhook_secret", None),
            created_at=bot.created_at,
            updated_at=bot.updated_at,
        )


class KeyOut(BaseModel):
    id: uuid.UUID
    prefix: str
    label: str
    bot_id: uuid.UUID | None
    scope: str
    scopes: list[str] = Field(
        ...,
        description="What the key may do: chat, conversations:read, "
        "conversations:write, leads:read (a workspace key: all of them).",
    )
    is_owner: bool
    allowed_origins: list[str]
    daily_message_limit: int | None
    last_used_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            prefix=key.prefix,
            label=key.label,
            bot_id=key.bot_id,
            scope="bot" if key.bot_id else "workspace",
            scopes=keys.scopes_of(key),
            is_owner=key.is_owner,
            allowed_origins=list(key.allowed_origins or []),
            daily_message_limit=key.daily_message_limit,
            last_used_at=key.last_used_at,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class KeyCreatedOut(KeyOut):
    key: str = Field(..., description="The secret. Shown in this reply only; store it now.")


class SourceOut(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    parent_id: uuid.UUID | None
    type: str
    title: str
    url: str | None
    filename: str | None
    mime_type: str | None
    size_bytes: int | None
    status: str
    error: str | None
    error_code: str | None
    chunk_count: int
    progress: float
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, source: Source) -> SourceOut:
        return cls(
            id=source.id,
            bot_id=source.bot_id,
            parent_id=source.parent_id,
            type=source.type,
            title=source.title,
            url=source.url,
            filename=source.filename,
            mime_type=source.mime_type,
            size_bytes=source.size_bytes,
            status=source.status,
            error=source.error,
            error_code=source.error_code,
            chunk_count=source.chunk_count,
            progress=source.progress,
            created_at=source.created_at,
            updated_at=source.updated_at,
        )
