"""Looking after dashboard accounts once they exist: an owner changes a member's role or removes
them; anyone changes their own password and ends their other sessions; an operator resets a
forgotten password from the command line.

A workspace always keeps at least one owner. Removing a member, changing a password and resetting
one end the sessions concerned at once (they are rows in ``dashboard_sessions``; a cookie whose
row is gone signs nobody in).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select

from chatwell.errors import Conflict, Forbidden, InvalidRequest, NotFound
from chatwell.services.accounts import (
    ROLES,
    SignedIn,
    check_password,
    hash_password,
    normalise_email,
    verify_password,
)
from chatwell.storage.database import Database
from chatwell.storage.tables import DashboardSession, Membership, User, UserPresence, utcnow


def _owner(by: SignedIn) -> None:
    if by.role != "owner":
        raise Forbidden("only owners manage members", code="insufficient_role")


def _member_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound("member not found", code="member_not_found") from None


async def _owners(session: object, workspace_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(  # type: ignore[attr-defined]
                Membership.workspace_id == workspace_id, Membership.role == "owner"
            )
        )
        or 0
    )


async def change_role(db: Database, *, by: SignedIn, user_id: str, role: str) -> None:
    _owner(by)
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    async with db.write() as session:
        member = await session.get(Membership, (by.workspace_id, _member_id(user_id)))
        if member is None:
            raise NotFound("member not found", code="member_not_found")
        if (
            member.role == "owner"
            and role != "owner"
            and await _owners(session, by.workspace_id) <= 1
        ):
            raise Conflict(
                "a workspace needs an owner: make someone else owner first", code="last_owner"
            )
        member.role = role


async def remove_member(db: Database, *, by: SignedIn, user_id: str) -> None:
    """Take a member out of the workspace; their sessions in it end now. The account stays (it
    may belong to other workspaces)."""
    _owner(by)
    target = _member_id(user_id)
    async with db.write() as session:
        member = await session.get(Membership, (by.workspace_id, target))
        if member is None:
            raise NotFound("member not found", code="member_not_found")
        if member.role == "owner" and await _owners(session, by.workspace_id) <= 1:
            raise Conflict(
                "a workspace needs an owner: make someone else owner first", code="last_owner"
            )
        await session.delete(member)
        await session.execute(
            delete(DashboardSession).where(
                DashboardSession.user_id == target, DashboardSession.workspace_id == by.workspace_id
            )
        )
        await session.execute(
            delete(UserPresence).where(
                UserPresence.user_id == target, UserPresence.workspace_id == by.workspace_id
            )
        )


async def change_password(db: Database, *, user: SignedIn, current: str, new: str) -> None:
    """A signed-in user's new password; every other session of theirs ends."""
    async with db.read() as session:
        row = await session.get(User, user.user_id)
    if row is None or not await verify_password(row.password_hash, current):
        raise InvalidRequest("the current password is not right", code="invalid_credentials")
    password_hash = await hash_password(check_password(new))
    async with db.write() as session:
        stored = await session.get(User, user.user_id)
        if stored is None:
            raise NotFound("account not found", code="user_not_found")
        stored.password_hash = password_hash
        await session.execute(
            delete(DashboardSession).where(
                DashboardSession.user_id == user.user_id, DashboardSession.id != user.session_id
            )
        )


async def reset_password(db: Database, *, email: str, password: str) -> User:
    """The operator's reset (``chatwell reset-password``): a new password, every session ends."""
    address = normalise_email(email)
    password_hash = await hash_password(check_password(password))
    async with db.write() as session:
        user = await session.scalar(select(User).where(User.email == address))
        if user is None:
            raise NotFound("no account has this email address", code="user_not_found")
        user.password_hash = password_hash
        user.is_active = True
        await session.execute(delete(DashboardSession).where(DashboardSession.user_id == user.id))
    return user


@dataclass(frozen=True, slots=True)
class SessionView:
    """One signed-in browser, as its owner sees it (``ref`` names it in a revoke form)."""

    ref: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool


def _ref(session_id: str) -> str:
    return session_id[:16]  # a prefix of the stored hash: enough to name it, useless to sign in


async def list_sessions(db: Database, *, user: SignedIn) -> list[SessionView]:
    async with db.read() as session:
        rows = (
            await session.scalars(
                select(DashboardSession)
                .where(
                    DashboardSession.user_id == user.user_id, DashboardSession.expires_at > utcnow()
                )
                .order_by(DashboardSession.last_seen_at.desc())
            )
        ).all()
    return [
        SessionView(
            ref=_ref(r.id),
            created_at=r.created_at,
            last_seen_at=r.last_seen_at,
            expires_at=r.expires_at,
            current=r.id == user.session_id,
        )
        for r in rows
    ]


async def revoke_sessions(db: Database, *, user: SignedIn, ref: str | None) -> int:
    """End one of the user's other sessions (``ref``), or all the others (``None``)."""
    async with db.write() as session:
        rows = (
            await session.scalars(
                select(DashboardSession.id).where(
                    DashboardSession.user_id == user.user_id, DashboardSession.id != user.session_id
                )
            )
        ).all()
        doomed = [sid for sid in rows if ref is None or _ref(sid) == ref]
        if ref is not None and not doomed:
            raise NotFound("session not found", code="session_not_found")
        await session.execute(delete(DashboardSession).where(DashboardSession.id.in_(doomed)))
    return len(doomed)
