"""Health and readiness endpoints for people, proxies and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from chatwell.api.deps import DbDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process accepts work."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(db: DbDep) -> dict[str, str]:
    """Readiness: the database answers."""
    async with db.read() as session:
        await session.execute(text("SELECT 1"))
    return {"status": "ready"}
