"""ChatIQ (seed 000) against a real server: every example of the document, then every error row.

The examples are sent exactly as written (only the base URL and key differ); streams are read
with httpx-sse, and once more the way the document's JavaScript reader does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.dialects.conftest import World

ASK = {"message": "What are your business hours?", "bot_slug": "support-bot"}


def stream_frames(client: httpx.Client, body: dict[str, Any]) -> list[str]:
    with connect_sse(client, "POST", "/api/chat", json=body) as source:
        assert source.response.status_code == 200
        return [event.data for event in source.iter_sse()]


def stored_conversations(world: World) -> list[dict[str, Any]]:
    with world.admin() as admin:
        return admin.get("/v1/conversations", params={"limit": 100}).json()["data"]


def test_request_body_example_json_mode(world: World) -> None:
    body = {
        "message": "What are your business hours?",
        "bot_slug": "support-bot",
        "stream": False,
        "history": [],
        "conversation_id": None,
        "private_mode": False,
    }
    with world.client(world.bot_key, headers={"Content-Type": "application/json"}) as client:
        reply = client.post("/api/chat", json=body)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    data = reply.json()
    assert set(data) >= {"response", "conversationId"}
    assert "Monday through Friday" in data["response"]
    assert len(data["conversationId"]) == 36


def test_curl_fetch_and_python_examples(world: World) -> None:
    # cURL, JavaScript fetch and Python requests all send this body and read `response`.
    with world.client(world.bot_key) as client:
        for _ in range(2):
            reply = client.post(
                "/api/chat",
                content=json.dumps({**ASK, "stream": False}),
                headers={"Content-Type": "application/json"},
            )
            assert reply.status_code == 200
            assert "9 AM to 5 PM" in reply.json()["response"]


def test_streaming_example(world: World) -> None:
    with world.client(world.bot_key) as client:
        frames = stream_frames(client, {**ASK, "stream": True})
    assert frames[-1] == "[DONE]"
    parsed = [json.loads(f) for f in frames[:-1]]
    content = [p["choices"][0]["delta"]["content"] for p in parsed if "choices" in p]
    assert len(content) >= 2 and "Monday through Friday" in "".join(content)
    assert parsed[-1]["conversationId"] and len(parsed[-1]["conversationId"]) == 36
    assert all("choices" in p for p in parsed[:-1])


def test_stream_is_the_default_and_the_document_reader_gets_the_text(world: World) -> None:
    with world.client(world.bot_key) as client:
        response = client.post("/api/chat", json=ASK)
    assert response.headers["content-type"].startswith("text/event-stream")
    # The document's JavaScript reader, line by line.
    written = []
    for line in response.text.split("\n"):
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                break
            parsed = json.loads(data)
            if parsed.get("choices", [{}])[0].get("delta", {}).get("content"):
                written.append(parsed["choices"][0]["delta"]["content"])
    assert "Monday through Friday" in "".join(written)


def test_private_mode_example_stores_nothing_and_returns_no_conversation(world: World) -> None:
    before = stored_conversations(world)
    with world.client(world.bot_key) as client:
        frames = stream_frames(client, {**ASK, "private_mode": True})
        assert frames[-1] == "[DONE]"
        parsed = [json.loads(f) for f in frames[:-1]]
        assert all("conversationId" not in p for p in parsed)
        assert "Monday" in "".join(p["choices"][0]["delta"]["content"] for p in parsed)
        reply = client.post("/api/chat", json={**ASK, "private_mode": True, "stream": False}).json()
    assert "conversationId" not in reply and "Monday" in reply["response"]
    assert stored_conversations(world) == before


def test_continuing_conversation_example_returns_the_same_id(world: World) -> None:
    with world.client(world.bot_key) as client:
        first = client.post("/api/chat", json={**ASK, "stream": False}).json()
        follow_up = {
            "message": "What about weekends?",
            "bot_slug": "support-bot",
            "conversation_id": first["conversationId"],
            "history": [
                {"role": "user", "content": "What are your business hours?"},
                {"role": "assistant", "content": first["response"]},
            ],
            "stream": False,
        }
        second = client.post("/api/chat", json=follow_up)
    assert second.status_code == 200
    assert second.json()["conversationId"] == first["conversationId"]
    assert "weekend" in second.json()["response"].lower()
    with world.admin() as admin:
        stored = admin.get(f"/v1/conversations/{first['conversationId']}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert stored["channel"] == "chatiq"


def test_workspace_key_reaches_the_bot_by_slug(world: World) -> None:
    with world.client(world.workspace_key) as client:
        assert client.post("/api/chat", json={**ASK, "stream": False}).status_code == 200


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


def test_400_bad_request(world: World) -> None:
    with world.client(world.bot_key) as client:
        _error(client.post("/api/chat", json={"bot_slug": "support-bot"}), 400, "INVALID_REQUEST")
        _error(
            client.post("/api/chat", json={**ASK, "stream": "sometimes"}), 400, "INVALID_REQUEST"
        )
        _error(client.post("/api/chat", json={**ASK, "message": ""}), 400, "INVALID_REQUEST")
        _error(
            client.post(
                "/api/chat", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            400,
            "INVALID_REQUEST",
        )
        _error(
            client.post("/api/chat", json={**ASK, "conversation_id": "not-a-uuid"}),
            400,
            "INVALID_REQUEST",
        )
        _error(
            client.post("/api/chat", json={**ASK, "message": "x" * 9000}), 400, "INVALID_REQUEST"
        )


def test_401_invalid_or_missing_key(world: World) -> None:
    with world.client() as anonymous:
        body = _error(anonymous.post("/api/chat", json=ASK), 401, "INVALID_API_KEY")
        assert body["error"]["details"] == {}
    with world.client("sk_live_your_api_key_here") as wrong:
        _error(wrong.post("/api/chat", json=ASK), 401, "INVALID_API_KEY")
    with world.admin() as admin:
        key = admin.post("/v1/keys", json={"label": "gone", "bot_id": world.bot_id}).json()
        assert admin.delete(f"/v1/keys/{key['id']}").status_code == 204
    with world.client(key["key"]) as revoked:
        _error(revoked.post("/api/chat", json=ASK), 401, "INVALID_API_KEY")


def test_a_bot_key_reaches_only_its_bot(world: World) -> None:
    with world.admin() as admin:
        assert (
            admin.post("/v1/bots", json={"name": "Other", "slug": "other-bot"}).status_code == 201
        )
    with world.client(world.bot_key) as client:
        _error(
            client.post("/api/chat", json={**ASK, "bot_slug": "other-bot"}),
            403,
            "BOT_ACCESS_DENIED",
        )
        _error(
            client.post("/api/chat", json={**ASK, "bot_slug": "no-such-bot"}),
            403,
            "BOT_ACCESS_DENIED",
        )
    with world.client(world.workspace_key) as client:
        _error(
            client.post("/api/chat", json={**ASK, "bot_slug": "no-such-bot"}), 404, "BOT_NOT_FOUND"
        )


def test_429_daily_message_limit_per_key(world: World) -> None:
    with world.admin() as admin:
        key = admin.post(
            "/v1/keys",
            json={"label": "free plan", "bot_id": world.bot_id, "daily_message_limit": 3},
        ).json()["key"]
    with world.client(key) as client:
        for _ in range(3):
            assert client.post("/api/chat", json={**ASK, "stream": False}).status_code == 200
        limited = client.post("/api/chat", json={**ASK, "stream": False})
        body = _error(limited, 429, "RATE_LIMIT_EXCEEDED")
        assert 0 < int(limited.headers["Retry-After"]) <= 86_400
        assert body["error"]["details"]["retry_after"] == int(limited.headers["Retry-After"])
        # A streaming request is refused before the stream opens.
        assert client.post("/api/chat", json=ASK).status_code == 429
    # Another key's quota is its own.
    with world.client(world.bot_key) as client:
        assert client.post("/api/chat", json={**ASK, "stream": False}).status_code == 200


def test_500_when_the_model_fails(start_world: Any) -> None:
    from tests.services import free_port

    world = start_world(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="gone")
    with world.client(world.bot_key) as client:
        _error(client.post("/api/chat", json={**ASK, "stream": False}), 500, "UPSTREAM_UNAVAILABLE")
        frames = stream_frames(client, ASK)
    assert frames[-1] == "[DONE]"
    assert json.loads(frames[-2])["error"]["code"] == "UPSTREAM_UNAVAILABLE"
