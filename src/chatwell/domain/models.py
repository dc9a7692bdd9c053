"""Domain value types: enums and the validated settings groups a bot carries.

Bot settings groups are stored as JSON; these models are their schema, validated on the way in
and filled with defaults on the way out, so later features add fields here, not migrations.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SourceType(StrEnum):
    TEXT = "text"
    QA = "qa"
    FILE = "file"
    URL = "url"


class SourceStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class KeyScope(StrEnum):
    WORKSPACE = "workspace"
    BOT = "bot"


class Permission(StrEnum):
    """What a bot key may do with its bot (its ``scopes``). A bot key is the kind handed to a
    website, so it gets ``chat`` only unless more is granted when it is made; a workspace key
    (and the owner key) holds every permission."""

    CHAT = "chat"  # talk to the bot and search its knowledge, on every door
    CONVERSATIONS_READ = (
        "conversations:read"  # list and read its transcripts (and sessions reports)
    )
    CONVERSATIONS_WRITE = "conversations:write"  # delete transcripts, rate answers
    LEADS_READ = "leads:read"  # read and export the contact details visitors left


DEFAULT_BOT_KEY_SCOPES = (Permission.CHAT.value,)


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING_HUMAN = "pending_human"
    HUMAN = "human"
    RESOLVED = "resolved"


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    AGENT = "agent"
    SYSTEM = "system"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimits(_Group):
    """Per client IP, per bot limits on top of the server defaults; the strictest wins."""

    per_minute: int | None = Field(None, ge=1, le=1_000_000)
    per_hour: int | None = Field(None, ge=1, le=1_000_000)
    per_day: int | None = Field(None, ge=1, le=10_000_000)
    message: str | None = Field(None, max_length=500, description="Shown to visitors when limited.")


class ModelSettings(_Group):
    """Which model answers for this bot; empty fields fall back to the server's LLM settings.

    The endpoint and its key are the operator's (server settings), never a bot's: a bot can not
    point the server's credentials at an address of its choosing.
    """

    provider: str | None = Field(None, pattern="^(openai|anthropic|offline)$")
    model: str | None = Field(None, max_length=200)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    stream_default: bool = True


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class HandoffSettings(_Group):
    enabled: bool = False
    trigger: str = Field("button", pattern="^(button|auto|both)$")
    offline_message: str | None = Field(None, max_length=1000)
    agent_label: str | None = Field(None, max_length=100)
    canned_replies: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=30
    )  # ready answers an agent inserts with one click
    # Email notifications (sent when the server has SMTP settings) to these addresses:
    notify_emails: list[Annotated[str, Field(max_length=254)]] = Field(
        default_factory=list, max_length=20
    )
    email_on_lead: bool = True  # a visitor left contact details (with the transcript)
    email_on_offline_request: bool = True  # a visitor asked for a person while nobody was online
    email_on_missed: bool = True  # a handoff nobody answered in time

    @field_validator("notify_emails")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        addresses = [address.strip() for address in value if address.strip()]
        for address in addresses:
            if not re.fullmatch(EMAIL_PATTERN, address):
                raise ValueError(f"{address!r} is not an email address")
        return addresses


class ContactFormField(_Group):
    name: str = Field(..., min_length=1, max_length=50)
    label: str = Field(..., min_length=1, max_length=100)
    type: str = Field("text", pattern="^(text|email|phone|textarea)$")
    required: bool = False


class ContactFormSettings(_Group):
    enabled: bool = False
    trigger: str = Field("on_request", pattern="^(always|after_messages|on_request)$")
    after_messages: int = Field(3, ge=1, le=100)
    fields: list[ContactFormField] = Field(default_factory=list, max_length=20)
    success_message: str | None = Field(None, max_length=1000)
    button_display: str = Field("after_response", max_length=50)


class WidgetSettings(_Group):
    title: str | None = Field(None, max_length=100)
    primary_color: str = Field("#2563eb", pattern="^#[0-9a-fA-F]{6}$")
    position: str = Field("bottom-right", pattern="^(bottom-right|bottom-left)$")
    avatar_url: str | None = Field(None, max_length=500)
    launcher_text: str | None = Field(None, max_length=50)
    recaptcha_enabled: bool = Field(
        False,
        description="Public chat needs a reCAPTCHA token (when the server has a reCAPTCHA secret).",
    )


class AnswerSettings(_Group):
    """How the bot answers: language, links, citations, and what it says when it finds nothing."""

    language: str = Field("en", max_length=10)
    include_links: bool = True
    citations_enabled: bool = True
    not_found_message: str = Field(
        "I'm sorry, I couldn't find anything about that in my knowledge base.", max_length=1000
    )
    strictness: Literal["lenient", "balanced", "strict"] = Field(
        "balanced",
        description="How sure the offline answerer must be that its sources answer before it "
        "answers instead of saying it found nothing.",
    )
    condense_follow_ups: bool = Field(
        True,
        description="With a configured model, a follow-up ('and on weekends?') is searched as the "
        "standalone question the model writes from the conversation; off, or offline, it is "
        "searched together with the previous question.",
    )
    allow_user_images: bool = False
    show_suggested_questions: bool = True
    suggested_questions_count: int = Field(3, ge=0, le=10)
    warning_message: str | None = Field(None, max_length=500)
