"""Named dependencies for the HTTP doors: the database, settings, the conversation bus and the
calling key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatwell.domain.auth import Principal
from chatwell.errors import Forbidden, Unauthenticated
from chatwell.services import keys
from chatwell.services.conversation_bus import ConversationBus
from chatwell.services.origins import origin_allowed
from chatwell.settings import Settings
from chatwell.storage.database import Database

bearer_scheme = HTTPBearer(auto_error=False, description="A chatwell API key")

# The dependencies are ``async def`` although they only read app state: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop on every request.


async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_conversation_bus(request: Request) -> ConversationBus:
    return request.app.state.conversation_bus


async def _conversation_bus(request: Request) -> ConversationBus:
    return get_conversation_bus(request)


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ConversationBusDep = Annotated[ConversationBus, Depends(_conversation_bus)]


async def authenticate_request(request: Request, db: Database, secret: str | None) -> Principal:
    """The key's principal, for every door. Only a refused key counts against
    ``auth_failure_rate_limits`` (per address and key, and per address: ``ChatLimits``); a key
    that failed too often from this address is refused before it is looked up, and a valid key
    is never refused for the failures of others."""
    limits = request.app.state.limits
    ip = request.client.host if request.client else "unknown"
    if secret:
        await limits.refuse_throttled_key(ip, secret)
    try:
        principal = await keys.authenticate(db, secret)
    except Unauthenticated as exc:
        if exc.code != "missing_api_key" and secret:  # no key sent: nothing was guessed
            await limits.count_auth_failure(ip, secret)
        raise
    if not origin_allowed(request.headers.get("origin"), principal.allowed_origins):
        raise Forbidden("this key may not be used from this origin", code="origin_not_allowed")
    return principal


async def get_principal(
    request: Request,
    db: DbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    return await authenticate_request(request, db, credentials.credentials if credentials else None)


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


PrincipalDep = Annotated[Principal, Depends(get_principal)]
WorkspacePrincipalDep = Annotated[Principal, Depends(get_workspace_principal)]
