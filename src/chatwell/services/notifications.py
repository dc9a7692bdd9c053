"""Email notifications to a bot's team: a new lead (with the conversation so far), a visitor asking
for a person while nobody is online, and a handoff nobody answered in time.

Decisions:

- **Outbox**, as for webhooks: ``enqueue_*`` adds an ``EmailNotification`` row in the caller's own
  transaction, so an email is queued exactly when what it tells about is committed; nothing is
  sent on the request path. The :class:`EmailWorker` claims due rows and sends them over SMTP.
- **Who and when** is per bot (``HandoffSettings.notify_emails`` and the ``email_on_*`` switches,
  set on the bot's Settings page); **how** is the server's (``CHATWELL_SMTP_*``). Without an SMTP
  host the worker marks what was queued ``failed`` at once, saying so (the Settings page warns).
- **Missed handoffs** are found by the worker itself now and then (a handoff pending longer than
  ``missed_after``); ``dedupe_key`` makes it one email per handoff however often it is seen.
- **Retries**: a failed send is tried again after ``retry_delays`` (1 min, 5 min, 30 min, 2 h by
  default; injectable for tests), then the row is ``failed``. A claim leases the row, so processes
  sharing a database never send one email twice at once.
- **Secrets**: the SMTP password is read from the settings at send time and never logged or
  written to ``last_error`` (which keeps the exception type and the server's reply code only).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatwell.domain.models import ConversationStatus, HandoffSettings
from chatwell.storage.database import Database
from chatwell.storage.tables import (
    Bot,
    Conversation,
    EmailNotification,
    Lead,
    Message,
    utcnow,
)
from chatwell.workers.polling import PollingWorker

log = logging.getLogger("chatwell.email")

PENDING, SENT, FAILED = "pending", "sent", "failed"
LEASE = timedelta(minutes=2)
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (60.0, 300.0, 1800.0, 7200.0)
NOT_CONFIGURED = "this server has no SMTP settings (CHATWELL_SMTP_HOST)"
TRANSCRIPT_MESSAGES = 50  # the latest messages of a conversation an email quotes
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password: str | None = None
    sender: str = "chatwell@localhost"
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings: object) -> SmtpConfig | None:
        host = getattr(settings, "smtp_host", None)
        if not host:
            return None
        password = getattr(settings, "smtp_password", None)
        return cls(
            host=host,
            port=settings.smtp_port,  # type: ignore[attr-defined]
            security=settings.smtp_security,  # type: ignore[attr-defined]
            username=settings.smtp_username,  # type: ignore[attr-defined]
            password=password.get_secret_value() if password is not None else None,
            sender=settings.smtp_from,  # type: ignore[attr-defined]
        )

    def __repr__(self) -> str:  # never show the password, even in a traceback's locals
        return f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r})"


# Links in a queued email name this base; the worker puts the server's public URL in its place
# at send time (``CHATWELL_PUBLIC_URL``), or "(dashboard)" when it has none.
LINK_BASE = "⟦chatwell⟧"


def _link(path: str) -> str:
    return LINK_BASE + path


def _recipients(bot: Bot, switch: str) -> list[str]:
    settings = HandoffSettings.model_validate(bot.handoff_settings or {})
    if not settings.notify_emails or not getattr(settings, switch):
        return []
    return list(dict.fromkeys(settings.notify_emails))


async def _transcript(session: AsyncSession, conversation_id: uuid.UUID | None) -> str:
    if conversation_id is None:
        return "(no conversation)"
    rows = (
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(TRANSCRIPT_MESSAGES)
        )
    ).all()
    lines = []
    for message in reversed(rows):
        text = (message.content or "").strip()
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + " …"
        who = {"user": "Visitor", "assistant": "Bot", "agent": "Agent"}.get(
            message.role, message.role.capitalize()
        )
        lines.append(f"{who} ({message.created_at:%Y-%m-%d %H:%M} UTC):\n{text}\n")
    return "\n".join(lines) or "(no messages yet)"


def _queue(
    session: AsyncSession,
    bot: Bot,
    *,
    event: str,
    recipients: list[str],
    subject: str,
    body: str,
    dedupe_key: str | None = None,
) -> EmailNotification:
    row = EmailNotification(
        workspace_id=bot.workspace_id,
        bot_id=bot.id,
        event=event,
        dedupe_key=dedupe_key,
        recipients=recipients,
        subject=subject[:300],
        body=body,
        status=PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    return row


async def _queue_once(session: AsyncSession, bot: Bot, *, dedupe_key: str, **email: Any) -> bool:
    """Queue an email unless one with ``dedupe_key`` exists, also when another transaction queues
    it at the same moment (two "ask for a person" clicks): the loser's insert is rolled back to a
    savepoint instead of failing the caller's transaction."""
    if await session.scalar(
        select(EmailNotification.id).where(EmailNotification.dedupe_key == dedupe_key)
    ):
        return False
    try:
        async with session.begin_nested():
            _queue(session, bot, dedupe_key=dedupe_key, **email)
    except IntegrityError:
        return False
    return True


async def enqueue_lead(session: AsyncSession, *, bot: Bot, lead: Lead) -> None:
    """A visitor left contact details: the lead and the conversation so far go to the team."""
    recipients = _recipients(bot, "email_on_lead")
    if not recipients:
        return
    who = lead.name or lead.email or lead.phone or "a visitor"
    details = [
        f"{label}: {value}"
        for label, value in (("Name", lead.name), ("Email", lead.email), ("Phone", lead.phone))
        if value
    ]
    details += [f"{name}: {value}" for name, value in (lead.fields or {}).items() if value]
    where = (
        _link(f"/dashboard/conversations/{lead.conversation_id}")
        if lead.conversation_id
        else _link("/dashboard/leads")
    )
    body = (
        f"{who} left contact details with {bot.name}.\n\n"
        + "\n".join(details)
        + f"\n\nOpen it: {where}\n\nThe conversation so far:\n\n"
        + await _transcript(session, lead.conversation_id)
    )
    _queue(
        session,
        bot,
        event="lead.created",
        recipients=recipients,
        subject=f"[{bot.name}] New lead: {who}",
        body=body,
    )


async def enqueue_offline_request(
    session: AsyncSession, *, bot: Bot, conversation: Conversation
) -> None:
    """A visitor asked for a person while no agent was online (once per conversation)."""
    recipients = _recipients(bot, "email_on_offline_request")
    if not recipients:
        return
    body = (
        f"A visitor of {bot.name} asked for a person while nobody was online.\n\n"
        f"Open it: {_link(f'/dashboard/conversations/{conversation.id}')}\n\n"
        "The conversation so far:\n\n" + await _transcript(session, conversation.id)
    )
    await _queue_once(
        session,
        bot,
        event="handoff.offline",
        recipients=recipients,
        subject=f"[{bot.name}] A visitor asked for a person (nobody was online)",
        body=body,
        dedupe_key=f"offline:{conversation.id}",
    )


async def queue_missed_handoffs(db: Database, *, missed_after: timedelta) -> int:
    """Queue one email per handoff waiting longer than ``missed_after`` for a first agent reply."""
    queued = 0
    cutoff = utcnow() - missed_after
    waiting_query = (
        select(Conversation, Bot)
        .join(Bot, Bot.id == Conversation.bot_id)
        .where(
            Conversation.status == ConversationStatus.PENDING_HUMAN,
            Conversation.updated_at <= cutoff,
        )
        .limit(200)
    )
    async with db.read() as session:  # most of the time there is nothing: no write then
        if (await session.execute(waiting_query)).first() is None:
            return 0
    async with db.write() as session:
        for conversation, bot in (await session.execute(waiting_query)).all():
            recipients = _recipients(bot, "email_on_missed")
            key = f"missed:{conversation.id}:{conversation.updated_at:%Y%m%d%H%M%S}"
            if not recipients or await session.scalar(
                select(EmailNotification.id).where(EmailNotification.dedupe_key == key)
            ):
                continue  # checked before the transcript is read; _queue_once checks again
            minutes = int((utcnow() - conversation.updated_at).total_seconds() // 60)
            body = (
                f"A visitor of {bot.name} has been waiting {minutes} minutes for a person and "
                "nobody has answered yet.\n\n"
                f"Answer: {_link(f'/dashboard/conversations/{conversation.id}')}\n\n"
                "The conversation so far:\n\n" + await _transcript(session, conversation.id)
            )
            queued += await _queue_once(
                session,
                bot,
                event="handoff.missed",
                recipients=recipients,
                subject=f"[{bot.name}] Missed handoff: a visitor is still waiting",
                body=body,
                dedupe_key=key,
            )
    return queued


# ----------------------------------------------------------------------------- sending


def _send(config: SmtpConfig, message: EmailMessage) -> None:
    """One SMTP session (blocking; run in a thread)."""
    if config.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with client:
        if config.security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if config.username:
            client.login(config.username, config.password or "")
        client.send_message(message)


def _reason(exc: Exception) -> str:
    """What went wrong, without anything that could hold a secret: the exception's type and the
    server's reply code."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}" + (f" (SMTP {code})" if code else "")


class EmailWorker(PollingWorker):
    """Sends queued notification emails off the request path, and now and then queues the missed
    handoffs' emails. ``retry_delays`` and ``poll_seconds`` are injectable so tests retry fast."""

    name = "email-worker"

    def __init__(
        self,
        db: Database,
        config: SmtpConfig | None,
        *,
        missed_after: timedelta,
        public_url: str | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        poll_seconds: float = 30.0,
        concurrency: int = 2,
    ) -> None:
        super().__init__(concurrency=concurrency, poll_seconds=poll_seconds)
        self.db = db
        self.config = config
        self.public_url = public_url.rstrip("/") if public_url else None
        self.missed_after = missed_after
        self.retry_delays = tuple(retry_delays)
        self.next_missed_check = 0.0  # monotonic time of the next look for missed handoffs

    async def claim(self) -> tuple[uuid.UUID | None, float]:
        if time.monotonic() >= self.next_missed_check:
            self.next_missed_check = time.monotonic() + self.poll_seconds
            try:
                await queue_missed_handoffs(self.db, missed_after=self.missed_after)
            except Exception as exc:  # a missed-handoff check must not stop the sending
                log.warning("could not look for missed handoffs (%s)", type(exc).__name__)
        now = utcnow()
        async with self.db.write() as session:
            candidate = (
                select(EmailNotification.id)
                .where(
                    EmailNotification.status == PENDING, EmailNotification.next_attempt_at <= now
                )
                .order_by(EmailNotification.next_attempt_at, EmailNotification.id)
                .limit(1)
            )
            if self.db.is_postgres:
                candidate = candidate.with_for_update(skip_locked=True)
            email_id = await session.scalar(candidate)
            if email_id is not None:
                await session.execute(
                    update(EmailNotification)
                    .where(EmailNotification.id == email_id)
                    .values(next_attempt_at=now + LEASE, attempts=EmailNotification.attempts + 1)
                )
                return email_id, 0.0
            due = await session.scalar(
                select(func.min(EmailNotification.next_attempt_at)).where(
                    EmailNotification.status == PENDING
                )
            )
        wait = self.poll_seconds
        if due is not None:
            wait = min(wait, max(0.01, (due - now).total_seconds()))
        return None, wait

    async def nothing_pending(self) -> bool:
        async with self.db.read() as session:
            found = await session.scalar(
                select(EmailNotification.id).where(EmailNotification.status == PENDING).limit(1)
            )
        return found is None

    async def work(self, email_id: uuid.UUID) -> None:
        async with self.db.read() as session:
            row = await session.get(EmailNotification, email_id)
        if row is None or row.status != PENDING:
            return
        if self.config is None:
            await self._record(email_id, NOT_CONFIGURED, retry=False)
            return
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = ", ".join(row.recipients)
        message["Subject"] = row.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(row.body.replace(LINK_BASE, self.public_url or "(dashboard)"))
        error: str | None = None
        try:
            await asyncio.to_thread(_send, self.config, message)
        except (OSError, smtplib.SMTPException) as exc:
            error = _reason(exc)
        await self._record(email_id, error)

    async def _record(self, email_id: uuid.UUID, error: str | None, *, retry: bool = True) -> None:
        now = utcnow()
        async with self.db.write() as session:
            row = await session.get(EmailNotification, email_id)
            if row is None or row.status != PENDING:
                return
            row.last_error = error
            if error is None:
                row.status, row.sent_at, row.next_attempt_at = SENT, now, None
            elif retry and row.attempts <= len(self.retry_delays):
                row.next_attempt_at = now + timedelta(seconds=self.retry_delays[row.attempts - 1])
            else:
                row.status, row.next_attempt_at = FAILED, None
            attempts, status, event = row.attempts, row.status, row.event
        if error is None:
            log.info("email %s (%s) sent", email_id, event)
        else:
            log.warning(
                "email %s (%s) attempt %d failed (%s): %s", email_id, event, attempts, status, error
            )
