"""Leads from the public contact form and their signed ``lead.created`` webhooks, end to end.

The webhook receiver is a real HTTP server (uvicorn on 127.0.0.1) that records what it gets and
can be told to fail; signatures are checked with ``hmac`` here, independently of the server's
code. Retries run through a delivery worker the test builds with a millisecond backoff.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from chatwell.chat import persistence
from chatwell.services import bots
from chatwell.services.webhooks import WebhookWorker
from chatwell.settings import Settings
from tests.helpers import bearer, build_app, make_bot, make_key

CONTACT_FORM = {
    "enabled": True,
    "fields": [
        {"name": "name", "label": "Name", "type": "text", "required": True},
        {"name": "email", "label": "Email", "type": "email", "required": True},
        {"name": "phone", "label": "Phone", "type": "phone"},
        {"name": "company", "label": "Company", "type": "text"},
        {"name": "backup_email", "label": "Other email", "type": "email"},
    ],
}


@dataclass
class Call:
    name: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: ``url(name)`` records calls; ``failures[name] = n`` fails n with 500."""

    base: str
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"

    def of(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]


@pytest.fixture
def receiver(live_server: Any) -> Receiver:
    hook = FastAPI()
    found = Receiver("")

    @hook.post("/hook/{name}")
    async def receive(name: str, request: Request) -> Response:
        found.calls.append(Call(name, dict(request.headers), await request.body()))
        if found.failures.get(name, 0) > 0:
            found.failures[name] -= 1
            return Response(status_code=500)
        return Response(status_code=204)

    found.base = live_server.start(hook)
    return found


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_private=True)  # the receiver listens on loopback


def visitor(app: FastAPI, ip: str = "203.0.113.7", **headers: str) -> httpx.AsyncClient:
    """A keyless browser-like client from its own IP (the lead limit counts per IP)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
        base_url="http://testserver",
        headers=headers,
    )


async def form_bot(client: httpx.AsyncClient, slug: str, **fields: Any) -> dict[str, Any]:
    return await make_bot(
        client, name=slug.title(), slug=slug, public=True, contact_form=CONTACT_FORM, **fields
    )


async def open_conversation(app: FastAPI, bot_id: str, session_id: str) -> str:
    db = app.state.runtime.db
    async with db.read() as session:
        bot = await bots.find_bot(session, bot_id)
    assert bot is not None
    turn = await persistence.start_turn(
        db,
        bot=bot,
        conversation_id=None,
        question="hello",
        session_id=session_id,
        session_scope="chatbotiq:public",
        channel="chatbotiq",
        api_key_id=None,
        client_ip=None,
        metadata={},
        image=None,
    )
    return str(turn.conversation_id)


async def submit(
    app: FastAPI, body: dict[str, Any], *, ip: str = "203.0.113.7", **headers: str
) -> httpx.Response:
    async with visitor(app, ip, **headers) as browser:
        return await browser.post("/v1/public/leads", json=body)


def lead_body(bot_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "bot_id": bot_id,
        "session_id": "visitor-1",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        **extra,
    }


def expect_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"], body


def verify(call: Call, secret: str) -> dict[str, Any]:
    """Check the signature as a receiver would and return the payload."""
    timestamp = call.headers["x-chatwell-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + call.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(call.headers["x-chatwell-signature"], f"sha256={expected}")
    assert abs(int(timestamp) - time.time()) < 60
    assert call.headers["content-type"] == "application/json"
    return json.loads(call.body)


async def deliveries(client: httpx.AsyncClient, bot: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/bots/{bot}/webhook-deliveries")
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture
async def fast_worker(app: FastAPI) -> AsyncIterator[WebhookWorker]:
    """The app's delivery worker swapped for one that retries after 50 ms (constructor injection)."""
    await app.state.runtime.webhooks.stop()
    worker = WebhookWorker(
        app.state.runtime.db, allow_private=True, retry_delays=(0.05, 0.05, 0.05), poll_seconds=0.05
    )
    app.state.runtime.webhooks = worker
    worker.start()
    yield worker
    await worker.stop()


async def test_a_lead_is_stored_and_announced_by_a_signed_webhook(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    for logger in ("chatwell", "httpx", "httpcore", "uvicorn", "fastapi"):
        caplog.set_level(logging.DEBUG, logger=logger)
    bot = await form_bot(client, "shop", webhook_url=receiver.url("shop"))
    rotated = await client.post("/v1/bots/shop/webhook-secret")
    assert rotated.status_code == 200 and set(rotated.json()) == {"secret"}
    secret = rotated.json()["secret"]
    conversation_id = await open_conversation(app, bot["id"], "visitor-1")

    created = await submit(
        app,
        lead_body(
            bot["id"],
            conversation_id=conversation_id,
            phone="+1 555 0100",
            fields={"company": "Analytical Engines", "hobby": "dropped"},
        ),
    )
    assert created.status_code == 201 and set(created.json()) == {"id"}
    lead_id = created.json()["id"]
    await asyncio.wait_for(app.state.runtime.webhooks.idle(), 15)

    [call] = receiver.of("shop")
    payload = verify(call, secret)
    assert call.headers["x-chatwell-event"] == "lead.created"
    assert payload["event"] == "lead.created" and payload["created_at"].endswith("Z")
    assert payload["bot"] == {"id": bot["id"], "slug": "shop", "name": "Shop"}
    assert payload["conversation_id"] == conversation_id
    assert payload["lead"] == {
        "id": lead_id,
        "bot_id": bot["id"],
        "conversation_id": conversation_id,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+1 555 0100",
        "fields": {"company": "Analytical Engines"},
        "created_at": payload["lead"]["created_at"],
    }

    [log] = await deliveries(client, "shop")
    assert log["id"] == call.headers["x-chatwell-delivery"]
    assert set(log) == {
        "id",
        "event",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "created_at",
        "next_attempt_at",
    }
    assert (log["event"], log["status"], log["attempts"]) == ("lead.created", "delivered", 1)
    assert log["response_status"] == 204
    assert log["last_error"] is None and log["next_attempt_at"] is None

    # The secret shows in the rotation reply only: never in a read, an export or a log line.
    seen = [
        await client.get(path)
        for path in (
            "/v1/bots/shop",
            "/v1/bots",
            "/v1/bots/shop/leads",
            "/v1/bots/shop/leads.csv",
            "/v1/bots/shop/webhook-deliveries",
            "/api/v1/get-chatbots",
        )
    ]
    assert all(r.status_code == 200 for r in seen)
    assert not any(secret in r.text for r in seen)
    assert caplog.records and secret not in caplog.text  # ours, the HTTP client's and the server's
    # A rotated secret signs from then on; the old one no longer verifies.
    newer = (await client.post("/v1/bots/shop/webhook-secret")).json()["secret"]
    assert newer != secret
    assert (await submit(app, lead_body(bot["id"]))).status_code == 201
    await asyncio.wait_for(app.state.runtime.webhooks.idle(), 15)
    latest = receiver.of("shop")[-1]
    verify(latest, newer)
    with pytest.raises(AssertionError):
        verify(latest, secret)


async def test_leads_are_listed_paged_exported_and_seen_by_chatbase(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    bot = await form_bot(client, "crm")
    first = await submit(app, lead_body(bot["id"], fields={"company": '=HYPERLINK("http://x")'}))
    second = await submit(
        app,
        lead_body(
            bot["id"],
            name="Grace Hopper",
            email="grace@example.com",
            phone="+44 20 7946 0000",
            fields={"company": "@Navy"},
        ),
    )
    assert first.status_code == second.status_code == 201

    page = (await client.get("/v1/bots/crm/leads", params={"limit": 1})).json()
    assert page["has_more"] is True and page["next_cursor"]
    [newest] = page["data"]
    assert set(newest) == {
        "id",
        "bot_id",
        "conversation_id",
        "name",
        "email",
        "phone",
        "fields",
        "created_at",
    }
    assert newest["id"] == second.json()["id"] and newest["bot_id"] == bot["id"]
    assert newest["name"] == "Grace Hopper" and newest["conversation_id"] is None
    rest = (
        await client.get("/v1/bots/crm/leads", params={"limit": 1, "cursor": page["next_cursor"]})
    ).json()
    assert [lead["id"] for lead in rest["data"]] == [first.json()["id"]] and rest[
        "has_more"
    ] is False

    export = await client.get("/v1/bots/crm/leads.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert 'filename="crm-leads.csv"' in export.headers["content-disposition"]
    header, *rows = list(csv.reader(io.StringIO(export.text)))
    assert header == [
        "id",
        "created_at",
        "name",
        "email",
        "phone",
        "conversation_id",
        "company",
        "backup_email",
    ]
    assert [row[0] for row in rows] == [first.json()["id"], second.json()["id"]]  # oldest first
    assert rows[0][6] == '\'=HYPERLINK("http://x")' and rows[1][6] == "'@Navy"
    assert rows[1][4] == "'+44 20 7946 0000" and rows[1][2] == "Grace Hopper"

    chatbase = (await client.get("/api/v1/get-leads", params={"chatbotId": bot["id"]})).json()
    chatbase = chatbase["collectedCustomers"]
    assert {c["email"] for c in chatbase} == {"ada@example.com", "grace@example.com"}
    assert {c["fields"]["company"] for c in chatbase} == {'=HYPERLINK("http://x")', "@Navy"}

    # Leads are personal data: a key scoped to the bot (the kind a website holds) cannot read them.
    bot_key = (await make_key(client, bot_id=bot["id"]))["key"]
    for path in ("/v1/bots/crm/leads", "/v1/bots/crm/leads.csv", "/v1/bots/crm/webhook-deliveries"):
        refused = await client.get(path, headers=bearer(bot_key))
        assert (
            refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
        )
    assert (
        await client.post("/v1/bots/crm/webhook-secret", headers=bearer(bot_key))
    ).status_code == 403
    assert (await client.get("/v1/bots/nope/leads")).status_code == 404
    empty = await form_bot(client, "empty")
    assert (await client.get(f"/v1/bots/{empty['id']}/leads.csv")).text.splitlines() == [
        "id,created_at,name,email,phone,conversation_id,company,backup_email"
    ]


async def test_the_contact_form_refuses_bad_submissions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    bot = await form_bot(client, "guarded", allowed_origins=["https://shop.example"])
    closed = await make_bot(client, name="Closed", slug="closed", public=True)
    private = await make_bot(client, name="Private", slug="private", contact_form=CONTACT_FORM)
    theirs = await open_conversation(app, bot["id"], "someone-else")
    cases = [
        (lead_body(closed["id"]), {}, 403, "contact_form_disabled"),
        (lead_body(private["id"]), {}, 403, "bot_not_public"),
        (lead_body("no-such-bot"), {}, 404, "bot_not_found"),
        (lead_body(bot["id"]), {"Origin": "https://evil.example"}, 403, "origin_not_allowed"),
        (lead_body(bot["id"], email=None), {}, 400, "missing_field"),
        (lead_body(bot["id"], name="   "), {}, 400, "missing_field"),
        (lead_body(bot["id"], email="ada-at-example.com"), {}, 400, "invalid_email"),
        (lead_body(bot["id"], fields={"backup_email": "nope@"}), {}, 400, "invalid_email"),
        (lead_body(bot["id"], conversation_id=theirs), {}, 404, "conversation_not_found"),
        (
            lead_body(bot["id"], conversation_id=str(uuid.uuid4())),
            {},
            404,
            "conversation_not_found",
        ),
        (lead_body(bot["id"], conversation_id="not-a-uuid"), {}, 404, "conversation_not_found"),
        (lead_body(bot["id"], name="x" * 201), {}, 400, "invalid_request"),
        (lead_body(bot["id"], fields={"company": "x" * 2001}), {}, 400, "invalid_request"),
        (
            lead_body(bot["id"], fields={f"f{i}": "v" for i in range(21)}),
            {},
            400,
            "invalid_request",
        ),
        ({"bot_id": bot["id"], "name": "No session"}, {}, 400, "invalid_request"),
    ]
    for n, (body, headers, status, code) in enumerate(cases):
        expect_error(await submit(app, body, ip=f"198.51.100.{n + 1}", **headers), status, code)
    # The allowed origin passes and may read the reply cross-site.
    ok = await submit(app, lead_body(bot["id"]), **{"Origin": "https://shop.example"})
    assert (
        ok.status_code == 201
        and ok.headers["access-control-allow-origin"] == "https://shop.example"
    )
    # The conversation's own session may attach it.
    mine = await open_conversation(app, bot["id"], "visitor-1")
    assert (
        await submit(app, lead_body(bot["id"], conversation_id=mine), ip="192.0.2.1")
    ).status_code == 201
    listed = (await client.get("/v1/bots/guarded/leads")).json()["data"]
    assert {lead["conversation_id"] for lead in listed} == {None, mine}


async def test_the_contact_form_is_rate_limited_per_ip(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    bot = await form_bot(client, "busy")
    for _ in range(10):
        assert (await submit(app, lead_body(bot["id"]), ip="192.0.2.50")).status_code == 201
    limited = await submit(app, lead_body(bot["id"]), ip="192.0.2.50")
    expect_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert (await submit(app, lead_body(bot["id"]), ip="192.0.2.51")).status_code == 201


async def test_failed_deliveries_are_retried_then_given_up(
    app: FastAPI, client: httpx.AsyncClient, receiver: Receiver, fast_worker: WebhookWorker
) -> None:
    flaky = await form_bot(client, "flaky", webhook_url=receiver.url("flaky"))
    down = await form_bot(client, "down", webhook_url=receiver.url("down"))
    secret = (await client.post("/v1/bots/flaky/webhook-secret")).json()["secret"]
    receiver.failures.update(flaky=2, down=99)
    assert (await submit(app, lead_body(flaky["id"]))).status_code == 201
    assert (await submit(app, lead_body(down["id"]))).status_code == 201
    await asyncio.wait_for(fast_worker.idle(), 15)

    calls = receiver.of("flaky")
    assert len(calls) == 3 and len({c.headers["x-chatwell-delivery"] for c in calls}) == 1
    assert all(verify(c, secret)["event"] == "lead.created" for c in calls)
    [log] = await deliveries(client, "flaky")
    assert (log["status"], log["attempts"], log["response_status"]) == ("delivered", 3, 204)
    assert log["last_error"] is None

    assert len(receiver.of("down")) == 4  # the first try and three retries
    # Signed with the secret that came with the webhook (issue 19 item 14: it was unsigned).
    assert down["webhook_secret"].startswith("whsec_")
    assert all(verify(c, down["webhook_secret"]) for c in receiver.of("down"))
    [log] = await deliveries(client, "down")
    assert (log["status"], log["attempts"], log["response_status"]) == ("failed", 4, 500)
    assert log["last_error"] == "the receiver answered HTTP 500" and log["next_attempt_at"] is None


async def test_metadata_targets_are_refused_even_when_private_ones_are_allowed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await form_bot(client, "cloud", webhook_url="http://169.254.169.254/latest/meta-data/")
    bot = (await client.get("/v1/bots/cloud")).json()
    assert (await submit(app, lead_body(bot["id"]))).status_code == 201
    await asyncio.wait_for(app.state.runtime.webhooks.idle(), 15)
    [log] = await deliveries(client, "cloud")
    assert log["status"] == "failed" and log["attempts"] == 1 and log["response_status"] is None
    assert "address not allowed" in log["last_error"] and "not sent" in log["last_error"]
    assert "metadata" not in log["last_error"] and "169.254" not in log["last_error"]


async def test_private_targets_are_refused_unless_allowed(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    strict = build_app(make_settings(), announce=lambda _: None)  # webhook_allow_private off
    async with strict.router.lifespan_context(strict):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=strict),
            base_url="http://testserver",
            headers=bearer("test-admin-key-0123456789"),
        ) as admin:
            bot = await form_bot(admin, "intranet", webhook_url=receiver.url("intranet"))
            assert (await submit(strict, lead_body(bot["id"]))).status_code == 201
            await asyncio.wait_for(strict.state.runtime.webhooks.idle(), 15)
            [log] = await deliveries(admin, "intranet")
    assert receiver.calls == []  # nothing was sent
    assert log["status"] == "failed" and log["attempts"] == 1 and log["response_status"] is None
    assert (
        "address not allowed" in log["last_error"]
        and "CHATWELL_WEBHOOK_ALLOW_PRIVATE=true" in log["last_error"]
    )
    assert "loopback" not in log["last_error"] and "127.0.0.1" not in log["last_error"]
