"""Hostile and malformed input on every dialect door: a 4xx in that dialect's error shape with a
stable code, never a 500, and nothing half-written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.storage.tables import Conversation
from tests.helpers import bearer, count_rows, make_bot, make_key


def chatiq(body: dict[str, Any]) -> str:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def chatbotiq(body: dict[str, Any]) -> str:
    assert isinstance(body["error"], str) and body["message"]
    return body["error"]


def envelope(body: dict[str, Any]) -> str:
    assert body["success"] is False and body["error"] and body["code"]
    return body["code"]


def chatbase(body: dict[str, Any]) -> str:
    assert body["message"] and body["code"]
    return body["code"]


# (name, path, shape, valid body)
DOORS: list[tuple[str, str, Callable[[dict[str, Any]], str], dict[str, Any]]] = [
    ("chatiq", "/api/chat", chatiq, {"message": "hi", "bot_slug": "support-bot", "stream": False}),
    (
        "chatbotiq",
        "/v1/public/chat/stream",
        chatbotiq,
        {"bot_id": "support-bot", "message": "hi", "session_id": "s"},
    ),
    (
        "chatbots_v1",
        "/api/v1/chatbots/support-bot/chat",
        envelope,
        {"message": "hi", "stream": False},
    ),
    ("devapi", "/api/v1/chat", envelope, {"message": "hi"}),
    (
        "chatbase",
        "/api/v1/chat",
        chatbase,
        {"messages": [{"role": "user", "content": "hi"}], "chatbotId": "support-bot"},
    ),
    ("chatbase-manage", "/api/v1/create-chatbot", chatbase, {"chatbotName": "x"}),
]


@pytest.fixture
async def door_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    bot = await make_bot(client, name="Support Bot", slug="support-bot", public=True)
    key = await make_key(client, bot_id=bot["id"])
    client.headers.update(bearer(key["key"]))
    return client


@pytest.fixture
async def workspace_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await make_bot(client, name="Support Bot", slug="support-bot", public=True)
    return client


def key_for(name: str) -> str:
    return "workspace" if name in ("chatbots_v1", "chatbase", "chatbase-manage") else "bot"


@pytest.mark.parametrize(("name", "path", "shape", "valid"), DOORS, ids=[d[0] for d in DOORS])
async def test_hostile_bodies(
    name: str,
    path: str,
    shape: Callable[[dict[str, Any]], str],
    valid: dict[str, Any],
    door_client: httpx.AsyncClient,
    app: FastAPI,
) -> None:
    client = door_client
    if key_for(name) == "workspace":
        client.headers["Authorization"] = "Bearer test-admin-key-0123456789"
    before = await count_rows(app, Conversation)
    cases: list[tuple[dict[str, Any], int, set[str]]] = [
        (
            {"content": b"x" * (2 * 1024 * 1024), "headers": {"Content-Type": "application/json"}},
            413,
            {"payload_too_large", "PAYLOAD_TOO_LARGE"},
        ),
        (
            {"content": b'{"message": ', "headers": {"Content-Type": "application/json"}},
            400,
            {"malformed_json", "invalid_request", "INVALID_REQUEST", "VALIDATION_ERROR"},
        ),
        ({"json": [valid]}, 400, {"invalid_request", "INVALID_REQUEST", "VALIDATION_ERROR"}),
        (
            {"json": {k: ({"$ne": None} if isinstance(v, str) else v) for k, v in valid.items()}},
            400,
            {"invalid_request", "INVALID_REQUEST", "VALIDATION_ERROR"},
        ),
        (
            {
                "content": "\udcff".encode("utf-8", "surrogatepass"),
                "headers": {"Content-Type": "application/json"},
            },
            400,
            {"malformed_json", "invalid_request", "INVALID_REQUEST", "VALIDATION_ERROR"},
        ),
    ]
    for kwargs, status, codes in cases:
        response = await client.post(path, **kwargs)
        assert response.status_code == status, (name, kwargs.get("json"), response.text)
        assert shape(response.json()) in codes, response.text
        assert "Traceback" not in response.text
    # A key that is missing, or hostile, is a 401 (the public door needs none).
    if name != "chatbotiq":
        for header in (
            "",
            "Bearer ",
            "Bearer " + "x" * 5000,
            "Bearer ' OR 1=1 --",
            "Basic dXNlcjpwYXNz",
        ):
            response = await client.post(path, json=valid, headers={"Authorization": header})
            assert response.status_code == 401, (name, header, response.text)
            assert shape(response.json())
    assert await count_rows(app, Conversation) == before


@pytest.mark.parametrize(
    ("name", "path", "shape", "valid"), DOORS[:5], ids=[d[0] for d in DOORS[:5]]
)
async def test_nul_characters_are_refused_and_other_characters_kept(
    name: str,
    path: str,
    shape: Callable[[dict[str, Any]], str],
    valid: dict[str, Any],
    door_client: httpx.AsyncClient,
    app: FastAPI,
) -> None:
    client = door_client
    if key_for(name) == "workspace":
        client.headers["Authorization"] = "Bearer test-admin-key-0123456789"

    def with_message(text: str) -> dict[str, Any]:
        if "messages" in valid:
            return {**valid, "messages": [{"role": "user", "content": text}]}
        return {**valid, "message": text}

    refused = await client.post(path, json=with_message("hi\x00 there"))
    assert refused.status_code == 400 and shape(refused.json()).lower() == "invalid_characters", (
        refused.text
    )
    assert (await client.post(path + "?x=%00", json=valid)).status_code == 400
    kept = await client.post(
        path, json=with_message("hi \u202e<script>alert(1)</script> \U0001f600 ' OR 1=1 --")
    )
    assert kept.status_code == 200, kept.text


async def test_nul_characters_in_native_writes_are_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    for path, body in (
        ("/v1/bots", {"name": "Nul\x00Bot"}),
        (f"/v1/bots/{bot['id']}/sources", {"type": "text", "title": "t", "text": "x\x00y"}),
        ("/v1/keys", {"label": "l\x00"}),
        (f"/v1/bots/{bot['id']}/chat", {"message": "hi", "metadata": {"k": "v\x00"}}),
    ):
        response = await client.post(path, json=body)
        assert (
            response.status_code == 400 and response.json()["error"]["code"] == "invalid_characters"
        ), response.text
    assert (await client.get("/v1/bots/%00")).status_code == 400
    assert (await client.get("/v1/conversations", params={"bot_id": "a\x00"})).status_code == 400
    upload = await client.post(
        f"/v1/bots/{bot['id']}/sources",
        files={"file": ("notes\x00.txt", b"Plain notes.", "text/plain")},
    )
    assert upload.status_code == 202 and "\x00" not in upload.json()["title"]
    assert await count_rows(app, Conversation) == 0
