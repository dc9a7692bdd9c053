"""Leads: contact details a visitor left with a bot (the contact form, the widget issue)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from chatwell.domain.auth import Principal
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Lead


async def create_lead(db: Database, *, bot: Bot, conversation_id: uuid.UUID | None = None, name: str | None = None,
                      email: str | None = None, phone: str | None = None,
                      fields: dict[str, Any] | None = None) -> Lead:
    async with db.write() as session:
        lead = Lead(workspace_id=bot.workspace_id, bot_id=bot.id, conversation_id=conversation_id, name=name,
                    email=email, phone=phone, fields=fields or {})
        session.add(lead)
        await session.flush()
    return lead


async def list_leads(db: Database, *, principal: Principal, bot_id: uuid.UUID, start: datetime | None,
                     end: datetime | None, page: int, size: int) -> list[Lead]:
    """A page of a bot's leads, newest first (the caller has checked it may reach the bot)."""
    query = select(Lead).where(Lead.workspace_id == principal.workspace_id, Lead.bot_id == bot_id)
    if start is not None:
        query = query.where(Lead.created_at >= start)
    if end is not None:
        query = query.where(Lead.created_at < end)
    query = query.order_by(Lead.created_at.desc(), Lead.id.desc()).offset((page - 1) * size).limit(size)
    async with db.read() as session:
        return list((await session.scalars(query)).all())
