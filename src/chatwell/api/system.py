"""Health, readiness and metrics endpoints for people, proxies, orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from chatwell.api.deps import DbDep
from chatwell.observability.metrics import CONTENT_TYPE
from chatwell.services import sources

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


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request, db: DbDep) -> Response:
    """Prometheus metrics of all this server's workers, and the queue depth from the database."""
    registry = request.app.state.metrics
    for status, count in (await sources.count_by_status(db)).items():
        registry.queue_depth.labels(status).set(count)
    return Response(registry.render(), media_type=CONTENT_TYPE)
