"""Chatbase (seed 004 and the seeds README's endpoint table) against a real server: the quick
start request, the streaming example, the management endpoints, errors, and the shared path."""

from __future__ import annotations

import asyncio
import json

import httpx

from chatwell.services import leads
from chatwell.services.bots import find_bot
from chatwell.storage.database import Database
from tests.dialects.conftest import World, wait_ready


def test_quick_start_request(world: World) -> None:
    with world.client(world.workspace_key, headers={"Content-Type": "application/json"}) as client:
        reply = client.post(
            "/api/v1/chat",
            content=json.dumps(
                {
                    "messages": [{"content": "Hello! How can you help me?", "role": "user"}],
                    "chatbotId": world.bot_id,
                }
            ),
        )
    assert reply.status_code == 200
    assert set(reply.json()) == {"text"} and reply.json()["text"]


def test_streaming_example_is_plain_text(world: World) -> None:
    body = {
        "messages": [{"content": "What are your business hours?", "role": "user"}],
        "chatId": world.bot_id,
        "stream": True,
        "temperature": 0,
    }
    with world.client(world.workspace_key) as client:
        with client.stream("POST", "/api/v1/chat", json=body) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith(
                "text/plain"
            )
            chunks = [chunk for chunk in response.iter_text() if chunk]
    text = "".join(chunks)
    assert "Monday through Friday" in text and "data:" not in text


def test_history_conversation_id_temperature_and_model(world: World) -> None:
    messages = [
        {"role": "user", "content": "What are your business hours?"},
        {"role": "assistant", "content": "Monday through Friday, 9 AM to 5 PM EST."},
        {"role": "user", "content": "And on weekends?"},
    ]
    with world.client(world.workspace_key) as client:
        for _ in range(2):
            reply = client.post(
                "/api/v1/chat",
                json={
                    "messages": messages,
                    "chatbotId": "support-bot",
                    "conversationId": "conv-42",
                    "temperature": 0.2,
                    "model": "chatwell-offline",
                },
            )
            assert reply.status_code == 200
            assert (
                reply.json()["conversationId"] == "conv-42"
                and "weekend" in reply.json()["text"].lower()
            )
        conversations = client.get(
            "/api/v1/get-conversations", params={"chatbotId": world.bot_id}
        ).json()["data"]
    assert len(conversations) == 1  # both turns were kept under the client's conversation id
    assert (
        conversations[0]["conversation_id"] == "conv-42"
        and conversations[0]["source"] == "chatbase"
    )
    assert [m["role"] for m in conversations[0]["messages"]] == ["user", "assistant"] * 2


def test_manage_chatbots(world: World) -> None:
    with world.client(world.workspace_key) as client:
        created = client.post(
            "/api/v1/create-chatbot",
            json={
                "chatbotName": "Returns Bot",
                "sourceText": "Returns: items can be returned within 30 days of delivery.",
            },
        )
        assert created.status_code == 200
        bot_id = created.json()["chatbotId"]
        with world.admin() as admin:
            wait_ready(admin, bot_id)
        answer = client.post(
            "/api/v1/chat",
            json={
                "messages": [{"role": "user", "content": "How long can I return items?"}],
                "chatbotId": bot_id,
            },
        ).json()["text"]
        assert "30 days" in answer

        listed = client.get("/api/v1/get-chatbots").json()["chatbots"]
        assert {b["name"] for b in listed} >= {"Support Bot", "Returns Bot"}
        assert all({"id", "name", "visibility", "instructions"} <= set(b) for b in listed)

        updated = client.post(
            "/api/v1/update-chatbot-data",
            json={
                "chatbotId": bot_id,
                "chatbotName": "Refunds Bot",
                "sourceText": "Refunds: money is refunded within 5 business days.",
            },
        )
        assert updated.json() == {"chatbotId": bot_id}
        with world.admin() as admin:
            wait_ready(admin, bot_id)
            sources = admin.get(f"/v1/bots/{bot_id}/sources").json()["data"]
            assert len(sources) == 1 and sources[0]["title"] == "Refunds Bot"
        answer = client.post(
            "/api/v1/chat",
            json={
                "messages": [{"role": "user", "content": "When is my money refunded?"}],
                "chatbotId": bot_id,
            },
        ).json()["text"]
        assert "5 business days" in answer

        settings = client.post(
            "/api/v1/update-chatbot-settings",
            json={
                "chatbotId": bot_id,
                "name": "Refunds",
                "instructions": "Be brief.",
                "initialMessages": ["Hi there!"],
                "suggestedMessages": ["Refund time?"],
                "visibility": "public",
                "onlyAllowOnAddedDomains": True,
                "domains": ["https://shop.example.com"],
                "ipLimit": 5,
                "ipLimitTimeframe": 60,
                "ipLimitMessage": "Too many messages",
                "model": "gpt-4o-mini",
                "temp": 0.3,
            },
        )
        assert settings.status_code == 200 and settings.json() == {"message": "success"}
        with world.admin() as admin:
            bot = admin.get(f"/v1/bots/{bot_id}").json()
        assert (
            bot["name"] == "Refunds"
            and bot["public"] is True
            and bot["instructions"] == "Be brief."
        )
        assert bot["welcome_message"] == "Hi there!" and bot["suggested_questions"] == [
            "Refund time?"
        ]
        assert bot["allowed_origins"] == ["https://shop.example.com"]
        assert (
            bot["rate_limits"]["per_minute"] == 5
            and bot["rate_limits"]["message"] == "Too many messages"
        )
        assert bot["model"]["model"] == "gpt-4o-mini" and bot["model"]["temperature"] == 0.3
        listed = {b["id"]: b for b in client.get("/api/v1/get-chatbots").json()["chatbots"]}
        assert listed[bot_id]["visibility"] == "public" and listed[bot_id]["ip_limit"] == 5

        deleted = client.delete("/api/v1/delete-chatbot", params={"chatbotId": bot_id})
        assert deleted.json() == {"message": "success"}
        assert bot_id not in {
            b["id"] for b in client.get("/api/v1/get-chatbots").json()["chatbots"]
        }
        assert (
            client.delete("/api/v1/delete-chatbot", params={"chatbotId": bot_id}).status_code == 404
        )


def test_conversations_and_leads_with_dates_and_pages(world: World, database_url: str) -> None:
    with world.client(world.workspace_key) as client:
        for i in range(3):
            client.post(
                "/api/v1/chat",
                json={
                    "messages": [{"role": "user", "content": f"hi {i}"}],
                    "chatbotId": world.bot_id,
                },
            )

    async def add_leads() -> None:
        db = Database(database_url)
        try:
            async with db.read() as session:
                bot = await find_bot(session, world.bot_id)
            assert bot is not None
            await leads.create_lead(
                db, bot=bot, name="Ada", email="ada@example.com", phone="+1 555 0100"
            )
            await leads.create_lead(db, bot=bot, name="Grace", email="grace@example.com")
        finally:
            await db.dispose()

    asyncio.run(add_leads())
    with world.client(world.workspace_key) as client:
        page = client.get(
            "/api/v1/get-conversations", params={"chatbotId": world.bot_id, "page": 1, "size": 2}
        ).json()
        rest = client.get(
            "/api/v1/get-conversations", params={"chatbotId": world.bot_id, "page": 2, "size": 2}
        ).json()
        assert len(page["data"]) == 2 and len(rest["data"]) == 1
        first = page["data"][0]
        assert {"id", "created_at", "messages"} <= set(first)
        assert all(set(m) >= {"role", "content"} for m in first["messages"])
        none = client.get(
            "/api/v1/get-conversations",
            params={"chatbotId": world.bot_id, "startDate": "2999-01-01"},
        ).json()
        assert none["data"] == []
        found = client.get("/api/v1/get-leads", params={"chatbotId": world.bot_id}).json()[
            "collectedCustomers"
        ]
        assert {(c["name"], c["email"]) for c in found} == {
            ("Ada", "ada@example.com"),
            ("Grace", "grace@example.com"),
        }
        assert all({"id", "name", "email", "phone", "created_at"} <= set(c) for c in found)
        assert client.get(
            "/api/v1/get-leads", params={"chatbotId": world.bot_id, "endDate": "2000-01-01"}
        ).json() == {"collectedCustomers": []}


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"]


def test_errors(world: World) -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}], "chatbotId": world.bot_id}
    with world.client() as client:
        _error(client.post("/api/v1/chat", json=chat), 401, "missing_api_key")
        _error(client.get("/api/v1/get-chatbots"), 401, "missing_api_key")
    with world.client("YOUR_API_KEY") as client:
        _error(client.post("/api/v1/chat", json=chat), 401, "invalid_api_key")
        _error(
            client.post("/api/v1/create-chatbot", json={"chatbotName": "x"}), 401, "invalid_api_key"
        )
    with world.client(world.workspace_key) as client:
        _error(
            client.post("/api/v1/chat", json={**chat, "chatbotId": "your-chatbot-id-here"}),
            404,
            "bot_not_found",
        )
        _error(
            client.post("/api/v1/chat", json={"messages": [{"role": "user", "content": "hi"}]}),
            400,
            "invalid_request",
        )
        _error(client.post("/api/v1/chat", json={**chat, "messages": []}), 400, "invalid_request")
        _error(
            client.post(
                "/api/v1/chat", json={**chat, "messages": [{"role": "assistant", "content": "x"}]}
            ),
            400,
            "invalid_request",
        )
        _error(client.post("/api/v1/chat", json={**chat, "temperature": 7}), 400, "invalid_request")
        _error(client.post("/api/v1/create-chatbot", json={}), 400, "invalid_request")
        _error(
            client.post(
                "/api/v1/update-chatbot-settings",
                json={"chatbotId": world.bot_id, "visibility": "secret"},
            ),
            400,
            "invalid_request",
        )
        _error(
            client.post(
                "/api/v1/update-chatbot-settings",
                json={
                    "chatbotId": world.bot_id,
                    "domains": ["not an origin"],
                    "onlyAllowOnAddedDomains": True,
                },
            ),
            400,
            "invalid_request",
        )
        _error(client.get("/api/v1/get-conversations"), 400, "invalid_request")
        _error(
            client.get(
                "/api/v1/get-leads", params={"chatbotId": world.bot_id, "startDate": "soon"}
            ),
            400,
            "invalid_date",
        )
        _error(
            client.delete("/api/v1/delete-chatbot", params={"chatbotId": "nope"}),
            404,
            "bot_not_found",
        )
    with world.client(world.bot_key) as client:  # a key for one bot can chat, not manage
        assert client.post("/api/v1/chat", json=chat).status_code == 200
        _error(
            client.post("/api/v1/create-chatbot", json={"chatbotName": "x"}),
            403,
            "insufficient_scope",
        )


def test_shared_path_serves_both_dialects_at_once(world: World) -> None:
    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=world.base, timeout=30, headers={"Authorization": f"Bearer {world.bot_key}"}
        ) as client:
            chatbase = {
                "messages": [{"role": "user", "content": "What are your business hours?"}],
                "chatbotId": world.bot_id,
            }
            devapi = {"message": "What are your business hours?"}
            return list(
                await asyncio.gather(
                    *(client.post("/api/v1/chat", json=b) for b in (chatbase, devapi) * 4)
                )
            )

    replies = asyncio.run(both())
    assert all(r.status_code == 200 for r in replies)
    assert all(set(r.json()) == {"text"} for r in replies[0::2])
    assert all(r.json()["success"] is True and "session_id" in r.json() for r in replies[1::2])
    with world.client(world.bot_key) as client:
        for body in (b"nope", b"[1]", b'{"neither": 1}'):
            reply = client.post(
                "/api/v1/chat", content=body, headers={"Content-Type": "application/json"}
            )
            assert reply.status_code == 400
            assert set(reply.json()) == {"success", "error", "code", "message"}
