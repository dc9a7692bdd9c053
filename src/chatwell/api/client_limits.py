"""Cap the requests one client IP has in flight at once, so one address cannot hold thousands of
open chat streams (each an open socket, a database session at its start and a model call).

Rate limits count requests per minute; this counts requests *at the same time*: an SSE stream
counts from its first byte to its last. Past the cap the client gets 429 ``too_many_requests``
(Retry-After: 1) in the error shape of the door it called, before any work is done. The count is
kept per process (each of N processes allows the cap); health and metrics probes are exempt.
Behind a proxy the client IP is the forwarded one (``chatwell serve`` trusts proxy headers from
`FORWARDED_ALLOW_IPS`, default 127.0.0.1: a proxy on the same host).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from chatwell.api.errors import ErrorFormats
from chatwell.errors import RateLimited

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ClientConcurrencyMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, formats: ErrorFormats, metrics: Any = None):
        self.app = app
        self.limit = limit
        self.formats = formats
        self.metrics = metrics
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        count = self._in_flight.get(ip, 0)
        if count >= self.limit:
            if self.metrics is not None:
                self.metrics.rate_limited.labels("concurrency").inc()
            error = RateLimited(
                f"Too many requests in flight from this client (at most {self.limit} at once); "
                "wait for one to finish.",
                retry_after=1,
                limit=self.limit,
                code="too_many_requests",
            )
            await self.formats.render(Request(scope), error)(scope, receive, send)
            return
        self._in_flight[ip] = count + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self._in_flight[ip] - 1
            if left:
                self._in_flight[ip] = left
            else:
                del self._in_flight[ip]

    def in_flight(self, ip: str) -> int:
        return self._in_flight.get(ip, 0)
