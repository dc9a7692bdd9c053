"""Session namespaces: a client-chosen session id never reaches across doors, keys or visitors.

The attack (issue 19, item 1): the developer API's ``session_id``, Chatbase's and the chatbots
API's ``conversationId`` continued "the latest conversation of the bot under that id", and the
widget stored its own client-chosen ``session_id`` in the same place. A visitor who chatted as
``user-42`` received an app's next turns, and read the app's conversation without a key.

The matrix: every actor that takes a client-chosen id (door × key kind: the developer API,
Chatbase, the chatbots API, Dify, Flowise keyed and keyless, and the public widget) against every
other. Actor A opens a conversation under id X, actor B talks under X, A talks
again under X. Then A's conversation holds exactly A's two turns, B's holds B's one (continuing
in one's own namespace still works, nothing joins across), and where A is keyed, the public
history, feedback, handoff and lead routes answer 404 for A's conversation under X.

Server-issued conversation ids (native, OpenAI, ChatIQ, the chatbots API) are checked too: a
key never joins a visitor's conversation and a visitor never a keyed one; a bot key only its own.
"""

from __future__ import annotations

import itertools
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


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(
        api_rate_limits=GENEROUS, public_rate_limits=GENEROUS, history_rate_limits=GENEROUS
    )


@dataclass
class Setup:
    bot_id: str
    keys: dict[str, str]  # actor caller name -> secret
    key_ids: dict[str, str]


@pytest.fixture
async def owner(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, ADMIN_KEY) as client:
        yield client


@pytest.fixture
async def setup(owner: httpx.AsyncClient) -> Setup:
    bot = (
        await owner.post(
            "/v1/bots",
            json={
                "name": "Namespaces",
                "slug": "namespaces",
                "public": True,
                "contact_form": {"enabled": True},
                "handoff": {"enabled": True, "trigger": "button"},
            },
        )
    ).json()
    added = await owner.post(
        "/v1/bots/namespaces/sources",
        json={
            "type": "text",
            "title": "Hours",
            "text": "The office opens at nine and ships parcels on Mondays.",
        },
    )
    assert added.status_code == 202, added.text
    await wait_sources_ready(owner, "namespaces")
    keys, key_ids = {}, {}
    for name, body in (
        ("bot1", {"bot_id": bot["id"]}),
        ("bot2", {"bot_id": bot["id"]}),
        ("workspace", {}),
    ):
        made = await owner.post("/v1/keys", json={"label": name, **body})
        assert made.status_code == 201, made.text
        keys[name], key_ids[name] = made.json()["key"], made.json()["id"]
    return Setup(bot["id"], keys, key_ids)


def public_frames(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


@dataclass
class Actor:
    """A door and the caller on it; ``say`` sends one turn under the client id ``x``."""

    door: str
    caller: str  # a key name of Setup.keys, or "visitor"

    @property
    def name(self) -> str:
        return f"{self.door}/{self.caller}"

    async def say(
        self, app: FastAPI, setup: Setup, x: str, text: str, state: dict[str, str]
    ) -> None:
        key = setup.keys.get(self.caller)
        async with client_for(app, key) as client:
            if self.door == "devapi":
                body: dict[str, Any] = {"message": text, "session_id": x}
                if self.caller == "workspace":
                    body["bot_id"] = setup.bot_id
                reply = await client.post("/api/v1/chat", json=body)
            elif self.door == "chatbase":
                reply = await client.post(
                    "/api/v1/chat",
                    json={
                        "messages": [{"role": "user", "content": text}],
                        "chatbotId": setup.bot_id,
                        "conversationId": x,
                    },
                )
            elif self.door == "chatbots_v1":
                reply = await client.post(
                    f"/api/v1/chatbots/{setup.bot_id}/chat",
                    json={"message": text, "conversationId": x, "stream": False},
                )
            elif self.door == "flowise":  # keyless on a public bot: the flowise:public namespace
                reply = await client.post(
                    f"/api/v1/prediction/{setup.bot_id}",
                    json={"question": text, "overrideConfig": {"sessionId": x}},
                )
            elif (
                self.door == "dify"
            ):  # Dify's user names the end user; the conversation id continues
                body = {"query": text, "inputs": {}, "user": x, "response_mode": "blocking"}
                if x in state:
                    body["conversation_id"] = state[x]
                reply = await client.post("/dify/v1/chat-messages", json=body)
                assert reply.status_code == 200, (self.name, reply.text)
                state[x] = reply.json()["conversation_id"]
                return
            else:  # the widget keeps the conversation id it was given, under its session id
                body = {"bot_id": setup.bot_id, "message": text, "session_id": x}
                if x in state:
                    body["conversation_id"] = state[x]
                done = public_frames(await client.post("/v1/public/chat/stream", json=body))[-1]
                assert done["type"] == "done", done
                state[x] = done["conversation_id"]
                return
        assert reply.status_code == 200, (self.name, reply.text)


ACTORS = [
    Actor("devapi", "bot1"),
    Actor("devapi", "bot2"),
    Actor("devapi", "workspace"),
    Actor("chatbase", "workspace"),
    Actor("chatbase", "bot1"),
    Actor("chatbots_v1", "workspace"),
    Actor("chatbots_v1", "bot1"),
    Actor("chatbots_v1", "bot2"),
    Actor("dify", "bot1"),
    Actor("dify", "bot2"),
    Actor("flowise", "workspace"),
    Actor("flowise", "visitor"),
    Actor("widget", "visitor"),
]


async def conversations_under(
    owner: httpx.AsyncClient, bot_id: str, x: str
) -> list[dict[str, Any]]:
    """Every conversation of the bot kept under client id ``x``, with its messages."""
    found, cursor = [], None
    while True:
        page = (
            await owner.get(
                "/v1/conversations",
                params={"bot_id": bot_id, "limit": 100, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        found += [c for c in page["data"] if c["session_id"] == x]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    return [(await owner.get(f"/v1/conversations/{c['id']}")).json() for c in found]


def user_turns(conversation: dict[str, Any]) -> list[str]:
    return [m["content"] for m in conversation["messages"] if m["role"] == "user"]


_addresses = itertools.count(1)


async def lead_from_new_address(app: FastAPI, body: dict[str, Any]) -> httpx.Response:
    """A lead submission from an address of its own (the form allows 10 a minute per address)."""
    n = next(_addresses)
    transport = httpx.ASGITransport(
        app=app, client=(f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", 40000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as visitor:
        return await visitor.post("/v1/public/leads", json=body)


async def public_reach(
    app: FastAPI, setup: Setup, conversation: dict[str, Any], x: str
) -> list[str]:
    """The public routes that let a visitor presenting ``x`` at ``conversation`` (all must not)."""
    cid = conversation["id"]
    answer = next(m["id"] for m in conversation["messages"] if m["role"] == "assistant")
    reached = []
    async with client_for(app) as visitor:
        probes = [
            (
                "history",
                await visitor.get(
                    f"/v1/public/conversations/{cid}/messages", params={"session_id": x}
                ),
            ),
            (
                "events",
                await visitor.get(
                    f"/v1/public/conversations/{cid}/events",
                    params={"session_id": x, "after": answer},
                ),
            ),
            (
                "feedback",
                await visitor.post(
                    f"/v1/public/messages/{answer}/feedback",
                    json={"session_id": x, "rating": "negative"},
                ),
            ),
            (
                "handoff",
                await visitor.post(
                    f"/v1/public/conversations/{cid}/handoff", json={"session_id": x}
                ),
            ),
            (
                "lead",
                await lead_from_new_address(
                    app,
                    {
                        "bot_id": setup.bot_id,
                        "session_id": x,
                        "conversation_id": cid,
                        "email": "v@example.com",
                    },
                ),
            ),
            (
                "continue",
                await visitor.post(
                    "/v1/public/chat/stream",
                    json={
                        "bot_id": setup.bot_id,
                        "message": "and now?",
                        "session_id": x,
                        "conversation_id": cid,
                    },
                ),
            ),
        ]
    for name, response in probes:
        if response.status_code != 404 or "not_found" not in response.text.lower():
            reached.append(f"{name}: {response.status_code} {response.text[:120]}")
    return reached


async def test_no_door_continues_or_reads_another_namespace(
    app: FastAPI, owner: httpx.AsyncClient, setup: Setup
) -> None:
    failures: list[str] = []
    state: dict[str, str] = {}
    for n, (a, b) in enumerate(itertools.permutations(ACTORS, 2)):
        x = f"user-{n}"
        await a.say(app, setup, x, f"{x} alpha one", state)
        await b.say(app, setup, x, f"{x} bravo", {})
        await a.say(app, setup, x, f"{x} alpha two", state)
        state.pop(x, None)
        found = {tuple(user_turns(c)): c for c in await conversations_under(owner, setup.bot_id, x)}
        expected = {(f"{x} alpha one", f"{x} alpha two"), (f"{x} bravo",)}
        if set(found) != expected:
            failures.append(
                f"{a.name} then {b.name}: conversations under {x!r} hold {sorted(found)}"
            )
            continue
        mine = found[(f"{x} alpha one", f"{x} alpha two")]
        if a.caller != "visitor":
            failures += [
                f"{a.name}'s conversation from the public door: {r}"
                for r in await public_reach(app, setup, mine, x)
            ]
    assert not failures, "\n".join(failures)


async def native_turn(
    app: FastAPI, key: str, bot_id: str, conversation_id: str | None = None
) -> httpx.Response:
    async with client_for(app, key) as client:
        body: dict[str, Any] = {"message": "When does the office open?", "stream": False}
        if conversation_id:
            body["conversation_id"] = conversation_id
        return await client.post(f"/v1/bots/{bot_id}/chat", json=body)


async def visitor_conversation(app: FastAPI, setup: Setup, session_id: str) -> str:
    async with client_for(app) as visitor:
        return public_frames(
            await visitor.post(
                "/v1/public/chat/stream",
                json={
                    "bot_id": setup.bot_id,
                    "message": "Hello from the widget",
                    "session_id": session_id,
                },
            )
        )[-1]["conversation_id"]


async def keyed_continue(
    app: FastAPI, door: str, key: str, bot_id: str, conversation_id: str
) -> httpx.Response:
    async with client_for(app, key) as client:
        if door == "native":
            return await client.post(
                f"/v1/bots/{bot_id}/chat",
                json={"message": "continue", "stream": False, "conversation_id": conversation_id},
            )
        if door == "openai":
            return await client.post(
                "/v1/chat/completions",
                json={
                    "model": "namespaces",
                    "messages": [{"role": "user", "content": "continue"}],
                    "conversation_id": conversation_id,
                },
            )
        assert door == "chatiq"
        return await client.post(
            "/api/chat",
            json={
                "message": "continue",
                "bot_slug": "namespaces",
                "stream": False,
                "conversation_id": conversation_id,
            },
        )


@pytest.mark.parametrize("door", ["native", "openai", "chatiq"])
async def test_a_key_never_joins_a_visitors_conversation(
    app: FastAPI, owner: httpx.AsyncClient, setup: Setup, door: str
) -> None:
    cid = await visitor_conversation(app, setup, "visitor-uuid")
    for caller in ("bot1", "workspace", "owner"):
        key = ADMIN_KEY if caller == "owner" else setup.keys[caller]
        reply = await keyed_continue(app, door, key, setup.bot_id, cid)
        assert reply.status_code == 404, (caller, reply.text)
        assert "not_found" in reply.text.lower()
    held = (await owner.get(f"/v1/conversations/{cid}")).json()
    assert user_turns(held) == ["Hello from the widget"]


async def test_the_chatbots_api_treats_a_visitors_conversation_id_as_a_new_client_id(
    app: FastAPI, owner: httpx.AsyncClient, setup: Setup
) -> None:
    cid = await visitor_conversation(app, setup, "visitor-v1")
    async with client_for(app, setup.keys["workspace"]) as client:
        reply = await client.post(
            f"/api/v1/chatbots/{setup.bot_id}/chat",
            json={"message": "continue", "conversationId": cid, "stream": False},
        )
    assert reply.status_code == 200, reply.text
    assert user_turns((await owner.get(f"/v1/conversations/{cid}")).json()) == [
        "Hello from the widget"
    ]


async def test_a_bot_key_continues_only_its_own_conversations_by_id(
    app: FastAPI, owner: httpx.AsyncClient, setup: Setup
) -> None:
    opened = await native_turn(app, setup.keys["bot1"], setup.bot_id)
    assert opened.status_code == 200, opened.text
    cid = opened.json()["conversation_id"]
    assert (await native_turn(app, setup.keys["bot2"], setup.bot_id, cid)).status_code == 404
    for key in (
        setup.keys["bot1"],
        setup.keys["workspace"],
        ADMIN_KEY,
    ):  # the opener, and the workspace
        assert (await native_turn(app, key, setup.bot_id, cid)).status_code == 200
    conversation = (await owner.get(f"/v1/conversations/{cid}")).json()
    assert len(user_turns(conversation)) == 4
    assert conversation["session_scope"] == f"native:key:{setup.key_ids['bot1']}"


async def test_a_visitor_never_reaches_a_keyed_conversation_by_its_id(
    app: FastAPI, owner: httpx.AsyncClient, setup: Setup
) -> None:
    """The exact attack: the app's conversation of ``user-42``, its id learnt, read and continued
    by a visitor presenting ``user-42``."""
    async with client_for(app, setup.keys["bot1"]) as app_client:
        made = await app_client.post(
            "/api/v1/chat", json={"message": "my order 1234", "session_id": "user-42"}
        )
    assert made.status_code == 200, made.text
    keyed = (await owner.get(f"/v1/conversations/{made.json()['conversation_id']}")).json()
    assert keyed["session_scope"] == f"devapi:key:{setup.key_ids['bot1']}"
    assert await public_reach(app, setup, keyed, "user-42") == []
    # A visitor chatting as user-42 opens its own conversation; the app's next turn stays the app's.
    await visitor_conversation(app, setup, "user-42")
    async with client_for(app, setup.keys["bot1"]) as app_client:
        again = await app_client.post(
            "/api/v1/chat", json={"message": "and my refund?", "session_id": "user-42"}
        )
    assert again.json()["conversation_id"] == keyed["id"]
    assert user_turns((await owner.get(f"/v1/conversations/{keyed['id']}")).json()) == [
        "my order 1234",
        "and my refund?",
    ]


async def test_the_visitor_export_can_name_one_namespace(
    app: FastAPI, owner: httpx.AsyncClient, setup: Setup
) -> None:
    await visitor_conversation(app, setup, "user-7")
    async with client_for(app, setup.keys["bot1"]) as app_client:
        assert (
            await app_client.post("/api/v1/chat", json={"message": "hi", "session_id": "user-7"})
        ).status_code == 200
    both = (await owner.get("/v1/conversations/export", params={"session_id": "user-7"})).json()
    assert sorted(c["session_scope"] for c in both["conversations"]) == [
        "chatbotiq:public",
        f"devapi:key:{setup.key_ids['bot1']}",
    ]
    widget = (
        await owner.get(
            "/v1/conversations/export",
            params={"session_id": "user-7", "session_scope": "chatbotiq:public"},
        )
    ).json()
    assert [c["channel"] for c in widget["conversations"]] == ["chatbotiq"]
