"""Native bot management: ``/v1/bots``."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from chatwell.api.deps import DbDep, PrincipalDep, WorkspacePrincipalDep
from chatwell.api.native.schemas import BotOut, ListOut
from chatwell.domain.bots import BotCreate, BotUpdate
from chatwell.services import bots

router = APIRouter(prefix="/v1/bots", tags=["bots"])


@router.post("", status_code=201, response_model=BotOut)
async def create_bot(data: BotCreate, principal: WorkspacePrincipalDep, db: DbDep) -> BotOut:
    return BotOut.of(await bots.create_bot(db, workspace_id=principal.workspace_id, data=data))


@router.get("", response_model=ListOut[BotOut])
async def list_bots(
    principal: PrincipalDep,
    db: DbDep,
    limit: int = Query(50, ge=1, le=100),
    cursor: str | None = Query(None, max_length=100),
) -> ListOut[BotOut]:
    return ListOut.of(
        await bots.list_bots(db, principal=principal, limit=limit, cursor=cursor), BotOut.of
    )


@router.get("/{bot_id}", response_model=BotOut)
async def get_bot(bot_id: str, principal: PrincipalDep, db: DbDep) -> BotOut:
    return BotOut.of(await bots.get_bot(db, principal=principal, ref=bot_id))


@router.patch("/{bot_id}", response_model=BotOut)
async def update_bot(
    bot_id: str, data: BotUpdate, principal: WorkspacePrincipalDep, db: DbDep
) -> BotOut:
    return BotOut.of(await bots.update_bot(db, principal=principal, ref=bot_id, data=data))


@router.delete("/{bot_id}", status_code=204, response_class=Response)
async def delete_bot(bot_id: str, principal: WorkspacePrincipalDep, db: DbDep) -> Response:
    await bots.delete_bot(db, principal=principal, ref=bot_id)
    return Response(status_code=204)
