"""API keys: random secrets shown once, stored as SHA-256, scoped to a workspace or one bot.

A bot key also carries its permissions (``scopes``: ``chat`` unless more is granted at creation,
``chatwell.domain.models.Permission``); service functions that read or change transcripts or
leads call :func:`require` with the permission they need.

Authentication looks a key up by its hash and compares in constant time; revocation is read on
every request, so it takes effect at once on every process sharing the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update

from chatwell.domain.auth import Principal
from chatwell.domain.models import DEFAULT_BOT_KEY_SCOPES, Permission
from chatwell.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.storage.database import Database
from chatwell.storage.tables import ApiKey, Bot, utcnow

KEY_PREFIX = "cw_"
DISPLAY_PREFIX_CHARS = 10
MAX_KEY_LENGTH = 512
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Keys whose last_used_at this process is writing or wrote, and when: a burst of requests on one
# key (all reading the same stale time) writes it once, not once per request.
_TOUCHED: dict[uuid.UUID, datetime] = {}
_TOUCHED_MAX = 10_000


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The visible part of a key: enough to recognise it, never enough to use it."""
    if secret.startswith(KEY_PREFIX):
        return secret[:DISPLAY_PREFIX_CHARS]
    return secret[:4] + "…"


def principal_of(key: ApiKey) -> Principal:
    return Principal(
        key_id=key.id,
        workspace_id=key.workspace_id,
        bot_id=key.bot_id,
        is_owner=key.is_owner,
        label=key.label,
        prefix=key.prefix,
        allowed_origins=tuple(key.allowed_origins or ()),
        daily_message_limit=key.daily_message_limit,
        scopes=frozenset(key.scopes or ()),
    )


def scopes_of(key: ApiKey) -> list[str]:
    """What a key may do, as listings show it: a workspace key every permission."""
    if key.bot_id is None:
        return [p.value for p in Permission]
    return [p.value for p in Permission if p.value in (key.scopes or ())]


def require(principal: Principal, permission: Permission) -> None:
    """Refuse (403 ``insufficient_scope``) a bot key that was not granted ``permission``."""
    if not principal.allows(permission):
        raise Forbidden(
            f"this key lacks the {permission.value!r} scope (grant it to a bot key when "
            "creating the key, or use a workspace key)",
            code="insufficient_scope",
            details={"required_scope": permission.value},
        )


def checked_scopes(bot_id: uuid.UUID | None, scopes: list[str] | None) -> list[str]:
    """The scopes to store for a new key: a bot key's (``chat`` when not given), a workspace
    key's none (it holds every permission; asking for fewer is refused, not silently ignored)."""
    if bot_id is None:
        if scopes is not None and set(scopes) != {p.value for p in Permission}:
            raise InvalidRequest(
                "scopes apply to bot keys; a workspace key holds every scope", code="invalid_scope"
            )
        return []
    chosen = list(DEFAULT_BOT_KEY_SCOPES) if scopes is None else scopes
    unknown = sorted(set(chosen) - {p.value for p in Permission})
    if unknown:
        raise InvalidRequest(
            f"unknown scope {unknown[0]!r}; known: {', '.join(p.value for p in Permission)}",
            code="invalid_scope",
        )
    return [p.value for p in Permission if p.value in chosen]


async def create_key(
    db: Database,
    *,
    workspace_id: uuid.UUID,
    label: str,
    bot_id: uuid.UUID | None = None,
    allowed_origins: list[str] | None = None,
    daily_message_limit: int | None = None,
    is_owner: bool = False,
    origin: str = "api",
    secret: str | None = None,
    scopes: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never retrievable again.
    ``scopes``: a bot key's permissions (default ``chat``), see :func:`checked_scopes`."""
    stored_scopes = checked_scopes(bot_id, scopes)
    secret = secret or generate_secret()
    async with db.write() as session:
        if bot_id is not None:
            bot = await session.get(Bot, bot_id)
            if bot is None or bot.workspace_id != workspace_id:
                raise NotFound("bot not found", code="bot_not_found")
        key = ApiKey(
            workspace_id=workspace_id,
            bot_id=bot_id,
            label=label,
            prefix=display_prefix(secret),
            secret_hash=hash_secret(secret),
            is_owner=is_owner,
            origin=origin,
            allowed_origins=list(allowed_origins or []),
            daily_message_limit=daily_message_limit,
            scopes=stored_scopes,
        )
        session.add(key)
    return key, secret


async def list_keys(
    db: Database,
    *,
    workspace_id: uuid.UUID,
    limit: int = 50,
    cursor: str | None = None,
    include_revoked: bool = False,
) -> Page[ApiKey]:
    query = select(ApiKey).where(ApiKey.workspace_id == workspace_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    async with db.read() as session:
        rows = list(
            (await session.scalars(paginate(query, ApiKey.id, limit=limit, cursor=cursor))).all()
        )
    return page_of(rows, limit, lambda k: k.id)


async def revoke_key(db: Database, *, workspace_id: uuid.UUID, key_id: uuid.UUID) -> None:
    async with db.write() as session:
        key = await session.get(ApiKey, key_id)
        if key is None or key.workspace_id != workspace_id or key.revoked_at is not None:
            raise NotFound("key not found", code="key_not_found")
        key.revoked_at = utcnow()


async def authenticate(db: Database, secret: str | None) -> Principal:
    """The principal for a presented key, or ``Unauthenticated`` (missing, unknown, revoked)."""
    if not secret:
        raise Unauthenticated("missing API key", code="missing_api_key")
    if len(secret) > MAX_KEY_LENGTH:
        raise Unauthenticated("invalid API key")
    digest = hash_secret(secret)
    key = await db.read_now(
        lambda session: session.scalar(select(ApiKey).where(ApiKey.secret_hash == digest))
    )
    if (
        key is None
        or not hmac.compare_digest(key.secret_hash, digest)
        or key.revoked_at is not None
    ):
        raise Unauthenticated("invalid API key")
    await _touch(db, key)
    return principal_of(key)


async def _touch(db: Database, key: ApiKey) -> None:
    """Coarse on purpose: one ``last_used_at`` write per key per minute and process, not one per
    request. The in-process mark is set before the write, so the requests that arrive while it
    waits for the writer skip it (a thousand streams opened at once queued a thousand writes)."""
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at <= LAST_USED_RESOLUTION:
        return
    touched = _TOUCHED.get(key.id)
    if touched is not None and now - touched <= LAST_USED_RESOLUTION:
        return
    if len(_TOUCHED) >= _TOUCHED_MAX:
        _TOUCHED.pop(next(iter(_TOUCHED)))
    _TOUCHED[key.id] = now
    try:
        async with db.write() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
            )
    except BaseException:
        if _TOUCHED.get(key.id) == now:  # not written: the next request tries again
            del _TOUCHED[key.id]
        raise


async def ensure_env_key(db: Database, *, workspace_id: uuid.UUID, secret: str) -> ApiKey:
    """Make ``secret`` (CHATWELL_ADMIN_KEY) the workspace's env owner key; revoke older env keys."""
    if len(secret) < 8:
        raise InvalidRequest("CHATWELL_ADMIN_KEY must be at least 8 characters")
    digest = hash_secret(secret)
    async with db.write() as session:
        existing = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == digest))
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.workspace_id == workspace_id,
                ApiKey.origin == "env",
                ApiKey.secret_hash != digest,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        if existing is not None:
            if existing.workspace_id != workspace_id:
                raise InvalidRequest("CHATWELL_ADMIN_KEY is already a key of another workspace")
            existing.revoked_at = None
            existing.is_owner = True
            existing.bot_id = None
            existing.scopes = []
            return existing
        key = ApiKey(
            workspace_id=workspace_id,
            label="admin (CHATWELL_ADMIN_KEY)",
            prefix=display_prefix(secret),
            secret_hash=digest,
            is_owner=True,
            origin="env",
            allowed_origins=[],
            scopes=[],
        )
        session.add(key)
        return key
