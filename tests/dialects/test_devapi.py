"""The developer API (seed 003) against a real server: the chat examples (Bearer and body key),
sessions that keep context, the usage and sessions reports, origins, and errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.dialects.conftest import World


def sse(client: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    with connect_sse(client, "POST", "/api/v1/chat", json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        return [(e.event, json.loads(e.data)) for e in source.iter_sse()]


def test_curl_example_with_bearer_key(world: World) -> None:
    with world.client(world.bot_key, headers={"Content-Type": "application/json"}) as client:
        found = sse(client, {"message": "Summarize today’s incidents", "stream": True})
    names = [name for name, _ in found]
    assert names[-1] == "end" and set(names[:-1]) == {"message"}
    assert all(set(data) == {"content"} for name, data in found if name == "message")
    assert found[-1][1]["session_id"].startswith("sess_")


def test_fetch_example_reads_raw_chunks(world: World) -> None:
    with world.client(world.bot_key) as client:
        with client.stream(
            "POST", "/api/v1/chat", json={"message": "Hey!", "stream": True}
        ) as response:
            raw = "".join(chunk for chunk in response.iter_text())
    assert raw.startswith("event: message\ndata: {") and "event: end\ndata: {" in raw


def test_chat_example_with_body_key_and_session(world: World) -> None:
    body = {
        "message": "Summarize the outage playbook",
        "api_key": world.bot_key,
        "session_id": "sess_9Rna21",
        "stream": True,
    }
    with world.client() as client:
        found = sse(client, body)
        assert found[-1][0] == "end" and found[-1][1]["session_id"] == "sess_9Rna21"
        # The same session continues the same conversation, with its context.
        again = sse(client, {**body, "message": "What are your business hours?"})
        assert again[-1][1]["conversation_id"] == found[-1][1]["conversation_id"]
        text = "".join(d["content"] for name, d in again if name == "message")
        assert "Monday through Friday" in text
        other = sse(client, {**body, "session_id": "sess_other"})
        assert other[-1][1]["conversation_id"] != found[-1][1]["conversation_id"]
        plain = client.post("/api/v1/chat", json={**body, "stream": False})
    assert plain.status_code == 200
    reply = plain.json()
    assert reply["success"] is True and reply["session_id"] == "sess_9Rna21"
    assert reply["conversation_id"] == found[-1][1]["conversation_id"]


def test_usage_example(world: World) -> None:
    with world.client() as client:
        for _ in range(2):
            assert (
                client.post(
                    "/api/v1/chat",
                    json={"message": "What are your business hours?", "api_key": world.bot_key},
                ).status_code
                == 200
            )
        usage = client.get(f"/api/v1/usage?api_key={world.bot_key}&start_date=2024-01-01")
    assert usage.status_code == 200
    data = usage.json()
    assert data["success"] is True and set(data) == {"success", "usage", "by_model"}
    totals = data["usage"]
    assert set(totals) == {
        "total_requests",
        "total_input_tokens",
        "total_output_tokens",
        "total_tokens",
        "total_cost",
    }
    assert (
        totals["total_requests"] == 2
        and totals["total_tokens"] == totals["total_input_tokens"] + totals["total_output_tokens"]
    )
    assert totals["total_input_tokens"] > 0 and isinstance(totals["total_cost"], float)
    assert (
        data["by_model"][0]["model"] == "chatwell-offline" and data["by_model"][0]["requests"] == 2
    )
    with world.client(
        world.bot_key
    ) as client:  # Bearer works too; a future start date counts nothing
        assert (
            client.get("/api/v1/usage", params={"start_date": "2999-01-01"}).json()["usage"][
                "total_requests"
            ]
            == 0
        )


def test_sessions_example(world: World) -> None:
    with world.client() as client:
        assert (
            client.post(
                "/api/v1/chat",
                json={
                    "message": "What are your business hours?",
                    "api_key": world.bot_key,
                    "session_id": "sess_9Rna21",
                },
            ).status_code
            == 200
        )
        with world.client(world.workspace_key) as other:
            assert (
                other.post(
                    "/api/v1/chat",
                    json={"message": "hi", "bot_id": world.bot_id, "session_id": "sess_someone"},
                ).status_code
                == 200
            )
        sessions = client.get(f"/api/v1/sessions?api_key={world.bot_key}&include_all=true")
        mine = client.get(f"/api/v1/sessions?api_key={world.bot_key}").json()
    assert sessions.status_code == 200
    data = sessions.json()
    assert data["success"] is True and data["meta"] == {
        "current_page": 1,
        "per_page": 20,
        "has_more": False,
    }
    assert {s["session_id"] for s in data["sessions"]} == {"sess_9Rna21", "sess_someone"}
    session = next(s for s in data["sessions"] if s["session_id"] == "sess_9Rna21")
    assert set(session) >= {"session_id", "last_at", "total_tokens", "preview"}
    assert session["last_at"].endswith("Z") and session["total_tokens"] > 0 and session["preview"]
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert [s["session_id"] for s in mine["sessions"]] == ["sess_9Rna21"]


def test_sessions_pagination(world: World) -> None:
    with world.client() as client:
        for i in range(3):
            client.post(
                "/api/v1/chat",
                json={"message": "hi", "api_key": world.bot_key, "session_id": f"s{i}"},
            )
        page1 = client.get(
            "/api/v1/sessions", params={"api_key": world.bot_key, "per_page": 2}
        ).json()
        page2 = client.get(
            "/api/v1/sessions", params={"api_key": world.bot_key, "per_page": 2, "page": 2}
        ).json()
    assert page1["meta"] == {"current_page": 1, "per_page": 2, "has_more": True}
    assert page2["meta"]["has_more"] is False and len(page2["sessions"]) == 1
    assert {s["session_id"] for s in page1["sessions"] + page2["sessions"]} == {"s0", "s1", "s2"}


def test_allowed_origins_of_the_key(world: World) -> None:
    with world.admin() as admin:
        key = admin.post(
            "/v1/keys",
            json={
                "label": "site",
                "bot_id": world.bot_id,
                "allowed_origins": ["https://app.example.com"],
            },
        ).json()["key"]
    with world.client(key) as client:
        ok = client.post(
            "/api/v1/chat", json={"message": "hi"}, headers={"Origin": "https://app.example.com"}
        )
        assert ok.status_code == 200
        refused = client.post(
            "/api/v1/chat", json={"message": "hi"}, headers={"Origin": "https://evil.example"}
        )
    assert refused.status_code == 403
    assert refused.json() == {
        "success": False,
        "error": refused.json()["error"],
        "code": "origin_not_allowed",
    }


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code and body["error"]


def test_errors(world: World) -> None:
    with world.client() as client:
        _error(client.post("/api/v1/chat", json={"message": "hi"}), 401, "missing_api_key")
        _error(
            client.post("/api/v1/chat", json={"message": "hi", "api_key": "your_api_key"}),
            401,
            "invalid_api_key",
        )
        _error(client.get("/api/v1/usage?api_key=your_api_key"), 401, "invalid_api_key")
        _error(client.get("/api/v1/sessions"), 401, "missing_api_key")
        _error(
            client.post("/api/v1/chat", json={"message": "", "api_key": world.bot_key}),
            400,
            "invalid_request",
        )
        _error(
            client.post(
                "/api/v1/chat",
                json={"message": "hi", "api_key": world.bot_key, "stream": "sometimes"},
            ),
            400,
            "invalid_request",
        )
        _error(
            client.get(f"/api/v1/usage?api_key={world.bot_key}&start_date=yesterday"),
            400,
            "invalid_date",
        )
        _error(
            client.get(f"/api/v1/sessions?api_key={world.bot_key}&per_page=1000"),
            400,
            "invalid_request",
        )
    with world.client(world.workspace_key) as client:
        _error(client.post("/api/v1/chat", json={"message": "hi"}), 400, "bot_required")
        _error(
            client.post("/api/v1/chat", json={"message": "hi", "bot_id": "nope"}),
            404,
            "bot_not_found",
        )
