"""The lead-management chatbots API (seed 002) against a real server: every example, the
envelope, X-RateLimit headers, the stream default, metadata, and each documented error."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.dialects.conftest import World, empty_wallet

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def url(world: World, bot: str | None = None) -> str:
    return f"/api/v1/chatbots/{bot or world.bot_id}/chat"


def check_rate_headers(response: httpx.Response) -> tuple[int, int, int]:
    limit, remaining, reset = (int(response.headers[h]) for h in RATE_HEADERS)
    assert 0 <= remaining < limit and time.time() < reset <= time.time() + 3600
    return limit, remaining, reset


def test_payload_example_streams_and_keeps_metadata(world: World) -> None:
    body = {
        "message": "Hello, how can you help me?",
        "conversationId": "cm5abc123xyz456",
        "stream": True,
        "metadata": {"source": "mobile_app", "userId": "user_123"},
    }
    with world.client(world.workspace_key) as client:
        with connect_sse(client, "POST", url(world), json=body) as source:
            assert source.response.status_code == 200
            check_rate_headers(source.response)
            frames = [e.data for e in source.iter_sse()]
    assert frames[-1] == "[DONE]"
    parsed = [json.loads(f) for f in frames[:-1]]
    assert all("content" in p for p in parsed[:-1]) and parsed[-1]["done"] is True
    assert parsed[-1]["conversationId"] == "cm5abc123xyz456" and parsed[-1]["messageId"]
    # The conversation kept under the client's id continues with it.
    with world.client(world.workspace_key) as client:
        again = client.post(
            url(world),
            json={
                "message": "Tell me more about that",
                "conversationId": "cm5abc123xyz456",
                "stream": False,
            },
        ).json()
    assert again["data"]["conversationId"] == "cm5abc123xyz456"
    with world.admin() as admin:
        conversations = admin.get("/v1/conversations").json()["data"]
        assert len(conversations) == 1 and conversations[0]["channel"] == "chatbots_v1"
        stored = admin.get(f"/v1/conversations/{conversations[0]['id']}").json()
    assert stored["metadata"] == {"source": "mobile_app", "userId": "user_123"}
    first_user = stored["messages"][0]
    assert first_user["role"] == "user" and first_user["metadata"] == {
        "source": "mobile_app",
        "userId": "user_123",
    }
    assert len(stored["messages"]) == 4


def test_curl_examples_and_response_envelope(world: World) -> None:
    with world.client(world.workspace_key, headers={"Content-Type": "application/json"}) as client:
        reply = client.post(
            url(world), json={"message": "Hello, how can you help me?", "stream": False}
        )
        assert reply.status_code == 200
        check_rate_headers(reply)
        body = reply.json()
        assert body["success"] is True and set(body["data"]) >= {
            "response",
            "conversationId",
            "messageId",
        }
        assert body["data"]["response"]
        # "Use the returned conversationId in your next request"
        follow = client.post(
            url(world),
            json={
                "message": "Tell me more about that",
                "conversationId": body["data"]["conversationId"],
            },
        )
        assert follow.status_code == 200
        # The bot streams by default, so this is a stream.
        assert follow.headers["content-type"].startswith("text/event-stream")
        done = [
            json.loads(line[6:]) for line in follow.text.split("\n") if line.startswith("data: {")
        ][-1]
        assert done["conversationId"] == body["data"]["conversationId"]
        # The streaming curl example.
        with connect_sse(
            client, "POST", url(world), json={"message": "Hello!", "stream": True}
        ) as source:
            assert [e.data for e in source.iter_sse()][-1] == "[DONE]"


def test_stream_overrides_the_bots_default(world: World) -> None:
    with world.admin() as admin:
        assert (
            admin.patch(
                f"/v1/bots/{world.bot_id}", json={"model": {"stream_default": False}}
            ).status_code
            == 200
        )
    with world.client(world.workspace_key) as client:
        plain = client.post(url(world), json={"message": "What are your business hours?"})
        assert plain.headers["content-type"].startswith("application/json")
        assert "Monday through Friday" in plain.json()["data"]["response"]
        streamed = client.post(
            url(world), json={"message": "What are your business hours?", "stream": True}
        )
        assert streamed.headers["content-type"].startswith("text/event-stream")
        check_rate_headers(streamed)


def test_slug_and_bot_scoped_keys(world: World) -> None:
    with world.client(world.bot_key) as client:
        assert (
            client.post(
                url(world, "support-bot"), json={"message": "hi", "stream": False}
            ).status_code
            == 200
        )


def _error(
    response: httpx.Response, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"]
    if message is not None:
        assert body["error"] == message
    return body


def test_invalid_api_key(world: World) -> None:
    with world.client("sk-workspace_xxxxxxxxxxxxx") as client:
        _error(
            client.post(url(world), json={"message": "Hello, how can you help me?"}),
            401,
            "INVALID_API_KEY",
            "Invalid or inactive API key",
        )
    with world.client() as client:
        _error(client.post(url(world), json={"message": "hi"}), 401, "INVALID_API_KEY")


def test_chatbot_not_found(world: World) -> None:
    with world.admin() as admin:
        other = admin.post("/v1/bots", json={"name": "Other"}).json()
    with world.client(world.workspace_key) as client:
        _error(
            client.post(url(world, "00000000-0000-7000-8000-000000000000"), json={"message": "hi"}),
            404,
            "CHATBOT_NOT_FOUND",
            "Chatbot not found or access denied",
        )
    with world.client(world.bot_key) as client:  # a key of another bot: the same answer
        _error(
            client.post(url(world, other["id"]), json={"message": "hi"}), 404, "CHATBOT_NOT_FOUND"
        )


def test_rate_limit_exceeded_with_retry_after(start_world: Any) -> None:
    world = start_world(api_rate_limits="3/minute")
    with world.client(world.workspace_key) as client:
        remaining = [
            check_rate_headers(client.post(url(world), json={"message": "hi", "stream": False}))[1]
            for _ in range(3)
        ]
        assert remaining == [2, 1, 0]
        limited = client.post(url(world), json={"message": "hi"})
        body = _error(limited, 429, "RATE_LIMIT_EXCEEDED")
        assert 0 < body["retryAfter"] <= 60 and limited.headers["Retry-After"] == str(
            body["retryAfter"]
        )
        assert (
            limited.headers["X-RateLimit-Remaining"] == "0"
            and limited.headers["X-RateLimit-Limit"] == "3"
        )
    # Per-chatbot limits: a stricter one on the bot wins.
    with world.admin() as admin:
        strict = admin.post(
            "/v1/bots", json={"name": "Strict", "rate_limits": {"per_minute": 1}}
        ).json()
    with world.client(world.workspace_key) as client:
        first = client.post(url(world, strict["id"]), json={"message": "hi", "stream": False})
        assert first.headers["X-RateLimit-Limit"] == "1"
        _error(
            client.post(url(world, strict["id"]), json={"message": "hi"}),
            429,
            "RATE_LIMIT_EXCEEDED",
        )


def test_insufficient_credits(world: World, database_url: str) -> None:
    empty_wallet(database_url)
    with world.client(world.workspace_key) as client:
        for stream in (False, True):
            _error(
                client.post(url(world), json={"message": "hi", "stream": stream}),
                402,
                "INSUFFICIENT_CREDITS",
                "Insufficient credits to generate AI response. Please upgrade your plan.",
            )


def test_validation_errors(world: World) -> None:
    with world.client(world.workspace_key) as client:
        _error(client.post(url(world), json={}), 400, "VALIDATION_ERROR")
        _error(client.post(url(world), json={"message": ""}), 400, "VALIDATION_ERROR")
        _error(
            client.post(url(world), json={"message": "hi", "metadata": "x"}),
            400,
            "VALIDATION_ERROR",
        )
        _error(
            client.post(url(world), content=b"{", headers={"Content-Type": "application/json"}),
            400,
            "VALIDATION_ERROR",
        )
