"""Native API key management: ``/v1/keys``. Secrets appear once, in the creation reply."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatwell.api.deps import DbDep, WorkspacePrincipalDep
from chatwell.api.native.schemas import KeyCreatedOut, KeyOut, ListOut
from chatwell.domain.bots import MAX_ORIGINS, check_origin
from chatwell.errors import NotFound
from chatwell.services import bots, keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(..., min_length=1, max_length=200)
    bot_id: str | None = Field(
        None, max_length=100, description="Bot id or slug; omit for a workspace key."
    )
    allowed_origins: list[str] = Field(default_factory=list, max_length=MAX_ORIGINS)
    daily_message_limit: int | None = Field(None, ge=1, le=10_000_000)
    scopes: list[str] | None = Field(
        None,
        max_length=10,
        description="A bot key's permissions: chat (the default), conversations:read, "
        "conversations:write, leads:read. A workspace key holds all of them.",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [check_origin(o) for o in value]


@router.post("", status_code=201, response_model=KeyCreatedOut)
async def create_key(data: KeyCreate, principal: WorkspacePrincipalDep, db: DbDep) -> KeyCreatedOut:
    bot_id = None
    if data.bot_id is not None:
        bot_id = (await bots.get_bot(db, principal=principal, ref=data.bot_id)).id
    key, secret = await keys.create_key(
        db,
        workspace_id=principal.workspace_id,
        label=data.label,
        bot_id=bot_id,
        allowed_origins=data.allowed_origins,
        daily_message_limit=data.daily_message_limit,
        scopes=data.scopes,
    )
    return KeyCreatedOut(**KeyOut.of(key).model_dump(), key=secret)


@router.get("", response_model=ListOut[KeyOut])
async def list_keys(
    principal: WorkspacePrincipalDep,
    db: DbDep,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[KeyOut]:
    page = await keys.list_keys(db, workspace_id=principal.workspace_id, limit=limit, cursor=cursor)
    return ListOut.of(page, KeyOut.of)


@router.delete("/{key_id}", status_code=204, response_class=Response)
async def revoke_key(key_id: str, principal: WorkspacePrincipalDep, db: DbDep) -> Response:
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise NotFound("key not found", code="key_not_found") from None
    await keys.revoke_key(db, workspace_id=principal.workspace_id, key_id=parsed)
    return Response(status_code=204)
