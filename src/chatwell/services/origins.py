"""Origins: matching an ``Origin`` header against allowed lists, and the origins any bot or key
names (what a CORS preflight, which carries neither key nor bot, can be checked against)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from chatwell.storage.database import Database
from chatwell.storage.tables import ApiKey, Bot


def origin_matches(origin: str, allowed: Iterable[str]) -> bool:
    """Does ``origin`` match an entry, exactly or by a ``*.example.com`` wildcard, with or without
    scheme? ``*`` matches any origin."""
    origin = origin.lower().rstrip("/")
    host = origin.split("://", 1)[-1]
    for entry in allowed:
        entry = entry.lower().rstrip("/")
        if entry == "*" or entry == origin or entry == host:
            return True
        if "*." in entry:
            scheme, _, pattern = entry.rpartition("*.")
            if scheme and not origin.startswith(scheme):
                continue
            if host.endswith("." + pattern):
                return True
    return False


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """No list or no Origin header (a server-to-server call) passes; otherwise it must match."""
    allowed = tuple(allowed)
    if not allowed or not origin:
        return True
    return origin_matches(origin, allowed)


async def known_origins(db: Database) -> set[str]:
    """Every origin named by a bot or a live key."""
    async with db.read() as session:
        found: set[str] = set()
        for origins in await session.scalars(select(Bot.allowed_origins)):
            found.update(origins or ())
        for origins in await session.scalars(
            select(ApiKey.allowed_origins).where(ApiKey.revoked_at.is_(None))
        ):
            found.update(origins or ())
    return found
