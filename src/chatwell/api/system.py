"""Health, readiness and metrics endpoints for people, proxies, orchestrators and Prometheus."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from chatwell.api.deps import DbDep, runtime_of
from chatwell.errors import Forbidden, Unauthenticated
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
    """Prometheus metrics of all this server's workers, and the queue depth from the database.

    Their counts span every workspace: with ``CHATWELL_METRICS_TOKEN`` set they need it as a Bearer
    token, without it only loopback clients get them."""
    _check_metrics_access(request)
    registry = runtime_of(request).metrics
    for status, count in (await sources.count_by_status(db)).items():
        registry.queue_depth.labels(status).set(count)
    return Response(registry.render(), media_type=CONTENT_TYPE)


def _check_metrics_access(request: Request) -> None:
    token = runtime_of(request).settings.metrics_token
    if token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.get_secret_value().encode()
        ):
            raise Unauthenticated(
                "the metrics token is missing or wrong", code="invalid_metrics_token"
            )
        return
    if not _is_loopback(request.client.host if request.client else ""):
        raise Forbidden(
            "metrics are served to loopback clients only; set CHATWELL_METRICS_TOKEN to scrape "
            "them from elsewhere",
            code="metrics_forbidden",
        )


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return (mapped or address).is_loopback
