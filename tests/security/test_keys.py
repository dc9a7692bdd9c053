"""Keys: failed authentications are throttled per client IP and key, and a bot-scoped key cannot
manage anything.

After ``auth_failure_rate_limits`` (30/minute) refused keys from one IP, every refused key from that
IP gets a 429 with Retry-After on every keyed door, in the door's own error shape, and a key that
itself failed that often is refused before it is looked up. A valid key from the same IP is never
refused for other keys' failures (issue 19 item 10: one client retrying a stale key took the whole
office down). Requests without a key count for nothing; other IPs are not affected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app, make_bot, make_key
from tests.security.tenants import Tenant, seed_tenant

WRONG = "cw_wrong-key-0000000000000000000000000000000"


def native(body: dict[str, Any]) -> str:
    return body["error"]["code"]


def chatbotiq(body: dict[str, Any]) -> str:
    return body["error"]


def flat(body: dict[str, Any]) -> str:
    return body["code"]


# (door, method, path, body, how its error body names the code, the code it uses for a 429)
DOORS: list[tuple[str, str, str, dict[str, Any] | None, Callable[[dict[str, Any]], str], str]] = [
    ("native", "GET", "/v1/bots", None, native, "rate_limited"),
    ("native-manage", "POST", "/v1/keys", {"label": "x"}, native, "rate_limited"),
    (
        "openai",
        "POST",
        "/v1/chat/completions",
        {"model": "support-bot", "messages": [{"role": "user", "content": "hi"}]},
        native,
        "rate_limited",
    ),
    ("openai-models", "GET", "/v1/models", None, native, "rate_limited"),
    (
        "chatiq",
        "POST",
        "/api/chat",
        {"message": "hi", "bot_slug": "support-bot", "stream": False},
        native,
        "RATE_LIMIT_EXCEEDED",
    ),
    (
        "chatbots_v1",
        "POST",
        "/api/v1/chatbots/support-bot/chat",
        {"message": "hi", "stream": False},
        flat,
        "RATE_LIMIT_EXCEEDED",
    ),
    (
        "devapi",
        "POST",
        "/api/v1/chat",
        {"message": "hi", "bot_id": "support-bot"},
        flat,
        "rate_limited",
    ),
    ("devapi-usage", "GET", "/api/v1/usage", None, flat, "rate_limited"),
    (
        "chatbase",
        "POST",
        "/api/v1/chat",
        {"messages": [{"role": "user", "content": "hi"}], "chatbotId": "support-bot"},
        flat,
        "rate_limited",
    ),
    ("chatbase-manage", "GET", "/api/v1/get-chatbots", None, flat, "rate_limited"),
    ("handoff", "GET", "/v1/handoff/queue", None, native, "rate_limited"),
]


def from_ip(app: FastAPI, ip: str, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


@pytest.fixture
async def attacker(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    await make_bot(client, name="Support Bot", slug="support-bot", public=True)
    async with from_ip(app, "203.0.113.7", WRONG) as c:
        yield c


async def test_repeated_invalid_keys_are_throttled_on_every_door(
    app: FastAPI, attacker: httpx.AsyncClient
) -> None:
    limit = 30  # the default auth_failure_rate_limits
    for attempt in range(limit):
        door, method, path, body, code_of, _ = DOORS[attempt % len(DOORS)]
        response = await attacker.request(method, path, json=body)
        assert response.status_code == 401, (attempt, door, response.text)
    for door, method, path, body, code_of, code in DOORS:
        for key in (
            WRONG,
            f"{WRONG}x",
        ):  # the failing key, and any other refused key from the address
            response = await attacker.request(
                method, path, json=body, headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 429, (door, response.text)
            assert code_of(response.json()) == code, (door, response.text)
            assert int(response.headers["Retry-After"]) >= 1, door
            assert "failed authentications" in response.text, door
        # The right key from the same address is served: other keys' failures are not its own.
        good = await attacker.request(
            method, path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert good.status_code not in (401, 429), (door, good.status_code, good.text)
    # The developer API's key in the body, too.
    in_body = await attacker.post(
        "/api/v1/chat", json={"message": "hi", "api_key": WRONG, "bot_id": "support-bot"}
    )
    assert in_body.status_code == 429
    in_body = await attacker.post(
        "/api/v1/chat", json={"message": "hi", "api_key": ADMIN_KEY, "bot_id": "support-bot"}
    )
    assert in_body.status_code == 200, in_body.text
    # Another client is not affected, and keyless public endpoints stay open to the blocked one.
    async with from_ip(app, "198.51.100.9", ADMIN_KEY) as other:
        assert (await other.get("/v1/bots")).status_code == 200
    public = await attacker.get("/v1/public/bots/support-bot/config")
    assert public.status_code == 200


async def test_missing_keys_and_good_keys_count_for_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with (
        from_ip(app, "203.0.113.8") as keyless,
        from_ip(app, "203.0.113.8", ADMIN_KEY) as good,
    ):
        for _ in range(40):
            assert (await keyless.get("/v1/bots")).status_code == 401
            assert (await good.get("/v1/bots")).status_code == 200
        response = await keyless.get("/v1/bots", headers={"Authorization": "Bearer " + WRONG})
        assert response.status_code == 401


async def test_a_stale_key_retried_from_an_office_does_not_lock_out_its_valid_keys(
    make_settings: Callable[..., Settings],
) -> None:
    """Issue 19 item 10: ten wrong keys from one address refused every valid key from it."""
    app = build_app(make_settings(auth_failure_rate_limits="10/minute"), announce=lambda _: None)
    async with (
        app.router.lifespan_context(app),
        from_ip(app, "192.0.2.50", WRONG) as stale,
        from_ip(app, "192.0.2.50", ADMIN_KEY) as colleague,
    ):
        statuses = [(await stale.get("/v1/bots")).status_code for _ in range(14)]
        assert statuses == [401] * 10 + [429] * 4  # the stale key backs off
        for _ in range(5):  # the valid key from the same office keeps working
            assert (await colleague.get("/v1/bots")).status_code == 200
        # A different wrong key from the address is refused with 429 now (the address is past its
        # failures), without that refusing the valid one.
        assert (
            await stale.get("/v1/bots", headers={"Authorization": f"Bearer {WRONG}y"})
        ).status_code == 429
        assert (await colleague.get("/v1/bots")).status_code == 200


async def test_the_limit_is_a_setting_and_the_window_is_per_ip(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(
        make_settings(auth_failure_rate_limits="3/minute;10/hour"), announce=lambda _: None
    )
    async with app.router.lifespan_context(app), from_ip(app, "203.0.113.9", WRONG) as guesser:
        statuses = [(await guesser.get("/v1/bots")).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        async with from_ip(app, "203.0.113.10", ADMIN_KEY) as neighbour:
            assert (await neighbour.get("/v1/bots")).status_code == 200
    off = build_app(make_settings(auth_failure_rate_limits=""), announce=lambda _: None)
    async with off.router.lifespan_context(off), from_ip(off, "203.0.113.9", WRONG) as guesser:
        assert {(await guesser.get("/v1/bots")).status_code for _ in range(40)} == {401}


# ----------------------------------------------------------------------------- scopes


@pytest.fixture
async def tenant(app: FastAPI) -> Tenant:
    return await seed_tenant(app, "Scoped")


async def test_a_bot_key_cannot_manage_the_workspace(app: FastAPI, tenant: Tenant) -> None:
    bot, source = tenant.bot_id, tenant.source_ids[0]
    management = [
        ("POST", "/v1/keys", {"label": "escalate"}),
        ("POST", "/v1/keys", {"label": "more", "bot_id": bot}),
        ("GET", "/v1/keys", None),
        ("DELETE", f"/v1/keys/{tenant.owner_key_id}", None),
        ("DELETE", f"/v1/keys/{tenant.bot_key_id}", None),
        ("POST", "/v1/bots", {"name": "Another"}),
        ("PATCH", f"/v1/bots/{bot}", {"public": False}),
        ("DELETE", f"/v1/bots/{bot}", None),
        ("POST", f"/v1/bots/{bot}/sources", {"type": "text", "title": "t", "text": "x"}),
        ("GET", f"/v1/bots/{bot}/sources", None),
        ("GET", f"/v1/bots/{bot}/sources/{source}", None),
        ("POST", f"/v1/bots/{bot}/sources/{source}/sync", None),
        ("DELETE", f"/v1/bots/{bot}/sources/{source}", None),
        ("GET", f"/v1/bots/{bot}/leads", None),
        ("GET", f"/v1/bots/{bot}/leads.csv", None),
        ("POST", f"/v1/bots/{bot}/webhook-secret", None),
        ("GET", f"/v1/bots/{bot}/webhook-deliveries", None),
        ("POST", "/v1/agents/presence", {"online": True}),
        ("GET", "/v1/handoff/queue", None),
        ("POST", f"/v1/conversations/{tenant.session_conversation_id}/messages", {"content": "hi"}),
        ("POST", f"/v1/conversations/{tenant.session_conversation_id}/resolve", None),
        ("POST", "/api/v1/create-chatbot", {"chatbotName": "Another"}),
        ("POST", "/api/v1/update-chatbot-data", {"chatbotId": bot, "sourceText": "replaced"}),
        ("POST", "/api/v1/update-chatbot-settings", {"chatbotId": bot, "visibility": "private"}),
        ("DELETE", f"/api/v1/delete-chatbot?chatbotId={bot}", None),
    ]
    async with from_ip(app, "192.0.2.10", tenant.bot_key) as scoped:
        for method, path, body in management:
            response = await scoped.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            payload = response.json()
            code = (
                payload["error"]["code"]
                if isinstance(payload.get("error"), dict)
                else payload["code"]
            )
            assert code == "insufficient_scope", (method, path, response.text)
        # What it may do: its own bot, read and chat.
        assert (await scoped.get(f"/v1/bots/{bot}")).status_code == 200
        assert (
            await scoped.post(f"/v1/bots/{bot}/chat", json={"message": "hi", "stream": False})
        ).status_code == 200
    async with from_ip(app, "192.0.2.11", tenant.owner_key) as owner:
        assert (await owner.get(f"/v1/bots/{bot}")).json()["public"] is True
        assert len((await owner.get(f"/v1/bots/{bot}/sources")).json()["data"]) == 2
        listed = {k["id"] for k in (await owner.get("/v1/keys")).json()["data"]}
        assert {tenant.owner_key_id, tenant.bot_key_id} <= listed
        assert len(listed) == 3  # owner, bot key, spare: nothing was created


async def test_a_revoked_key_stops_at_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    key = await make_key(client, label="short-lived")
    async with from_ip(app, "192.0.2.12", key["key"]) as holder:
        assert (await holder.get("/v1/bots")).status_code == 200
        assert (await client.delete(f"/v1/keys/{key['id']}")).status_code == 204
        revoked = await holder.get("/v1/bots")
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"
