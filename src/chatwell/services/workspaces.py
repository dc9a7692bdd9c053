"""Workspaces: the tenant boundary. Creating one issues its owner key (shown once)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from chatwell.services import keys
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Workspace

DEFAULT_WORKSPACE_NAME = "Default workspace"


@dataclass(slots=True)
class WorkspaceSummary:
    workspace: Workspace
    bot_count: int


async def create_workspace(
    db: Database, *, name: str, is_default: bool = False, owner_secret: str | None = None
) -> tuple[Workspace, str]:
    """A new workspace and its owner key's secret (the only time the secret is available)."""
    async with db.write() as session:
        workspace = Workspace(name=name, is_default=is_default, settings={})
        session.add(workspace)
    _, secret = await keys.create_key(
        db,
        workspace_id=workspace.id,
        label="owner",
        is_owner=True,
        origin="setup",
        secret=owner_secret,
    )
    return workspace, secret


async def list_workspaces(db: Database) -> list[WorkspaceSummary]:
    async with db.read() as session:
        counts = (
            select(Bot.workspace_id, func.count().label("n")).group_by(Bot.workspace_id).subquery()
        )
        rows = await session.execute(
            select(Workspace, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.workspace_id == Workspace.id)
            .order_by(Workspace.created_at)
        )
        return [WorkspaceSummary(ws, n) for ws, n in rows.all()]


async def set_credit(db: Database, *, workspace_id, balance: Decimal | None) -> Workspace:  # type: ignore[no-untyped-def]
    """Set the workspace's credit (USD at the price table's rates); None means unlimited."""
    from chatwell.errors import NotFound

    async with db.write() as session:
        workspace = await session.get(Workspace, workspace_id)
        if workspace is None:
            raise NotFound("workspace not found", code="workspace_not_found")
        workspace.credit_balance = balance
        return workspace


async def get_default_workspace(db: Database) -> Workspace | None:
    async with db.read() as session:
        return await session.scalar(select(Workspace).where(Workspace.is_default.is_(True)))


async def ensure_default_workspace(
    db: Database, *, admin_secret: str | None
) -> tuple[Workspace, str | None]:
    """The default workspace, created on first start.

    Returns the generated owner secret when one was created now (to print once), else None.
    With ``admin_secret`` (CHATWELL_ADMIN_KEY) that exact secret becomes an owner key.
    """
    workspace = await get_default_workspace(db)
    generated: str | None = None
    if workspace is None:
        if admin_secret:
            async with db.write() as session:
                workspace = Workspace(name=DEFAULT_WORKSPACE_NAME, is_default=True, settings={})
                session.add(workspace)
        else:
            workspace, generated = await create_workspace(
                db, name=DEFAULT_WORKSPACE_NAME, is_default=True
            )
    if admin_secret:
        await keys.ensure_env_key(db, workspace_id=workspace.id, secret=admin_secret)
    return workspace, generated
