"""Email notifications (issue 23 item 4) against a real SMTP server started in-process (aiosmtpd,
with AUTH): a new lead mails the team with the conversation so far (a temporary SMTP failure is
retried), a visitor asking for a person while nobody is online mails the transcript once, a
handoff nobody answered is mailed once by the worker's own check, and the SMTP password appears
in no log line and no stored error. Without SMTP settings the email is marked failed, saying why."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from chatwell.services.notifications import NOT_CONFIGURED
from chatwell.settings import Settings
from chatwell.storage.tables import Conversation, EmailNotification, utcnow
from tests.helpers import make_bot, make_key

PASSWORD = "smtp-pa55word-never-logged"
TEAM = ["team@example.com", "owner@example.com"]
CONTACT_FORM = {
    "enabled": True,
    "fields": [
        {"name": "name", "label": "Name", "type": "text", "required": True},
        {"name": "email", "label": "Email", "type": "email", "required": True},
    ],
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """An SMTP server on 127.0.0.1 that wants a login and can refuse the next N messages (451)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[list[str]] = []
        self.refuse_next = 0
        self.logins: list[str] = []
        self.arrived = threading.Event()
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if box.refuse_next:
                    box.refuse_next -= 1
                    return "451 4.3.0 Try again later"
                box.envelopes.append(list(envelope.rcpt_tos))
                box.messages.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                box.arrived.set()
                return "250 OK"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth: Any
        ) -> Any:
            ok = auth.login == b"mailer" and auth.password == PASSWORD.encode()
            box.logins.append(auth.login.decode())
            return AuthResult(success=ok)

        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=_free_port(),
            authenticator=authenticate,
            auth_require_tls=False,
            auth_required=False,  # (True warns without TLS) the client logs in all the same
        )

    def start(self) -> None:
        self.controller.start()

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mailbox: Mailbox) -> Settings:
    return make_settings(
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_security="none",
        smtp_username="mailer",
        smtp_password=PASSWORD,
        smtp_from="bot@shop.example",
        public_url="https://chat.shop.example/",
    )


async def _settle(app: FastAPI) -> None:
    worker = app.state.runtime.emails
    worker.retry_delays = (0.05, 0.05, 0.05)
    worker.next_missed_check = 0.0
    await asyncio.wait_for(worker.idle(), 30)


async def _rows(app: FastAPI) -> list[EmailNotification]:
    async with app.state.runtime.db.read() as session:
        return list(
            (
                await session.scalars(
                    select(EmailNotification).order_by(EmailNotification.created_at)
                )
            ).all()
        )


async def _chat(anon: httpx.AsyncClient, bot: dict[str, Any], text: str, session: str) -> str:
    response = await anon.post(
        "/v1/public/chat/stream",
        json={"bot_id": bot["id"], "message": text, "session_id": session},
    )
    assert response.status_code == 200, response.text
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    return next(e["conversation_id"] for e in events if e.get("conversation_id"))


async def test_new_lead_mails_the_team_with_the_transcript_and_retries(
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    app: FastAPI,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await make_bot(
        client,
        name="Lantern Shop",
        public=True,
        contact_form=CONTACT_FORM,
        handoff={"notify_emails": TEAM, "email_on_offline_request": False},
    )
    cid = await _chat(anon_client, bot, "Do you repair brass lanterns?", "visitor-1")
    mailbox.refuse_next = 1  # the first attempt meets a temporary failure
    lead = await anon_client.post(
        "/v1/public/leads",
        json={
            "bot_id": bot["id"],
            "session_id": "visitor-1",
            "conversation_id": cid,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
        },
    )
    assert lead.status_code in (200, 201), lead.text
    await _settle(app)

    assert len(mailbox.messages) == 1, mailbox.messages
    message = mailbox.messages[0]
    assert sorted(mailbox.envelopes[0]) == sorted(TEAM)
    assert message["From"] == "bot@shop.example"
    assert message["Subject"] == "[Lantern Shop] New lead: Ada Lovelace"
    body = message.get_content()
    assert "Email: ada@example.com" in body and "Name: Ada Lovelace" in body
    assert "Visitor (" in body and "Do you repair brass lanterns?" in body  # the transcript
    assert f"https://chat.shop.example/dashboard/conversations/{cid}" in body
    (row,) = await _rows(app)
    assert (row.event, row.status, row.attempts) == ("lead.created", "sent", 2)
    assert row.last_error is None and row.sent_at is not None
    assert "mailer" in mailbox.logins
    # The password is in no log line and no stored error (the failed attempt logged its reason).
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "attempt 1 failed" in logged and "SMTP 451" in logged
    assert PASSWORD not in logged and PASSWORD not in repr(app.state.runtime.emails.config)


async def test_offline_request_and_missed_handoff(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, app: FastAPI, mailbox: Mailbox
) -> None:
    bot = await make_bot(
        client,
        name="Lantern Shop",
        public=True,
        handoff={"enabled": True, "notify_emails": TEAM[:1], "email_on_lead": False},
    )
    cid = await _chat(anon_client, bot, "My lantern arrived broken", "visitor-1")
    for _ in range(2):  # asked twice while nobody is online: one email
        asked = await anon_client.post(
            f"/v1/public/conversations/{cid}/handoff", json={"session_id": "visitor-1"}
        )
        assert asked.json()["handoff_available"] is False
    # Asked at the same moment in another conversation (concurrent transactions on PostgreSQL):
    # every click is answered, one email is queued.
    racing = await _chat(anon_client, bot, "Is anyone there?", "visitor-3")
    clicks = await asyncio.gather(
        *(
            anon_client.post(
                f"/v1/public/conversations/{racing}/handoff", json={"session_id": "visitor-3"}
            )
            for _ in range(4)
        )
    )
    assert [c.status_code for c in clicks] == [200] * 4, [c.text for c in clicks]
    await _settle(app)
    assert [m["Subject"] for m in mailbox.messages] == [
        "[Lantern Shop] A visitor asked for a person (nobody was online)"
    ] * 2
    assert "My lantern arrived broken" in mailbox.messages[0].get_content()
    assert "Is anyone there?" in mailbox.messages[1].get_content()

    # An agent is online; a second visitor's handoff is taken but nobody answers it.
    agent = await make_key(client, label="Dana")
    await client.post(
        "/v1/agents/presence",
        json={"online": True},
        headers={"Authorization": f"Bearer {agent['key']}"},
    )
    other = await _chat(anon_client, bot, "Where is my order 1042?", "visitor-2")
    taken = await anon_client.post(
        f"/v1/public/conversations/{other}/handoff", json={"session_id": "visitor-2"}
    )
    assert taken.json()["conversation_status"] == "pending_human"
    await _settle(app)
    assert len(mailbox.messages) == 2  # not missed yet

    async with app.state.runtime.db.write() as session:  # ten minutes pass
        await session.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(other))
            .values(updated_at=utcnow() - timedelta(minutes=10))
        )
    await _settle(app)
    await _settle(app)  # seen twice: still one email
    assert len(mailbox.messages) == 3
    missed = mailbox.messages[2]
    assert missed["Subject"] == "[Lantern Shop] Missed handoff: a visitor is still waiting"
    assert "waiting 10 minutes" in missed.get_content()
    assert "Where is my order 1042?" in missed.get_content()
    assert [r.event for r in await _rows(app)] == [
        "handoff.offline",
        "handoff.offline",
        "handoff.missed",
    ]


async def test_bad_addresses_are_refused(client: httpx.AsyncClient) -> None:
    bot = await make_bot(client)
    response = await client.patch(
        f"/v1/bots/{bot['id']}", json={"handoff": {"notify_emails": ["not an address"]}}
    )
    assert response.status_code in (400, 422) and "not an email address" in response.text


@pytest.mark.parametrize("smtp", ["off"])
async def test_without_smtp_settings_the_email_fails_saying_why(
    make_settings: Callable[..., Settings], smtp: str
) -> None:
    from tests.knowledge.helpers import running

    async with running(make_settings()) as (app, client):
        bot = await make_bot(client, public=True, contact_form=CONTACT_FORM)
        await client.patch(f"/v1/bots/{bot['id']}", json={"handoff": {"notify_emails": TEAM}})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as anon:
            lead = await anon.post(
                "/v1/public/leads",
                json={
                    "bot_id": bot["id"],
                    "session_id": "v",
                    "name": "Ada",
                    "email": "ada@example.com",
                },
            )
            assert lead.status_code in (200, 201), lead.text
        await _settle(app)
        (row,) = await _rows(app)
        assert (row.status, row.last_error, row.attempts) == ("failed", NOT_CONFIGURED, 1)


async def test_recipients_and_switches_are_set_on_the_settings_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from chatwell.storage.tables import Bot
    from tests.dashboard.conftest import sign_up

    bot = await make_bot(client, name="Lantern Shop")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as browser:
        token = await sign_up(browser)
        page = await browser.get(f"/dashboard/bots/{bot['id']}/settings")
        assert 'name="handoff_notify_emails"' in page.text
        assert 'data-smtp="off"' not in page.text  # this server has SMTP settings
        form = {
            "name": "Lantern Shop",
            "handoff_notify_emails": "team@example.com\n owner@example.com \n",
            "email_switches": "1",
            "email_on_lead": "on",
            "csrf_token": token,
        }
        saved = await browser.post(f"/dashboard/bots/{bot['id']}/settings", data=form)
        assert saved.status_code == 303, saved.text
        async with app.state.runtime.db.read() as session:
            stored = (await session.get(Bot, uuid.UUID(bot["id"]))).handoff_settings
        assert stored["notify_emails"] == TEAM
        assert stored["email_on_lead"] is True
        assert stored["email_on_offline_request"] is False and stored["email_on_missed"] is False
        bad = await browser.post(
            f"/dashboard/bots/{bot['id']}/settings",
            data={**form, "handoff_notify_emails": "team@example.com\nnobody"},
            headers={"Accept": "application/json"},
        )
        assert bad.status_code == 400
        assert bad.json()["field"] == "handoff_notify_emails"
        assert "'nobody' is not an email address" in bad.json()["message"]
