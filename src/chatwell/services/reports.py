"""Usage and session reports over metered requests and stored conversations (read-only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from chatwell.domain.auth import Principal
from chatwell.domain.models import MessageRole, Permission
from chatwell.services.keys import require
from chatwell.storage.database import Database
from chatwell.storage.tables import Conversation, Message, UsageEvent


@dataclass(slots=True)
class ModelUsageRow:
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(slots=True)
class UsageReport:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    by_model: list[ModelUsageRow] = field(default_factory=list)


async def usage(
    db: Database,
    *,
    api_key_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
) -> UsageReport:
    """Requests, tokens and cost of one key, per model, from ``start`` (inclusive) to ``end``."""
    query = (
        select(
            UsageEvent.model,
            func.count(),
            func.coalesce(func.sum(UsageEvent.prompt_tokens), 0),
            func.coalesce(func.sum(UsageEvent.completion_tokens), 0),
            func.coalesce(func.sum(UsageEvent.cost), 0),
        )
        .where(UsageEvent.api_key_id == api_key_id)
        .group_by(UsageEvent.model)
        .order_by(UsageEvent.model)
    )
    if start is not None:
        query = query.where(UsageEvent.created_at >= start)
    if end is not None:
        query = query.where(UsageEvent.created_at < end)
    report = UsageReport()
    async with db.read() as session:
        for model, count, prompt, completion, cost in (await session.execute(query)).all():
            row = ModelUsageRow(
                model or "unknown",
                int(count),
                int(prompt),
                int(completion),
                float(Decimal(str(cost))),
            )
            report.by_model.append(row)
            report.requests += row.requests
            report.input_tokens += row.input_tokens
            report.output_tokens += row.output_tokens
            report.cost += row.cost
    report.cost = round(report.cost, 6)
    return report


@dataclass(slots=True)
class SessionSummary:
    session_id: str
    conversation_id: uuid.UUID
    bot_id: uuid.UUID
    channel: str
    created_at: datetime
    last_at: datetime
    total_tokens: int
    preview: str
    messages: list[dict[str, Any]]


async def sessions(
    db: Database, *, principal: Principal, include_all: bool, page: int, per_page: int
) -> tuple[list[SessionSummary], bool]:
    """Conversations opened with this key, newest activity first (``include_all``: every
    conversation the key can reach); returns one page and whether more follow. Transcripts: a
    bot key needs ``conversations:read`` (its own sessions are every visitor's of its website)."""
    require(principal, Permission.CONVERSATIONS_READ)
    query = select(Conversation).where(Conversation.workspace_id == principal.workspace_id)
    if principal.bot_id is not None:
        query = query.where(Conversation.bot_id == principal.bot_id)
    if not include_all:
        query = query.where(Conversation.api_key_id == principal.key_id)
    query = (
        query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    async with db.read() as session:
        rows = list((await session.scalars(query)).all())
        has_more = len(rows) > per_page
        rows = rows[:per_page]
        summaries: list[SessionSummary] = []
        for conversation in rows:
            messages = list(
                (
                    await session.scalars(
                        select(Message)
                        .where(Message.conversation_id == conversation.id)
                        .order_by(Message.created_at, Message.id)
                    )
                ).all()
            )
            last_assistant = next(
                (m.content for m in reversed(messages) if m.role == MessageRole.ASSISTANT), ""
            )
            summaries.append(
                SessionSummary(
                    session_id=conversation.session_id or str(conversation.id),
                    conversation_id=conversation.id,
                    bot_id=conversation.bot_id,
                    channel=conversation.channel,
                    created_at=conversation.created_at,
                    last_at=max([conversation.updated_at, *(m.created_at for m in messages)]),
                    total_tokens=sum(m.prompt_tokens + m.completion_tokens for m in messages),
                    preview=_preview(last_assistant),
                    messages=[
                        {"role": m.role, "content": m.content, "created_at": m.created_at}
                        for m in messages
                    ],
                )
            )
    return summaries, has_more


def _preview(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
