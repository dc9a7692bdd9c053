"""ChatbotIQ public contact form: ``POST /v1/public/leads`` (no key), the widget's lead capture.

- The bot (``bot_id``: its id or slug) must exist (404 ``bot_not_found``), be public and active
  (403 ``bot_not_public`` / ``bot_inactive``), a browser's Origin must be one of its domains (403
  ``origin_not_allowed``) and its contact form on (403 ``contact_form_disabled``).
- Required form fields missing or no field at all: 400 ``missing_field``; a bad email: 400
  ``invalid_email``; oversized values: 400 ``invalid_request``. A ``conversation_id`` that is not
  this bot's and this ``session_id``'s: 404 ``conversation_not_found``.
- 10 submissions a minute per client IP (429 with Retry-After): a form is filled in by hand.
- ``201 {"id"}``; the ``lead.created`` webhook is queued with the lead and the delivery worker
  woken. Errors have the ChatbotIQ shape (``/v1/public`` is registered for it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chatwell.api.deps import client_ip, runtime_of
from chatwell.api.dialect import check_bot_origin
from chatwell.limits.service import parse_limits, rules_of
from chatwell.services import bots, leads
from chatwell.services.leads import LeadSubmission

router = APIRouter(prefix="/v1/public", tags=["chatbotiq"])
LEAD_LIMITS = parse_limits("10/minute")  # per client IP
MAX_CUSTOM_FIELDS = 20

FieldName = Annotated[str, StringConstraints(min_length=1, max_length=50)]
FieldValue = Annotated[str, StringConstraints(max_length=2_000)]


class LeadIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bot_id: str = Field(..., min_length=1, max_length=100, description="The bot's id (or slug).")
    session_id: str = Field(
        ..., min_length=1, max_length=200, description="The widget's anonymous session id."
    )
    conversation_id: str | None = Field(
        None, max_length=100, description="The conversation the form came from."
    )
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=50)
    fields: dict[FieldName, FieldValue] | None = Field(
        None, max_length=MAX_CUSTOM_FIELDS, description="The form's other fields, by field name."
    )


class LeadCreatedOut(BaseModel):
    id: str


@router.post("/leads", status_code=201, response_model=LeadCreatedOut)
async def submit_lead(data: LeadIn, request: Request) -> LeadCreatedOut:
    await runtime_of(request).limits.limiter.admit(
        rules_of(LEAD_LIMITS, "lead", client_ip(request))
    )
    db = runtime_of(request).db
    bot = await bots.get_public_bot(db, ref=data.bot_id)
    check_bot_origin(request, bot)
    lead = await leads.submit_lead(
        db,
        bot=bot,
        submission=LeadSubmission(
            session_id=data.session_id,
            conversation_id=data.conversation_id,
            name=data.name,
            email=data.email,
            phone=data.phone,
            fields=dict(data.fields or {}),
        ),
    )
    runtime_of(request).webhooks.wake()
    return LeadCreatedOut(id=str(lead.id))
