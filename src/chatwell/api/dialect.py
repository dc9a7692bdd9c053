"""What every dialect door shares: key and origin checks, limits, and a turn run to its end.

A dialect module is a request schema, an auth rule, an error shape and a stream encoder; the
steps below are the same for all of them and live here once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from chatwell.api.cors import allow_cors
from chatwell.api.deps import client_ip, runtime_of
from chatwell.api.errors import validation_error
from chatwell.chat.turns import Caller
from chatwell.domain.auth import Principal
from chatwell.domain.models import Permission
from chatwell.errors import ChatwellError, Forbidden, InvalidRequest
from chatwell.limits.service import Decision
from chatwell.services import keys
from chatwell.services.origins import origin_allowed, origin_matches
from chatwell.storage.tables import Bot

Model = TypeVar("Model", bound=BaseModel)


def check_bot_origin(request: Request, bot: Bot, principal: Principal | None = None) -> None:
    """A browser call (one with an Origin) must come from the bot's domains, when it names any,
    or from the server's CORS list (chatwell's own pages always may); a key with its own allowed origins (already checked when it
    was authenticated) decides for itself. A passing call may be read cross-site."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if principal is not None and principal.allowed_origins:
        allow_cors(request)
        return
    settings = runtime_of(request).settings
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin.rstrip("/").lower() == own.lower():  # chatwell's own pages (the full-page chat)
        return
    if not origin_matches(origin, settings.cors_allowed_origins) and not origin_allowed(
        origin, bot.allowed_origins
    ):
        raise Forbidden(
            "this origin is not one of the bot's allowed domains", code="origin_not_allowed"
        )
    allow_cors(request)


def check_key_for_bot(
    request: Request, bot: Bot, principal: Principal, permission: Permission = Permission.CHAT
) -> None:
    """Every keyed request about one bot (a chat turn on any door, a search): the key holds
    ``permission`` (403 ``insufficient_scope``) and a browser's origin is one the key or the bot
    allows (403 ``origin_not_allowed``)."""
    keys.require(principal, permission)
    check_bot_origin(request, bot, principal)


def caller_of(
    request: Request,
    principal: Principal | None,
    *checks: Callable[[Bot], Awaitable[None]],
) -> Caller:
    """The caller of a chat turn on an HTTP door (for ``chat.turns.open_turn``): its key, its
    address, and the request's checks of the bot: a browser's origin, then the door's ``checks``."""

    async def admit(bot: Bot) -> None:
        check_bot_origin(request, bot, principal)
        for check in checks:
            await check(bot)

    return Caller(principal, client_ip(request), admit)


async def admit_keyed_chat(request: Request, bot: Bot, principal: Principal) -> Decision | None:
    """Every keyed door before a turn: :func:`check_key_for_bot`, then the key's and the bot's
    limits (429 with Retry-After); returns the decision for ``X-RateLimit-*`` headers."""
    check_key_for_bot(request, bot, principal)
    return await runtime_of(request).limits.keyed_chat(bot, principal)


async def parse_body(request: Request, model: type[Model]) -> Model:
    """Validate a JSON body by hand (for endpoints that pick their schema from the body)."""
    raw = await request.body()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        raise InvalidRequest("request body is not valid JSON", code="malformed_json") from None
    return validate(payload, model)


def validate(payload: Any, model: type[Model]) -> Model:
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_request")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        from fastapi.exceptions import RequestValidationError

        raise validation_error(RequestValidationError(exc.errors(include_url=False))) from None


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def limit_headers(decision: Decision | None) -> dict[str, str]:
    return decision.headers() if decision is not None else {}


def error_renderer(
    fmt: Callable[[ChatwellError, int], JSONResponse],
) -> Callable[[ChatwellError, int], JSONResponse]:
    """An error format that always adds Retry-After and X-RateLimit-* to a 429."""
    from chatwell.api.errors import rate_limit_headers

    def render(error: ChatwellError, status: int) -> JSONResponse:
        response = fmt(error, status)
        for name, value in rate_limit_headers(error).items():
            response.headers.setdefault(name, value)
        return response

    return render


def wake_ingestion(request: Request) -> None:
    """New sources were queued: tell this process's ingestion (worker or queue) to look now."""
    worker = runtime_of(request).ingestion
    if worker is not None:
        worker.wake()
