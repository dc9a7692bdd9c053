"""Bots: create, read, change, delete — always inside one workspace.

A bot is addressed by its UUID or its slug; a bot of another workspace is reported exactly like
a missing one (``bot_not_found``), so ids leak nothing across tenants.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from chatwell.domain.auth import Principal
from chatwell.domain.bots import BotCreate, BotUpdate, slugify
from chatwell.domain.models import (
    AnswerSettings,
    ContactFormSettings,
    HandoffSettings,
    ModelSettings,
    RateLimits,
    WidgetSettings,
)
from chatwell.errors import Conflict, Forbidden, NotFound
from chatwell.services import webhooks
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot

# Request field -> (column, settings model) for the JSON settings groups.
SETTINGS_GROUPS: dict[str, tuple[str, type[Any]]] = {
    "model": ("model_settings", ModelSettings),
    "rate_limits": ("rate_limits", RateLimits),
    "answer": ("answer_settings", AnswerSettings),
    "handoff": ("handoff_settings", HandoffSettings),
    "contact_form": ("contact_form", ContactFormSettings),
    "widget": ("widget_settings", WidgetSettings),
}
PLAIN_FIELDS = (
    "name",
    "public",
    "instructions",
    "welcome_message",
    "suggested_questions",
    "allowed_origins",
    "webhook_url",
    "active",
)


def bot_not_found() -> NotFound:
    return NotFound("bot not found", code="bot_not_found")


def parse_bot_ref(ref: str) -> uuid.UUID | str:
    """A bot reference is its UUID or its slug."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return ref.lower()


async def find_bot(session: AsyncSession, ref: str | uuid.UUID) -> Bot | None:
    """Any workspace's bot by id or slug (public endpoints); callers check ownership."""
    return await session.run_sync(find_bot_now, ref)


def find_bot_now(session: Session, ref: str | uuid.UUID) -> Bot | None:
    """:func:`find_bot` in a synchronous session (``Database.read_now``)."""
    key = parse_bot_ref(ref) if isinstance(ref, str) else ref
    if isinstance(key, uuid.UUID):
        return session.get(Bot, key)
    return session.scalar(select(Bot).where(Bot.slug == key))


async def _unique_slug(session: AsyncSession, base: str) -> str:
    taken = set(await session.scalars(select(Bot.slug).where(Bot.slug.like(f"{base}%"))))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _apply(bot: Bot, data: BotCreate | BotUpdate) -> None:
    given = data.model_fields_set
    for name in PLAIN_FIELDS:
        if name in given and (value := getattr(data, name)) is not None:
            setattr(bot, name, value)
    if "welcome_message" in given:
        bot.welcome_message = data.welcome_message
    for field, (column, model) in SETTINGS_GROUPS.items():
        if field in given and (value := getattr(data, field)) is not None:
            # PATCH merges into the stored group instead of replacing it wholesale.
            merged = {**(getattr(bot, column) or {}), **value.model_dump(exclude_unset=True)}
            setattr(
                bot, column, model.model_validate(merged).model_dump(mode="json", exclude_none=True)
            )


async def create_bot(db: Database, *, workspace_id: uuid.UUID, data: BotCreate) -> Bot:
    try:
        async with db.write() as session:
            slug = data.slug
            if slug is None:
                slug = await _unique_slug(session, slugify(data.name))
            elif await session.scalar(select(Bot.id).where(Bot.slug == slug)) is not None:
                raise Conflict(f"slug {slug!r} is already taken", code="slug_taken")
            bot = Bot(
                workspace_id=workspace_id,
                slug=slug,
                name=data.name,
                public=False,
                instructions="",
                suggested_questions=[],
                allowed_origins=[],
                model_settings={},
                rate_limits={},
                answer_settings={},
                handoff_settings={},
                contact_form={},
                widget_settings={},
            )
            _apply(bot, data)
            issued = webhooks.issue_secret(bot)
            session.add(bot)
            await session.flush()
    except IntegrityError:
        raise Conflict("slug is already taken", code="slug_taken") from None
    bot.issued_webhook_secret = issued  # not stored: for the one reply that shows it
    return bot


async def get_bot(db: Database, *, principal: Principal, ref: str | uuid.UUID) -> Bot:
    """The bot ``ref`` if ``principal`` may reach it, else ``bot_not_found``."""
    bot = await db.read_now(lambda session: find_bot_now(session, ref))
    if (
        bot is None
        or bot.workspace_id != principal.workspace_id
        or not principal.can_reach_bot(bot.id)
    ):
        raise bot_not_found()
    return bot


async def get_public_bot(db: Database, *, ref: str | uuid.UUID) -> Bot:
    """A bot for the keyless widget endpoints: it must exist (404), be public and active (403)."""
    bot = await db.read_now(lambda session: find_bot_now(session, ref))
    if bot is None:
        raise bot_not_found()
    if not bot.public:
        raise Forbidden("this bot is not public", code="bot_not_public")
    if not bot.active:
        raise Forbidden("this bot is inactive", code="bot_inactive")
    return bot


async def list_bots(
    db: Database, *, principal: Principal, limit: int = 50, cursor: str | None = None
) -> Page[Bot]:
    query = select(Bot).where(Bot.workspace_id == principal.workspace_id)
    if principal.bot_id is not None:
        query = query.where(Bot.id == principal.bot_id)
    async with db.read() as session:
        rows = list(
            (await session.scalars(paginate(query, Bot.id, limit=limit, cursor=cursor))).all()
        )
    return page_of(rows, limit, lambda b: b.id)


async def all_bots(db: Database, *, principal: Principal) -> list[Bot]:
    """Every bot ``principal`` reaches, page after page (for doors that list them unpaged)."""
    found: list[Bot] = []
    cursor = None
    while True:
        page = await list_bots(db, principal=principal, limit=100, cursor=cursor)
        found.extend(page.items)
        if not page.has_more:
            return found
        cursor = page.next_cursor


async def update_bot(db: Database, *, principal: Principal, ref: str, data: BotUpdate) -> Bot:
    current = await get_bot(db, principal=principal, ref=ref)
    try:
        async with db.write() as session:
            bot = await session.get(Bot, current.id)
            if bot is None:
                raise bot_not_found()
            if data.slug is not None and data.slug != bot.slug:
                if await session.scalar(select(Bot.id).where(Bot.slug == data.slug)) is not None:
                    raise Conflict(f"slug {data.slug!r} is already taken", code="slug_taken")
                bot.slug = data.slug
            _apply(bot, data)
            issued = webhooks.issue_secret(bot)
            await session.flush()
    except IntegrityError:
        raise Conflict("slug is already taken", code="slug_taken") from None
    bot.issued_webhook_secret = issued  # not stored: for the one reply that shows it
    return bot


async def delete_bot(db: Database, *, principal: Principal, ref: str) -> None:
    bot = await get_bot(db, principal=principal, ref=ref)
    async with db.write() as session:
        target = await session.get(Bot, bot.id)
        if target is not None:
            await session.delete(target)  # the database cascades to everything of the bot
