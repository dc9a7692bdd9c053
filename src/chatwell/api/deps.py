"""The dependencies every door uses: the runtime, the database, the calling key, the client.

``PrincipalDep`` is the one way a key is authenticated (a Bearer token); a door that also takes
the key elsewhere (the developer API's ``api_key``) calls :func:`authenticate` with it. Doors
reach the server's parts through :func:`runtime_of` / ``RuntimeDep`` only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatwell.domain.auth import Principal
from chatwell.errors import Forbidden, Unauthenticated
from chatwell.runtime import Runtime
from chatwell.services import keys
from chatwell.services.conversation_bus import ConversationBus
from chatwell.services.origins import origin_allowed
from chatwell.settings import Settings
from chatwell.storage.database import Database

bearer_scheme = HTTPBearer(auto_error=False, description="A chatwell API key")

# The dependencies are ``async def`` although they only read app state: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop on every request.


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


async def get_db(request: Request) -> Database:
    return runtime_of(request).db


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


def get_conversation_bus(request: Request) -> ConversationBus:
    return runtime_of(request).bus


async def _conversation_bus(request: Request) -> ConversationBus:
    return get_conversation_bus(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ConversationBusDep = Annotated[ConversationBus, Depends(_conversation_bus)]


def client_ip(request: Request) -> str | None:
    """The client's address (None when the server was not told; limits count those together)."""
    return request.client.host if request.client else None


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def authenticate(request: Request, secret: str | None) -> Principal:
    """The key's principal, for every door. Only a refused key counts against
    ``auth_failure_rate_limits`` (per address and key, and per address: ``ChatLimits``); a key
    that failed too often from this address is refused before it is looked up, and a valid key
    is never refused for the failures of others. A key used from an origin it does not allow is
    refused (403 ``origin_not_allowed``)."""
    runtime = runtime_of(request)
    ip = client_ip(request)
    if secret:
        await runtime.limits.refuse_throttled_key(ip, secret)
    try:
        principal = await keys.authenticate(runtime.db, secret)
    except Unauthenticated as exc:
        if exc.code != "missing_api_key" and secret:  # no key sent: nothing was guessed
            await runtime.limits.count_auth_failure(ip, secret)
        raise
    if not origin_allowed(request.headers.get("origin"), principal.allowed_origins):
        raise Forbidden("this key may not be used from this origin", code="origin_not_allowed")
    return principal


async def principal_of_request(request: Request) -> Principal:
    """The Bearer key's principal (for endpoints outside FastAPI's routing: MCP)."""
    return await authenticate(request, bearer(request))


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    principal = await authenticate(request, credentials.credentials if credentials else None)
    request.state.principal = principal  # for the error handlers' door-specific headers
    return principal


async def get_workspace_principal(
    principal: Annotated[Principal, Depends(get_principal)],
) -> Principal:
    """A key that may manage the workspace (not one scoped to a single bot)."""
    if principal.bot_id is not None:
        raise Forbidden(
            "this key is scoped to one bot and cannot manage the workspace",
            code="insufficient_scope",
        )
    return principal


async def get_bot_principal(
    principal: Annotated[Principal, Depends(get_principal)],
) -> Principal:
    """A key scoped to one bot: a door whose key names the app it talks to (Dify's app key)."""
    if principal.bot_id is None:
        raise Forbidden(
            "this door needs a key scoped to one bot; this is a workspace key",
            code="app_key_required",
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
BotPrincipalDep = Annotated[Principal, Depends(get_bot_principal)]
WorkspacePrincipalDep = Annotated[Principal, Depends(get_workspace_principal)]
