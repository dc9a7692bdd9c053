"""Bot input schemas, split by direction: what a caller may send to create or change a bot."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatwell.domain.models import (
    AnswerSettings,
    ContactFormSettings,
    HandoffSettings,
    ModelSettings,
    RateLimits,
    WidgetSettings,
)

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"
MAX_ORIGINS = 50


def slugify(text: str) -> str:
    """A URL-safe slug from a display name ("Support Bot!" -> "support-bot")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:90].strip("-") or "bot"


def check_origin(origin: str) -> str:
    origin = origin.strip().rstrip("/")
    if not re.fullmatch(r"(https?://)?(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?", origin):
        raise ValueError(f"not an origin: {origin!r} (expected e.g. https://example.com)")
    return origin.lower()


class _BotFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public: bool | None = None
    instructions: str | None = Field(None, max_length=20_000)
    welcome_message: str | None = Field(None, max_length=2_000)
    suggested_questions: list[str] | None = Field(None, max_length=20)
    allowed_origins: list[str] | None = Field(None, max_length=MAX_ORIGINS)
    model: ModelSettings | None = None
    rate_limits: RateLimits | None = None
    answer: AnswerSettings | None = None
    handoff: HandoffSettings | None = None
    contact_form: ContactFormSettings | None = None
    widget: WidgetSettings | None = None
    webhook_url: str | None = Field(None, max_length=1000, pattern=r"^https?://")
    active: bool | None = None

    @field_validator("model", mode="before")
    @classmethod
    def _model_name(cls, value: object) -> object:
        # The contract allows `"model": "<name>"` as shorthand for `{"model": "<name>"}`.
        return {"model": value} if isinstance(value, str) else value

    @field_validator("suggested_questions")
    @classmethod
    def _questions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if any(not q.strip() or len(q) > 300 for q in value):
            raise ValueError("each suggested question must be 1-300 characters")
        return [q.strip() for q in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [check_origin(o) for o in value]


class BotCreate(_BotFields):
    name: str = Field(..., min_length=1, max_length=200)
    slug: str | None = Field(None, pattern=SLUG_PATTERN)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


class BotUpdate(_BotFields):
    name: str | None = Field(None, min_length=1, max_length=200)
    slug: str | None = Field(None, pattern=SLUG_PATTERN)
