"""Human handoff for agents: presence, the waiting queue, replies and resolution (workspace keys).

Agents are API keys acting for a person until the dashboard brings user logins; see
``services.handoff`` for the states. A visitor sees agent messages pushed on the public event
stream (``GET /v1/public/conversations/{id}/events``, whichever process the visitor is connected
to), or through the history endpoint (``after`` polling); ``conversation_status`` tells the widget
who holds the chat.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import ConversationBusDep, DbDep, PrincipalDep
from chatwell.api.native.chat import ConversationOut, conversation_out
from chatwell.api.native.schemas import ListOut
from chatwell.services import handoff
from chatwell.services.conversations import iso

router = APIRouter(tags=["handoff"])


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    online: bool = True


@router.post("/v1/agents/presence")
async def presence(data: PresenceIn, principal: PrincipalDep, db: DbDep) -> dict[str, Any]:
    """Say you are online (repeat at least every minute) or offline."""
    available = await handoff.set_presence(db, principal=principal, online=data.online)
    return {
        "online": data.online,
        "handoff_available": available,
        "refresh_within_seconds": handoff.PRESENCE_SECONDS,
    }


@router.get("/v1/handoff/queue", response_model=ListOut[ConversationOut])
async def waiting(
    principal: PrincipalDep,
    db: DbDep,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[ConversationOut]:
    page = await handoff.queue(db, principal=principal, limit=limit, cursor=cursor)
    return ListOut.of(page, conversation_out)


class AgentMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(..., min_length=1, max_length=handoff.MAX_AGENT_MESSAGE)


@router.post("/v1/conversations/{conversation_id}/messages", status_code=201)
async def agent_message(
    conversation_id: str,
    data: AgentMessageIn,
    principal: PrincipalDep,
    db: DbDep,
    bus: ConversationBusDep,
) -> dict[str, Any]:
    message = await handoff.agent_reply(
        db, principal=principal, conversation_id=conversation_id, content=data.content, bus=bus
    )
    return {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "conversation_id": str(message.conversation_id),
        "created_at": iso(message.created_at),
    }


@router.post("/v1/conversations/{conversation_id}/resolve")
async def resolve(
    conversation_id: str, principal: PrincipalDep, db: DbDep, bus: ConversationBusDep
) -> dict[str, Any]:
    conversation = await handoff.resolve(
        db, principal=principal, conversation_id=conversation_id, bus=bus
    )
    return {"id": str(conversation.id), "status": conversation.status}
