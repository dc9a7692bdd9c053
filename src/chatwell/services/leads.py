"""Leads: contact details a visitor left with a bot (the contact form, the widget issue).

Decisions:

- A lead and its ``lead.created`` webhook delivery are written in one transaction
  (:func:`_add_lead`), whichever door created the lead, so no lead goes unannounced and no
  announcement names a lead that was rolled back.
- ``name``, ``email`` and ``phone`` are columns; every other field goes to ``fields``. A form
  field named like a column fills the column (also when the widget sends it inside ``fields``).
- A public submission (:func:`submit_lead`) needs the bot's contact form on, its required fields
  present and every email-typed value well-formed. When the form lists fields, only those are
  kept (arbitrary keys would become arbitrary export columns); a form with no list keeps what
  it is given. A conversation named by the submission must be this bot's and this session's,
  the rule of the public history endpoint; anything else is "not found".
- Lengths are bounded by the doors' schemas; this module judges content, not size.
- Reading leads (every door) needs ``leads:read``: a workspace key, or a bot key granted it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.domain.auth import Principal
from chatwell.domain.models import ContactFormSettings, Permission
from chatwell.errors import Forbidden, InvalidRequest
from chatwell.services import notifications, webhooks
from chatwell.services.conversations import conversation_not_found, iso, parse_uuid
from chatwell.services.keys import require
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.services.sessions import visitor_owns
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Conversation, Lead, utcnow

LEAD_CREATED = "lead.created"
STANDARD_FIELDS = ("name", "email", "phone")
EXPORT_COLUMNS = ("id", "created_at", "name", "email", "phone", "conversation_id")
EXPORT_BATCH = 500
EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


@dataclass(frozen=True, slots=True)
class LeadSubmission:
    """What a visitor sent from the contact form (already bounded in size by the door)."""

    session_id: str
    conversation_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeadFields:
    """A lead's checked values: the three columns and the other fields."""

    name: str | None
    email: str | None
    phone: str | None
    fields: dict[str, str]


# ----------------------------------------------------------------------------- creating


async def create_lead(
    db: Database,
    *,
    bot: Bot,
    conversation_id: uuid.UUID | None = None,
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Lead:
    """Store a lead as given (trusted callers) and queue its ``lead.created`` webhook."""
    async with db.write() as session:
        return await _add_lead(
            session, bot, conversation_id, LeadFields(name, email, phone, fields or {})
        )


async def submit_lead(db: Database, *, bot: Bot, submission: LeadSubmission) -> Lead:
    """A visitor's contact form, checked against the bot's form (see the module docstring)."""
    form = ContactFormSettings.model_validate(bot.contact_form or {})
    if not form.enabled:
        raise Forbidden("this bot's contact form is turned off", code="contact_form_disabled")
    clean = check_submission(form, submission)
    async with db.write() as session:
        conversation_id = await _session_conversation(session, bot, submission)
        return await _add_lead(session, bot, conversation_id, clean)


def check_submission(form: ContactFormSettings, submission: LeadSubmission) -> LeadFields:
    """The submission's values, trimmed and mapped to columns; raises ``missing_field`` or
    ``invalid_email`` (the rules of the module docstring)."""
    given = {
        key.strip(): value.strip()
        for key, value in submission.fields.items()
        if key.strip() and value.strip()
    }
    standard: dict[str, str | None] = {}
    for name in STANDARD_FIELDS:
        inside = given.pop(name, None)
        standard[name] = (getattr(submission, name) or "").strip() or inside
    if form.fields:
        named = {f.name for f in form.fields}
        given = {key: value for key, value in given.items() if key in named}
    for spec in form.fields:
        value = standard.get(spec.name) if spec.name in STANDARD_FIELDS else given.get(spec.name)
        if spec.required and not value:
            raise InvalidRequest(
                f"{spec.label} is required", code="missing_field", details={"field": spec.name}
            )
        if value and spec.type == "email":
            _check_email(value, spec.name)
    if standard["email"]:
        _check_email(standard["email"], "email")
    if not any(standard.values()) and not given:
        raise InvalidRequest(
            "a lead needs at least a name, an email, a phone or a field", code="missing_field"
        )
    return LeadFields(standard["name"], standard["email"], standard["phone"], given)


def _check_email(value: str, name: str) -> None:
    if not EMAIL.match(value):
        raise InvalidRequest(
            f"{name} is not a valid email address", code="invalid_email", details={"field": name}
        )


async def _session_conversation(
    session: AsyncSession, bot: Bot, submission: LeadSubmission
) -> uuid.UUID | None:
    if submission.conversation_id is None:
        return None
    cid = parse_uuid(submission.conversation_id, conversation_not_found())
    conversation = await session.get(Conversation, cid)
    if (
        conversation is None
        or conversation.bot_id != bot.id
        or not visitor_owns(conversation, session_id=submission.session_id)
    ):
        raise conversation_not_found()
    return conversation.id


async def _add_lead(
    session: AsyncSession, bot: Bot, conversation_id: uuid.UUID | None, clean: LeadFields
) -> Lead:
    lead = Lead(
        workspace_id=bot.workspace_id,
        bot_id=bot.id,
        conversation_id=conversation_id,
        name=clean.name,
        email=clean.email,
        phone=clean.phone,
        fields=clean.fields,
    )
    session.add(lead)
    await session.flush()
    current = await session.get(Bot, bot.id)  # this transaction's view of the webhook settings
    if current is not None:
        webhooks.enqueue(
            session, bot=current, event=LEAD_CREATED, payload=lead_event(current, lead)
        )
        await notifications.enqueue_lead(session, bot=current, lead=lead)
    return lead


def lead_json(lead: Lead) -> dict[str, Any]:
    return {
        "id": str(lead.id),
        "bot_id": str(lead.bot_id),
        "conversation_id": str(lead.conversation_id) if lead.conversation_id else None,
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "fields": dict(lead.fields or {}),
        "created_at": iso(lead.created_at),
    }


def lead_event(bot: Bot, lead: Lead) -> dict[str, Any]:
    """The ``lead.created`` webhook body."""
    return {
        "event": LEAD_CREATED,
        "created_at": iso(utcnow()),
        "bot": {"id": str(bot.id), "slug": bot.slug, "name": bot.name},
        "lead": lead_json(lead),
        "conversation_id": str(lead.conversation_id) if lead.conversation_id else None,
    }


# ----------------------------------------------------------------------------- reading


async def list_leads(
    db: Database,
    *,
    principal: Principal,
    bot_id: uuid.UUID,
    start: datetime | None,
    end: datetime | None,
    page: int,
    size: int,
) -> list[Lead]:
    """A page of a bot's leads, newest first (the caller has checked it may reach the bot)."""
    require(principal, Permission.LEADS_READ)
    query = select(Lead).where(Lead.workspace_id == principal.workspace_id, Lead.bot_id == bot_id)
    if start is not None:
        query = query.where(Lead.created_at >= start)
    if end is not None:
        query = query.where(Lead.created_at < end)
    query = (
        query.order_by(Lead.created_at.desc(), Lead.id.desc()).offset((page - 1) * size).limit(size)
    )
    async with db.read() as session:
        return list((await session.scalars(query)).all())


async def leads_page(
    db: Database,
    *,
    principal: Principal,
    bot_id: uuid.UUID,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Lead]:
    """A cursor page of a bot's leads, newest first (the caller has checked it may reach the bot)."""
    require(principal, Permission.LEADS_READ)
    query = select(Lead).where(Lead.workspace_id == principal.workspace_id, Lead.bot_id == bot_id)
    async with db.read() as session:
        rows = list(
            (await session.scalars(paginate(query, Lead.id, limit=limit, cursor=cursor))).all()
        )
    return page_of(rows, limit, lambda lead: lead.id)


@dataclass(slots=True)
class LeadExport:
    """A bot's leads as a table: ``columns`` (standard, then custom), ``rows()`` in batches."""

    columns: list[str]
    rows: AsyncIterator[list[list[str]]]


async def export_leads(db: Database, *, principal: Principal, bot: Bot) -> LeadExport:
    """Every lead of ``bot``, oldest first, read in batches (two passes: the custom columns must
    be known before the first row). Leads that arrive after the first pass are not included."""
    require(principal, Permission.LEADS_READ)
    where = (Lead.workspace_id == principal.workspace_id, Lead.bot_id == bot.id)
    form = ContactFormSettings.model_validate(bot.contact_form or {})
    custom = [f.name for f in form.fields if f.name not in STANDARD_FIELDS]
    last: uuid.UUID | None = None
    async for batch in _batches(db, select(Lead.id, Lead.fields).where(*where)):
        for _, fields in batch:
            custom.extend(key for key in (fields or {}) if key not in custom)
        last = batch[-1][0]
    columns = [
        *EXPORT_COLUMNS,
        *(f"fields.{key}" if key in EXPORT_COLUMNS else key for key in custom),
    ]

    async def rows() -> AsyncIterator[list[list[str]]]:
        if last is None:
            return
        async for batch in _batches(db, select(Lead.id, Lead).where(*where, Lead.id <= last)):
            yield [_export_row(lead, custom) for _, lead in batch]

    return LeadExport(columns, rows())


async def _batches(db: Database, query: Any) -> AsyncIterator[list[Any]]:
    """``query`` (whose first column is ``Lead.id``) in id order, one short read per batch."""
    after: uuid.UUID | None = None
    while True:
        page = query.order_by(Lead.id).limit(EXPORT_BATCH)
        if after is not None:
            page = page.where(Lead.id > after)
        async with db.read() as session:
            batch = list((await session.execute(page)).all())
        if not batch:
            return
        yield batch
        after = batch[-1][0]


def _export_row(lead: Lead, custom: list[str]) -> list[str]:
    fields = lead.fields or {}
    standard = [
        str(lead.id),
        iso(lead.created_at) or "",
        lead.name or "",
        lead.email or "",
        lead.phone or "",
        str(lead.conversation_id) if lead.conversation_id else "",
    ]
    return standard + [_text(fields.get(key)) for key in custom]


def _text(value: Any) -> str:
    return "" if value is None else str(value)
