"""Signed webhooks: a bot's ``webhook_url`` hears about its events (``lead.created``).

Decisions:

- **Outbox.** :func:`enqueue` adds a ``WebhookDelivery`` row inside the caller's own transaction,
  so an event is queued exactly when the record it announces is committed. Nothing is sent on
  the request path; the :class:`WebhookWorker` (one per process, like the ingestion worker)
  claims due rows and POSTs them.
- **Claiming** pushes ``next_attempt_at`` forward by a lease and counts the attempt in the same
  write (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's one writer serialises), so processes
  sharing a database never send one delivery twice at once, and a delivery whose process died
  is taken up again when the lease ends.
- **Retries**: any failure but a refused target is retried after ``retry_delays`` (10 s, 1 min,
  5 min, 30 min, 2 h by default; injectable for tests), then the delivery is ``failed``.
  ``status`` goes ``pending`` → ``delivered`` | ``failed``; ``attempts``, ``response_status`` and
  ``last_error`` record the latest try. A receiver should dedupe on ``X-Chatwell-Delivery``.
- **Signature**: the body is sent exactly as signed. ``X-Chatwell-Signature: sha256=<hex>`` is
  HMAC-SHA256 with the bot's ``webhook_secret`` over ``f"{timestamp}.".encode() + body``, where
  ``timestamp`` is ``X-Chatwell-Timestamp`` (unix seconds, fresh on every attempt so receivers
  can refuse replays). A bot gets its secret together with its webhook (:func:`issue_secret`,
  shown once in the reply that set the URL), so no delivery goes out unsigned; a bot stored before
  that rule gets one at its next delivery (rotate it to see it).
- **SSRF**: every attempt resolves the host again and checks each address with the URL-source
  rules of ``ingestion.fetch`` (loopback, private, link-local, CGNAT... refused unless
  ``webhook_allow_private``; cloud metadata always), then connects to the checked address (the
  name stays in ``Host`` and TLS SNI), so DNS answers that change between check and connect are
  never used. A refused target fails at once, unsent. Redirects are not followed.
- The URL and the secret are read from the bot at send time (a rotated secret signs retries).
  Neither is ever logged or written to ``last_error``; the secret leaves the server only in the
  rotation reply (:func:`rotate_secret`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell import __version__
from chatwell.domain.auth import Principal
from chatwell.ingestion.fetch import FetchError, Resolver, check_url
from chatwell.services.pagination import Page, page_of, paginate
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, WebhookDelivery, utcnow
from chatwell.workers.polling import PollingWorker

log = logging.getLogger("chatwell.webhooks")

PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"

SIGNATURE_HEADER: Final = "X-Chatwell-Signature"
TIMESTAMP_HEADER: Final = "X-Chatwell-Timestamp"
EVENT_HEADER: Final = "X-Chatwell-Event"
DELIVERY_HEADER: Final = "X-Chatwell-Delivery"
USER_AGENT: Final = f"chatwell-webhooks/{__version__}"

DEFAULT_RETRY_DELAYS: Final[tuple[float, ...]] = (10.0, 60.0, 300.0, 1800.0, 7200.0)
DELIVERY_TIMEOUT_SECONDS: Final = 10.0
LEASE: Final = timedelta(seconds=60)  # well over one attempt's deadline
MAX_ADDRESSES_TRIED: Final = 3
SECRET_PREFIX: Final = "whsec_"


# ----------------------------------------------------------------------------- queue & secret


def enqueue(
    session: AsyncSession, *, bot: Bot, event: str, payload: dict[str, Any]
) -> WebhookDelivery | None:
    """Queue ``event`` for ``bot``'s webhook in the caller's transaction (None: the bot has none)."""
    if not bot.webhook_url:
        return None
    delivery = WebhookDelivery(
        workspace_id=bot.workspace_id,
        bot_id=bot.id,
        event=event,
        payload=payload,
        status=PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    return delivery


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def issue_secret(bot: Bot) -> str | None:
    """Give a bot that has a webhook but no signing secret one, in the caller's transaction, and
    return it (the caller shows it once); None when there is nothing to issue."""
    if not bot.webhook_url or bot.webhook_secret:
        return None
    bot.webhook_secret = new_secret()
    return bot.webhook_secret


async def rotate_secret(db: Database, *, bot_id: uuid.UUID) -> str:
    """Give the bot a new signing secret and return it, the only time it is shown (the caller
    has checked that it may manage the bot)."""
    secret = new_secret()
    async with db.write() as session:
        await session.execute(update(Bot).where(Bot.id == bot_id).values(webhook_secret=secret))
    return secret


async def list_deliveries(
    db: Database,
    *,
    principal: Principal,
    bot_id: uuid.UUID,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[WebhookDelivery]:
    """A page of a bot's delivery log, newest first."""
    query = select(WebhookDelivery).where(
        WebhookDelivery.workspace_id == principal.workspace_id, WebhookDelivery.bot_id == bot_id
    )
    async with db.read() as session:
        rows = list(
            (
                await session.scalars(
                    paginate(query, WebhookDelivery.id, limit=limit, cursor=cursor)
                )
            ).all()
        )
    return page_of(rows, limit, lambda d: d.id)


# ----------------------------------------------------------------------------- the wire format


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``f"{timestamp}."`` + body)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def delivery_headers(
    *, delivery_id: uuid.UUID, event: str, body: bytes, secret: str | None, timestamp: int
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return headers


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to; ``retry`` False with no delivery means failed for good."""

    delivered: bool
    response_status: int | None = None
    error: str | None = None
    retry: bool = True


class WebhookSender:
    """One SSRF-safe POST per call, to an address checked just before connecting."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
        resolver: Resolver | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.resolver = resolver
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:  # built on first use: loading the CA bundle costs ~50 ms
            self._client = httpx.AsyncClient(
                trust_env=False, follow_redirects=False, timeout=self.timeout
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._send(url, body, headers)
        except TimeoutError:
            return Outcome(False, error=f"the receiver did not answer within {self.timeout:g}s")

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            addresses = await check_url(
                url, allow_private=self.allow_private, resolver=self.resolver
            )
        except FetchError as exc:
            return self._refused(exc)
        target = httpx.URL(url)
        host = target.raw_host.decode("ascii")
        headers = {**headers, "Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        last_error: Exception | None = None
        for address in addresses[:MAX_ADDRESSES_TRIED]:
            pinned = target.copy_with(host=address, fragment=None)
            try:
                # The body is never read: a receiver's reply can not fill our memory.
                async with self._http().stream(
                    "POST", pinned, content=body, headers=headers, extensions=extensions
                ) as response:
                    status = response.status_code
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last_error = exc  # try the host's next checked address
                continue
            except httpx.TimeoutException:
                return Outcome(False, error=f"the receiver did not answer within {self.timeout:g}s")
            except httpx.HTTPError as exc:
                return Outcome(False, error=f"the request failed: {type(exc).__name__}")
            if 200 <= status < 300:
                return Outcome(True, response_status=status)
            return Outcome(
                False, response_status=status, error=f"the receiver answered HTTP {status}"
            )
        return Outcome(False, error=f"could not connect to {host}: {type(last_error).__name__}")

    def _refused(self, exc: FetchError) -> Outcome:
        if exc.code == "fetch_failed":  # the name did not resolve: perhaps later
            return Outcome(False, error=f"{exc.code}: {exc.message}")
        hint = ""
        if (
            exc.code == "blocked_address" and not self.allow_private
        ):  # the same for every refused kind
            hint = " (private addresses need CHATWELL_WEBHOOK_ALLOW_PRIVATE=true on the server)"
        return Outcome(
            False, error=f"refused, not sent ({exc.code}): {exc.message}{hint}", retry=False
        )


# ----------------------------------------------------------------------------- the worker


@dataclass(frozen=True, slots=True)
class _Job:
    id: uuid.UUID
    event: str
    payload: dict[str, Any]
    url: str | None
    secret: str | None


class WebhookWorker(PollingWorker):
    """The in-process delivery worker: claims due deliveries off the request path and sends them.

    ``retry_delays`` (seconds after the 1st, 2nd... failed attempt) and ``poll_seconds`` are
    injectable so tests retry in milliseconds; ``sender`` decides what may be reached.
    """

    def __init__(
        self,
        db: Database,
        *,
        sender: WebhookSender | None = None,
        allow_private: bool = False,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        concurrency: int = 4,
        poll_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.sender = sender or WebhookSender(allow_private=allow_private)
        self.retry_delays = tuple(retry_delays)
        super().__init__(concurrency=concurrency, poll_seconds=poll_seconds)

    async def stop(self) -> None:
        """Stop claiming; cancel sends in flight (their leases run out and they are sent again)."""
        await super().stop()
        await self.sender.aclose()

    async def claim(self) -> tuple[uuid.UUID | None, float]:
        delivery_id = await self.claim_next()
        return delivery_id, 0.0 if delivery_id is not None else await self._seconds_until_due()

    async def work(self, delivery_id: uuid.UUID) -> None:
        await self.deliver(delivery_id)

    async def nothing_pending(self) -> bool:
        """No delivery pending, scheduled retries included (with the default delays ``idle()``
        can wait hours: tests inject short ones)."""
        async with self.db.read() as session:
            found = await session.scalar(
                select(WebhookDelivery.id).where(WebhookDelivery.status == PENDING).limit(1)
            )
        return found is None

    async def claim_next(self) -> uuid.UUID | None:
        """Atomically take the delivery due longest ago, leasing it and counting the attempt."""
        now = utcnow()
        async with self.db.write() as session:
            candidate = (
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)
            )
            if self.db.is_postgres:
                candidate = candidate.with_for_update(skip_locked=True)
            delivery_id = await session.scalar(candidate)
            if delivery_id is None:
                return None
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(next_attempt_at=now + LEASE, attempts=WebhookDelivery.attempts + 1)
            )
            return delivery_id

    async def deliver(self, delivery_id: uuid.UUID) -> None:
        """Send one claimed delivery and record what came of it."""
        job = await self._load(delivery_id)
        if job is None:
            return
        if not job.url:
            outcome = Outcome(False, error="the bot has no webhook_url any more", retry=False)
        else:
            body = encode_body(job.payload)
            headers = delivery_headers(
                delivery_id=job.id,
                event=job.event,
                body=body,
                secret=job.secret,
                timestamp=int(time.time()),
            )
            outcome = await self.sender.send(job.url, body, headers)
        await self._record(delivery_id, outcome)

    async def _load(self, delivery_id: uuid.UUID) -> _Job | None:
        async with self.db.read() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            bot = await session.get(Bot, delivery.bot_id) if delivery is not None else None
        if delivery is None or bot is None or delivery.status != PENDING:
            return None
        secret = bot.webhook_secret
        if (
            bot.webhook_url and not secret
        ):  # a bot from before secrets came with webhooks: sign anyway
            async with self.db.write() as session:
                stored = await session.get(Bot, bot.id)
                if stored is not None:
                    issue_secret(stored)
                    secret = stored.webhook_secret
        return _Job(delivery.id, delivery.event, delivery.payload, bot.webhook_url, secret)

    async def _record(self, delivery_id: uuid.UUID, outcome: Outcome) -> None:
        now = utcnow()
        async with self.db.write() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != PENDING:
                return
            delivery.response_status = outcome.response_status
            delivery.last_error = outcome.error
            if outcome.delivered:
                delivery.status, delivery.next_attempt_at = DELIVERED, None
            elif outcome.retry and delivery.attempts <= len(self.retry_delays):
                delivery.next_attempt_at = now + timedelta(
                    seconds=self.retry_delays[delivery.attempts - 1]
                )
            else:
                delivery.status, delivery.next_attempt_at = FAILED, None
            attempts, status = delivery.attempts, delivery.status
        if outcome.delivered:
            log.info(
                "webhook delivery %s delivered (HTTP %s)", delivery_id, outcome.response_status
            )
        else:
            log.warning(
                "webhook delivery %s attempt %d failed (%s): %s",
                delivery_id,
                attempts,
                status,
                outcome.error,
            )

    async def _seconds_until_due(self) -> float:
        async with self.db.read() as session:
            due = await session.scalar(
                select(func.min(WebhookDelivery.next_attempt_at)).where(
                    WebhookDelivery.status == PENDING
                )
            )
        if due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.01, (due - utcnow()).total_seconds()))
