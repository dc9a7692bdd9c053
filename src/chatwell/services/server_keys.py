"""The server's own HMAC key and what it proves: who may create the first owner account, and that
a pre-session form came from a page this server served.

- :func:`server_key` — 32 random bytes made once per database (``server_secrets``), so every
  process and every restart agrees on it. Only the operator, who holds the database, can read it.
- :func:`setup_token` — an HMAC of the key: printed at start while no account exists and by
  ``chatwell setup-token``. Set-up (``/dashboard/setup``) needs it or an owner key of the default
  workspace (``CHATWELL_ADMIN_KEY``, or the key printed at first start): whoever merely reaches the
  page first no longer owns the server. It is single-use by nature: set-up closes once an owner exists.
- :func:`pre_session_token` — the sign-in and set-up forms' CSRF token: an HMAC of the random value
  of the browser's pre-session cookie. A value an attacker tossed into a victim's cookie jar is not
  a token; forging one needs the key.

Nothing here knows about HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from chatwell.errors import Unauthenticated
from chatwell.services import keys, workspaces
from chatwell.storage.database import Database
from chatwell.storage.tables import ServerSecret

DASHBOARD_KEY = "dashboard_hmac"


async def server_key(db: Database) -> bytes:
    """The database's dashboard HMAC key, made on first use (two processes racing agree on one)."""
    async with db.read() as session:
        row = await session.get(ServerSecret, DASHBOARD_KEY)
    if row is None:
        try:
            async with db.write() as session:
                session.add(ServerSecret(name=DASHBOARD_KEY, value=secrets.token_urlsafe(32)))
        except IntegrityError:
            pass  # another process made it first: use theirs
        async with db.read() as session:
            row = await session.scalar(
                select(ServerSecret).where(ServerSecret.name == DASHBOARD_KEY)
            )
    assert row is not None
    return row.value.encode()


def _mac(key: bytes, purpose: str, value: str = "") -> str:
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def setup_token(key: bytes) -> str:
    """The set-up token (``cwsetup_`` and 24 characters) of the server whose key is ``key``."""
    return "cwsetup_" + _mac(key, "setup-token")[:24]


async def is_setup_proof(db: Database, key: bytes, proof: str) -> bool:
    """Whether ``proof`` is the set-up token or an owner key of the default workspace."""
    proof = proof.strip()
    if not proof:
        return False
    if hmac.compare_digest(proof.encode(), setup_token(key).encode()):
        return True
    try:
        principal = await keys.authenticate(db, proof)
    except Unauthenticated:
        return False
    workspace = await workspaces.get_default_workspace(db)
    return (
        workspace is not None
        and principal.workspace_id == workspace.id
        and principal.is_owner
        and principal.bot_id is None
    )


def pre_session_token(key: bytes, nonce: str) -> str:
    """The form token that goes with a pre-session cookie holding ``nonce``."""
    return _mac(key, "pre-session", nonce)


def is_pre_session_token(key: bytes, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token:
        return False
    return hmac.compare_digest(pre_session_token(key, nonce).encode(), str(token).encode())
