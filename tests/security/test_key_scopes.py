"""Key scopes: a bot key (the kind handed to a website) chats; transcripts and leads need more.

Issue 19, items 2 and 3: a bot key read every visitor transcript of its bot, deleted them and
overwrote visitors' feedback, and Chatbase's ``get-leads`` gave it names, emails and phones.

The matrix: every route that reads or deletes conversations, sets feedback or reads leads, on
every door, × every kind of key — the owner key, a workspace key, a bot key with the default
``chat`` only, a bot key granted exactly the route's scope, and one granted another scope. Keys
without the scope get ``403 insufficient_scope`` in the door's own shape and none of the data;
keys with it get the route's documented answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.security.tenants import client_for, wait_sources_ready

GENEROUS = "100000/minute"
MARKER = "Zephyrine"
EMAIL = "zephyrine@visitor.example"
READ, WRITE, LEADS = "conversations:read", "conversations:write", "leads:read"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(
        api_rate_limits=GENEROUS, public_rate_limits=GENEROUS, history_rate_limits=GENEROUS
    )


@dataclass
class Bed:
    bot_id: str
    keys: dict[str, str]  # key kind -> secret
    conversation_id: str
    message_id: str


@pytest.fixture
async def owner(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, ADMIN_KEY) as client:
        yield client


async def new_key(owner: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    made = await owner.post("/v1/keys", json={"label": "k", **body})
    assert made.status_code == 201, made.text
    return made.json()


async def keyed_conversation(owner: httpx.AsyncClient, bot_id: str) -> tuple[str, str]:
    chat = await owner.post(
        f"/v1/bots/{bot_id}/chat", json={"message": f"Where is {MARKER}?", "stream": False}
    )
    assert chat.status_code == 200, chat.text
    return chat.json()["conversation_id"], chat.json()["message_id"]


@pytest.fixture
async def base(app: FastAPI, owner: httpx.AsyncClient) -> Bed:
    """The bot, a lead, a keyed conversation; the owner, a workspace and a default bot key."""
    bot = (
        await owner.post(
            "/v1/bots",
            json={
                "name": "Scopes",
                "slug": "scopes",
                "public": True,
                "contact_form": {"enabled": True},
            },
        )
    ).json()
    added = await owner.post(
        "/v1/bots/scopes/sources",
        json={
            "type": "text",
            "title": "Where",
            "text": f"{MARKER} lives by the sea and answers letters on Fridays.",
        },
    )
    assert added.status_code == 202, added.text
    await wait_sources_ready(owner, "scopes")
    async with client_for(app) as visitor:
        lead = await visitor.post(
            "/v1/public/leads",
            json={
                "bot_id": bot["id"],
                "session_id": "v1",
                "name": f"{MARKER} Visitor",
                "email": EMAIL,
            },
        )
        assert lead.status_code == 201, lead.text
    keys = {
        "owner": ADMIN_KEY,
        "workspace": (await new_key(owner))["key"],
        "bot:chat": (await new_key(owner, bot_id=bot["id"]))["key"],
    }
    conversation_id, message_id = await keyed_conversation(owner, bot["id"])
    return Bed(bot["id"], keys, conversation_id, message_id)


@pytest.fixture
async def bed(owner: httpx.AsyncClient, base: Bed) -> Bed:
    """``base`` and a bot key granted each scope (with chat)."""
    for scope in (READ, WRITE, LEADS):
        base.keys[f"bot:{scope}"] = (
            await new_key(owner, bot_id=base.bot_id, scopes=["chat", scope])
        )["key"]
    return base


@dataclass(frozen=True)
class Route:
    """One route; ``{bot}``, ``{conversation}`` and ``{message}`` are filled from the bed."""

    method: str
    path: str
    scope: str | None  # None: a workspace key only, whatever a bot key was granted
    params: dict[str, Any] | None = None
    json: Any = None
    ok: int = 200
    shows: str | None = MARKER  # what an allowed answer contains (and a refused one must not)
    fresh_conversation: bool = False  # it deletes: each call gets its own conversation


ROUTES = [
    Route("GET", "/v1/conversations", READ, params={"bot_id": "{bot}"}),
    Route("GET", "/v1/conversations", READ),
    Route("GET", "/v1/conversations/{conversation}", READ),
    Route("GET", "/api/v1/get-conversations", READ, params={"chatbotId": "{bot}"}),
    Route("GET", "/api/v1/sessions", READ, params={"include_all": "true"}),
    Route(
        "GET", "/api/v1/sessions", READ, shows=None
    ),  # the key's own sessions: every visitor's of its site
    Route(
        "DELETE",
        "/v1/conversations/{conversation}",
        WRITE,
        ok=204,
        shows=None,
        fresh_conversation=True,
    ),
    Route(
        "POST",
        "/v1/messages/{message}/feedback",
        WRITE,
        json={"rating": "negative", "comment": "no"},
        shows=None,
    ),
    Route("GET", "/v1/bots/{bot}/leads", LEADS, shows=EMAIL),
    Route("GET", "/v1/bots/{bot}/leads.csv", LEADS, shows=EMAIL),
    Route("GET", "/api/v1/get-leads", LEADS, params={"chatbotId": "{bot}"}, shows=EMAIL),
    Route(
        "GET",
        "/v1/conversations/export",
        None,
        params={"session_id": "v1", "email": EMAIL},
        shows=EMAIL,
    ),
]
KINDS = ["owner", "workspace", "bot:chat", f"bot:{READ}", f"bot:{WRITE}", f"bot:{LEADS}"]


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def allowed(route: Route, kind: str) -> bool:
    if kind in ("owner", "workspace"):
        return True
    return route.scope is not None and kind == f"bot:{route.scope}"


async def test_every_transcript_feedback_and_lead_route_needs_its_scope(
    app: FastAPI, owner: httpx.AsyncClient, bed: Bed
) -> None:
    failures = []
    for route in ROUTES:
        for kind in KINDS:
            names = {
                "bot": bed.bot_id,
                "conversation": bed.conversation_id,
                "message": bed.message_id,
            }
            if route.fresh_conversation:
                names["conversation"], names["message"] = await keyed_conversation(
                    owner, bed.bot_id
                )
            async with client_for(app, bed.keys[kind]) as client:
                response = await client.request(
                    route.method,
                    fill(route.path, names),
                    params=fill(route.params, names),
                    json=route.json,
                )
            label = f"{route.method} {route.path} {route.params or ''} with {kind}"
            if allowed(route, kind):
                if response.status_code != route.ok or (
                    route.shows and route.shows not in response.text
                ):
                    failures.append(f"{label}: {response.status_code} {response.text[:150]}")
                continue
            if response.status_code != 403 or "insufficient_scope" not in response.text:
                failures.append(
                    f"{label}: not refused: {response.status_code} {response.text[:150]}"
                )
            if MARKER in response.text or EMAIL in response.text:
                failures.append(f"{label}: the refusal shows data")
            if route.fresh_conversation:  # refused means untouched
                kept = await owner.get(f"/v1/conversations/{names['conversation']}")
                if kept.status_code != 200:
                    failures.append(f"{label}: refused, yet the conversation is gone")
    assert not failures, "\n".join(failures)


async def test_a_refused_feedback_leaves_the_visitors_rating(
    app: FastAPI, owner: httpx.AsyncClient, base: Bed
) -> None:
    bed = base
    rated = await owner.post(f"/v1/messages/{bed.message_id}/feedback", json={"rating": "positive"})
    assert rated.status_code == 200
    async with client_for(app, bed.keys["bot:chat"]) as site:
        refused = await site.post(
            f"/v1/messages/{bed.message_id}/feedback", json={"rating": "negative"}
        )
    assert refused.status_code == 403
    messages = (await owner.get(f"/v1/conversations/{bed.conversation_id}")).json()["messages"]
    assert [m["feedback"] for m in messages if m["id"] == bed.message_id] == ["positive"]


async def test_chatbase_get_leads_refuses_a_bot_key_in_its_own_shape(
    app: FastAPI, base: Bed
) -> None:
    """Item 2 exactly: the document's call, with the key a website holds."""
    bed = base
    async with client_for(app, bed.keys["bot:chat"]) as site:
        refused = await site.get("/api/v1/get-leads", params={"chatbotId": bed.bot_id})
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "insufficient_scope" and body["message"] and EMAIL not in refused.text
    assert body["details"] == {"required_scope": LEADS}


async def test_scopes_are_granted_at_creation_and_listed(
    owner: httpx.AsyncClient, bed: Bed
) -> None:
    listed = {k["label"]: k for k in (await owner.get("/v1/keys")).json()["data"]}
    scopes = sorted(tuple(k["scopes"]) for k in (await owner.get("/v1/keys")).json()["data"])
    assert ("chat",) in scopes and ("chat", READ) in scopes and ("chat", LEADS) in scopes
    assert all(
        k["scopes"] == ["chat", READ, WRITE, LEADS]
        for k in listed.values()
        if k["scope"] == "workspace"
    )
    made = await new_key(
        owner, bot_id=bed.bot_id, scopes=[LEADS]
    )  # no chat: it may read leads only
    assert made["scopes"] == [LEADS]
    for body, code in (
        ({"bot_id": bed.bot_id, "scopes": ["admin"]}, "invalid_scope"),
        ({"scopes": [READ]}, "invalid_scope"),
        ({"bot_id": bed.bot_id, "scopes": "chat"}, "invalid_request"),
    ):
        refused = await owner.post("/v1/keys", json={"label": "bad", **body})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code, refused.text


async def test_a_key_without_chat_cannot_chat_on_any_door(
    app: FastAPI, owner: httpx.AsyncClient, bed: Bed
) -> None:
    key = (await new_key(owner, bot_id=bed.bot_id, scopes=[LEADS]))["key"]
    calls = [
        ("/v1/bots/scopes/chat", {"message": "hi", "stream": False}),
        ("/v1/bots/scopes/search", {"query": "sea"}),
        (
            "/v1/chat/completions",
            {"model": "scopes", "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("/api/chat", {"message": "hi", "bot_slug": "scopes", "stream": False}),
        ("/api/v1/chat", {"message": "hi"}),
        ("/api/v1/chat", {"messages": [{"role": "user", "content": "hi"}], "chatbotId": "scopes"}),
        ("/api/v1/chatbots/scopes/chat", {"message": "hi", "stream": False}),
    ]
    async with client_for(app, key) as client:
        for path, body in calls:
            refused = await client.post(path, json=body)
            assert refused.status_code == 403, (path, refused.text)
            assert "insufficient_scope" in json.dumps(refused.json()).lower(), (path, refused.text)
        assert (await client.get("/v1/bots/scopes/leads")).status_code == 200
