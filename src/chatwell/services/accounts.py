"""Dashboard accounts: the first owner's sign-up, sign-in and sign-out, members and their roles.

Passwords are hashed with argon2 (off the event loop). A session is a random cookie value of
which only the SHA-256 is stored; every sign-in makes a new one (no session fixation) and drops
the browser's previous one. Failed sign-ins are counted per account *and client IP* with a
backoff (:data:`LOGIN_BACKOFF`: after 5 failures a minute's wait, after 10 ten minutes, then an
hour, then a day), and per client IP across accounts (:data:`LOGIN_CLIENT_LIMITS`, against password
spraying); a throttled attempt is refused (429) before the password is looked at, and a successful
sign-in ends its backoff. No count is per account alone: a stranger failing on someone's address
from elsewhere throttles only themselves, never the real user.
Unknown emails cost one argon2 verification like known ones, so timing does not tell them apart.

Roles: ``owner`` (everything, including members), ``admin`` (bots, sources, keys, data) and
``agent`` (inbox and conversations only). Nothing here knows about HTTP, cookies or forms.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select

from chatwell.domain.auth import Principal
from chatwell.errors import Conflict, Forbidden, InvalidRequest, RateLimited, Unauthenticated
from chatwell.limits.service import RateLimiter, Rule, parse_limits, rules_of
from chatwell.services import workspaces
from chatwell.storage.database import Database
from chatwell.storage.tables import DashboardSession, Membership, User, Workspace, utcnow

ROLES = ("owner", "admin", "agent")
MANAGING_ROLES = ("owner", "admin")
SESSION_LIFETIME = timedelta(days=14)
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
LOGIN_BACKOFF = "5/minute;10/10 minutes;20/hour;40/day"  # per account and client IP
LOGIN_CLIENT_LIMITS = "30/minute;200/hour"  # per client IP, whatever the account
MIN_PASSWORD = 8
MAX_PASSWORD = 256
LOGIN_THROTTLED = "Too many failed sign-ins from here. Wait before trying again."

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both cases cost one argon2 verification."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live dashboard session: who, in which workspace, with which role, and its CSRF token."""

    session_id: str
    user_id: uuid.UUID
    email: str
    name: str | None
    workspace_id: uuid.UUID
    workspace_name: str
    role: str
    csrf_token: str

    @property
    def can_manage(self) -> bool:
        """Owners and admins manage bots, sources, keys and settings; agents do not."""
        return self.role in MANAGING_ROLES

    @property
    def principal(self) -> Principal:
        """The principal services see. Every role reaches the whole workspace's data it may read;
        what an agent may not change is refused by the door before any service is called."""
        return Principal(
            key_id=self.user_id,
            workspace_id=self.workspace_id,
            bot_id=None,
            is_owner=self.role == "owner",
            label=self.name or self.email,
            prefix="user",
        )


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie: str  # the only copy of the secret: it goes to the browser
    signed_in: SignedIn


def session_key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or len(value) > 320 or any(c.isspace() for c in value):
        raise InvalidRequest("enter a valid email address", code="invalid_email")
    return value


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(
            f"the password needs at least {MIN_PASSWORD} characters", code="weak_password"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(
            f"the password may have at most {MAX_PASSWORD} characters", code="invalid_password"
        )
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def run() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(run)


async def needs_setup(db: Database) -> bool:
    """True while no user exists: the first visitor may create the owner account."""
    async with db.read() as session:
        return not await session.scalar(select(func.count()).select_from(User))


async def sign_up_first_owner(
    db: Database, *, email: str, password: str, name: str | None = None
) -> NewSession:
    """Create the first user as owner of the default workspace and sign them in.

    Refused (``setup_done``) once any user exists, also when two browsers race for it."""
    email = normalise_email(email)
    password_hash = await hash_password(check_password(password))
    workspace = await workspaces.get_default_workspace(db)
    if workspace is None:
        raise Conflict("the server has no default workspace yet", code="no_default_workspace")
    async with db.write() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            raise Forbidden("this server already has an owner; sign in instead", code="setup_done")
        user = User(
            email=email,
            name=(name or "").strip() or None,
            password_hash=password_hash,
            is_active=True,
            last_login_at=utcnow(),
        )
        session.add(user)
        await session.flush()
        session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
    return await _open_session(db, user, workspace.id, replacing=None)


def _backoff_rules(backoff: str, client_ip: str, email: str) -> list[Rule]:
    return rules_of(parse_limits(backoff), "login", email, client_ip)


async def sign_in(
    db: Database,
    limiter: RateLimiter,
    *,
    email: str,
    password: str,
    client_ip: str,
    replacing: str | None = None,
    backoff: str = LOGIN_BACKOFF,
    client_limits: str = LOGIN_CLIENT_LIMITS,
) -> NewSession:
    """A new session for a correct email and password, else ``Unauthenticated``
    (``invalid_credentials``, the same for an unknown email and a wrong password) or ``RateLimited``.

    ``replacing`` is the browser's current cookie, if any: that session ends here."""
    address = email.strip().lower()[:320]
    backoff_rules = _backoff_rules(backoff, client_ip, address)
    rules = backoff_rules + rules_of(parse_limits(client_limits), "login-ip", client_ip)
    await limiter.refuse_if_full(rules, message=LOGIN_THROTTLED)
    async with db.read() as session:
        user = await session.scalar(select(User).where(User.email == address))
    ok = await _verify(
        user.password_hash if user is not None else _dummy_hash(), password[:MAX_PASSWORD]
    )
    membership = await _first_membership(db, user.id) if ok and user is not None else None
    if user is None or not ok or not user.is_active or membership is None:
        try:
            await limiter.admit(rules, message=LOGIN_THROTTLED)
        except RateLimited:
            pass  # this failure filled the window: the next attempt is refused
        raise Unauthenticated("wrong email or password", code="invalid_credentials")
    await limiter.clear(backoff_rules)  # the right password: this client's backoff for it ends
    rehashed = (
        await hash_password(password) if _hasher.check_needs_rehash(user.password_hash) else None
    )
    async with db.write() as session:
        stored = await session.get(User, user.id)
        if stored is not None:
            stored.last_login_at = utcnow()
            if rehashed is not None:
                stored.password_hash = rehashed
    return await _open_session(db, user, membership.workspace_id, replacing=replacing)


async def _first_membership(db: Database, user_id: uuid.UUID) -> Membership | None:
    async with db.read() as session:
        return await session.scalar(
            select(Membership)
            .join(Workspace, Workspace.id == Membership.workspace_id)
            .where(Membership.user_id == user_id)
            .order_by(Workspace.is_default.desc(), Membership.created_at)
            .limit(1)
        )


async def _open_session(
    db: Database, user: User, workspace_id: uuid.UUID, *, replacing: str | None
) -> NewSession:
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    row = DashboardSession(
        id=session_key(cookie),
        user_id=user.id,
        workspace_id=workspace_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    async with db.write() as session:
        if replacing:
            await session.execute(
                delete(DashboardSession).where(DashboardSession.id == session_key(replacing))
            )
        session.add(row)
    signed_in = await resolve_session(db, cookie)
    assert signed_in is not None
    return NewSession(cookie=cookie, signed_in=signed_in)


async def sign_out(db: Database, *, cookie: str | None) -> None:
    if not cookie:
        return
    async with db.write() as session:
        await session.execute(
            delete(DashboardSession).where(DashboardSession.id == session_key(cookie))
        )


async def resolve_session(db: Database, cookie: str | None) -> SignedIn | None:
    """The signed-in user behind a cookie, with their current role; None when expired, unknown,
    deactivated or no longer a member of the session's workspace."""
    if not cookie or len(cookie) > 200:
        return None
    key = session_key(cookie)
    async with db.read() as session:
        row = await session.get(DashboardSession, key)
        if row is None:
            return None
        found = (
            await session.execute(
                select(User, Membership, Workspace)
                .join(Membership, Membership.user_id == User.id)
                .join(Workspace, Workspace.id == Membership.workspace_id)
                .where(User.id == row.user_id, Membership.workspace_id == row.workspace_id)
            )
        ).first()
    now = utcnow()
    if row.expires_at <= now or found is None or not found[0].is_active:
        return None
    user, membership, workspace = found
    if now - row.last_seen_at > LAST_SEEN_RESOLUTION:
        async with db.write() as session:
            stored = await session.get(DashboardSession, key)
            if stored is not None:
                stored.last_seen_at = now
    return SignedIn(
        session_id=key,
        user_id=user.id,
        email=user.email,
        name=user.name,
        workspace_id=workspace.id,
        workspace_name=workspace.name,
        role=membership.role,
        csrf_token=row.csrf_token,
    )


async def add_member(
    db: Database, *, by: SignedIn, email: str, role: str, password: str, name: str | None = None
) -> User:
    """Add a user to the inviter's workspace with ``role`` (owners only). A new address gets an
    account with the initial password the owner hands over; an existing account just joins."""
    if by.role != "owner":
        raise Forbidden("only owners manage members", code="insufficient_role")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    email = normalise_email(email)
    async with db.read() as session:
        user = await session.scalar(select(User).where(User.email == email))
    password_hash = None if user is not None else await hash_password(check_password(password))
    async with db.write() as session:
        if user is None:
            user = User(
                email=email,
                name=(name or "").strip() or None,
                password_hash=password_hash,
                is_active=True,
            )
            session.add(user)
            await session.flush()
        elif await session.get(Membership, (by.workspace_id, user.id)) is not None:
            raise Conflict("this user is already a member", code="already_member")
        session.add(Membership(workspace_id=by.workspace_id, user_id=user.id, role=role))
    return user


async def list_members(db: Database, *, workspace_id: uuid.UUID) -> list[tuple[User, str]]:
    async with db.read() as session:
        rows = await session.execute(
            select(User, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == workspace_id)
            .order_by(Membership.created_at)
        )
        return [(user, role) for user, role in rows.all()]


async def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash (in a thread: argon2 is slow on purpose)."""
    return await _verify(password_hash, password)
