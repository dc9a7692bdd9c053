"""CORS for every door, with origins that live in the database.

A preflight carries neither key nor bot, so it is answered for an origin that the server allows
(``CHATWELL_CORS_ALLOWED_ORIGINS``; any origin in the `development` environment, as ChatIQ does),
that any bot or key names, or — on the public widget endpoints, which check the bot's domains on
the request itself — for any origin. An actual request gets ``Access-Control-Allow-Origin`` when
the server allows its origin or when the endpoint, having checked the origin against its bot and
key, marked the request with ``allow_cors(request)``. Refused preflights get a 403 in the
dialect's error shape.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwell.api.errors import ErrorFormats
from chatwell.errors import Forbidden
from chatwell.services.origins import known_origins, origin_matches
from chatwell.settings import Settings

# The keyless endpoints of public bots, which check the bot's domains on the request itself:
# chatwell's widget API and the Flowise widget's (chatwell.api.flowise.routes.PUBLIC_PREFIXES).
PUBLIC_PREFIXES = (
    "/v1/public/",
    "/api/v1/prediction/",
    "/api/v1/chatflows-streaming/",
    "/api/v1/public-chatbotConfig/",
    "/api/v1/feedback",
    "/api/v1/leads",
    "/api/v1/chatmessage/abort/",
)
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = {
    "authorization",
    "content-type",
    "accept",
    "x-requested-with",
    "cache-control",
    "last-event-id",
    "x-api-key",
}
EXPOSED_HEADERS = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
MAX_AGE = "600"
CACHE_SECONDS = 10.0


def allow_cors(request: Request) -> None:
    """Mark a request whose Origin the endpoint has checked: its response may be read cross-site."""
    request.state.cors_allowed = True


class CORSMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings, formats: ErrorFormats) -> None:
        self.app = app
        self.settings = settings
        self.formats = formats
        self._cache: tuple[float, set[str]] = (0.0, set())

    def _server_allows(self, origin: str) -> bool:
        return self.settings.environment == "development" or origin_matches(
            origin, self.settings.cors_allowed_origins
        )

    async def _named_anywhere(self, scope: Scope, origin: str) -> bool:
        stamp, origins = self._cache
        if time.monotonic() - stamp > CACHE_SECONDS:
            app = scope.get("app")
            runtime = getattr(getattr(app, "state", None), "runtime", None)
            db = getattr(runtime, "db", None)  # None before the lifespan opened the database
            origins = await known_origins(db) if db is not None else set()
            self._cache = (time.monotonic(), origins)
        return origin_matches(origin, origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        origin_raw = headers.get(b"origin")
        if origin_raw is None:
            await self.app(scope, receive, send)
            return
        origin = origin_raw.decode("latin-1")
        path: str = scope["path"]
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(scope, receive, send, origin, path, headers)
            return
        server_allows = self._server_allows(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state") or {}
                if server_allows or state.get("cors_allowed"):
                    extra = [
                        (b"access-control-allow-origin", origin_raw),
                        (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                        (b"vary", b"Origin"),
                    ]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        origin: str,
        path: str,
        headers: dict[bytes, bytes],
    ) -> None:
        allowed = (
            self._server_allows(origin)
            or path.startswith(PUBLIC_PREFIXES)
            or await self._named_anywhere(scope, origin)
        )
        if not allowed:
            response = self.formats.render(
                Request(scope),
                Forbidden("this origin may not call this server", code="cors_origin_not_allowed"),
            )
            await response(scope, receive, send)
            return
        requested = headers.get(b"access-control-request-headers", b"").decode("latin-1")
        asked = [h.strip().lower() for h in requested.split(",") if h.strip()]
        response = Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ", ".join(h for h in asked if h in ALLOWED_HEADERS)
                or "content-type",
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin",
            },
        )
        await response(scope, receive, send)
