"""Native leads and webhook endpoints: a bot's leads (JSON pages, CSV), its signing secret and its
webhook delivery log.

Leads are personal data, and a bot key is the kind handed to a website: reading them needs a
workspace key or a bot key granted ``leads:read`` (``services.leads``); the webhook endpoints need
a workspace key. The CSV neutralises spreadsheet formulas: a cell starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return gets a leading ``'`` (so a phone ``+1 555`` reads ``'+1 555``).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from chatwell.api.deps import DbDep, PrincipalDep, WorkspacePrincipalDep
from chatwell.api.native.schemas import ListOut
from chatwell.services import bots, leads, webhooks
from chatwell.storage.tables import Lead, WebhookDelivery

router = APIRouter(prefix="/v1/bots/{bot_id}", tags=["leads"])
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class LeadOut(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    conversation_id: uuid.UUID | None
    name: str | None
    email: str | None
    phone: str | None
    fields: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, lead: Lead) -> LeadOut:
        return cls(
            id=lead.id,
            bot_id=lead.bot_id,
            conversation_id=lead.conversation_id,
            name=lead.name,
            email=lead.email,
            phone=lead.phone,
            fields=dict(lead.fields or {}),
            created_at=lead.created_at,
        )


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event: str
    status: str = Field(..., description="pending, delivered or failed")
    attempts: int
    response_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event=delivery.event,
            status=delivery.status,
            attempts=delivery.attempts,
            response_status=delivery.response_status,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            next_attempt_at=delivery.next_attempt_at,
        )


class SecretOut(BaseModel):
    secret: str = Field(
        ..., description="The webhook signing secret. Shown in this reply only; store it now."
    )


@router.get("/leads", response_model=ListOut[LeadOut])
async def list_leads(
    bot_id: str,
    principal: PrincipalDep,
    db: DbDep,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[LeadOut]:
    bot = await bots.get_bot(db, principal=principal, ref=bot_id)
    page = await leads.leads_page(
        db, principal=principal, bot_id=bot.id, limit=limit, cursor=cursor
    )
    return ListOut.of(page, LeadOut.of)


@router.get(
    "/leads.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "Every lead, oldest first."}},
)
async def export_leads(bot_id: str, principal: PrincipalDep, db: DbDep) -> StreamingResponse:
    bot = await bots.get_bot(db, principal=principal, ref=bot_id)
    export = await leads.export_leads(db, principal=principal, bot=bot)

    async def body() -> AsyncIterator[str]:
        yield csv_lines([export.columns])
        async for batch in export.rows:
            yield csv_lines(batch)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{bot.slug}-leads.csv"'},
    )


def csv_lines(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([[csv_cell(value) for value in row] for row in rows])
    return buffer.getvalue()


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


@router.post("/webhook-secret", response_model=SecretOut)
async def rotate_webhook_secret(
    bot_id: str, principal: WorkspacePrincipalDep, db: DbDep
) -> SecretOut:
    bot = await bots.get_bot(db, principal=principal, ref=bot_id)
    return SecretOut(secret=await webhooks.rotate_secret(db, bot_id=bot.id))


@router.get("/webhook-deliveries", response_model=ListOut[DeliveryOut])
async def list_webhook_deliveries(
    bot_id: str,
    principal: WorkspacePrincipalDep,
    db: DbDep,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[DeliveryOut]:
    bot = await bots.get_bot(db, principal=principal, ref=bot_id)
    page = await webhooks.list_deliveries(
        db, principal=principal, bot_id=bot.id, limit=limit, cursor=cursor
    )
    return ListOut.of(page, DeliveryOut.of)
