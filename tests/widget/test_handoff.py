"""Human handoff end to end through the API: presence drives availability, a visitor's request
or insistence moves the chat to a person, the bot stays silent, agent replies reach the visitor
through history polling, resolution gives the chat back to the bot."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import make_bot, make_key

HOURS = "Business hours: we are open Monday through Friday, 9 AM to 5 PM."


def stream_events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(block[len("data: ") :])
        for block in text.strip().split("\n\n")
        if block.startswith("data: ")
    ]


@pytest.fixture
async def bot(client: httpx.AsyncClient, app: FastAPI) -> dict[str, Any]:
    bot = await make_bot(
        client,
        public=True,
        handoff={
            "enabled": True,
            "trigger": "both",
            "offline_message": "We are away; leave your email.",
        },
    )
    await client.post(
        f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Hours", "text": HOURS}
    )
    await app.state.runtime.ingestion.idle()
    return bot


async def ask(
    anon: httpx.AsyncClient,
    bot: dict[str, Any],
    message: str,
    conversation_id: str | None = None,
    session_id: str = "visitor-1",
) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"bot_id": bot["id"], "message": message, "session_id": session_id}
    if conversation_id:
        body["conversation_id"] = conversation_id
    response = await anon.post("/v1/public/chat/stream", json=body)
    assert response.status_code == 200, response.text
    return stream_events(response.text)


async def history(
    anon: httpx.AsyncClient, cid: str, after: str | None = None, session_id: str = "visitor-1"
) -> dict[str, Any]:
    params = {"session_id": session_id, **({"after": after} if after else {})}
    response = await anon.get(f"/v1/public/conversations/{cid}/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_button_handoff_round_trip(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, bot: dict[str, Any]
) -> None:
    config = (await anon_client.get(f"/v1/public/bots/{bot['id']}/config")).json()
    assert config["handoff_enabled"] is True and config["handoff_available"] is False
    done = (await ask(anon_client, bot, "When are you open?"))[-1]
    cid = done["conversation_id"]
    # Nobody online: the visitor gets the offline message, the bot keeps the chat.
    offline = (
        await anon_client.post(
            f"/v1/public/conversations/{cid}/handoff", json={"session_id": "visitor-1"}
        )
    ).json()
    assert offline == {
        "conversation_status": "open",
        "handoff_available": False,
        "message": "We are away; leave your email.",
    }
    # An agent comes online.
    agent = await make_key(client, label="Dana (support)")
    agent_headers = {"Authorization": f"Bearer {agent['key']}"}
    online = await client.post("/v1/agents/presence", json={"online": True}, headers=agent_headers)
    assert online.json()["handoff_available"] is True
    assert (await anon_client.get(f"/v1/public/bots/{bot['id']}/config")).json()[
        "handoff_available"
    ] is True
    # Another session can't hand off this conversation.
    foreign = await anon_client.post(
        f"/v1/public/conversations/{cid}/handoff", json={"session_id": "intruder"}
    )
    assert foreign.status_code == 404
    taken = (
        await anon_client.post(
            f"/v1/public/conversations/{cid}/handoff", json={"session_id": "visitor-1"}
        )
    ).json()
    assert taken == {
        "conversation_status": "pending_human",
        "handoff_available": True,
        "message": None,
    }
    queue = (await client.get("/v1/handoff/queue", headers=agent_headers)).json()["data"]
    assert [c["id"] for c in queue] == [cid] and queue[0]["status"] == "pending_human"
    # While a person holds the chat, the bot is silent but the visitor's message is kept.
    silent = await ask(anon_client, bot, "Are you there?", cid)
    assert [e["type"] for e in silent] == ["notice", "done"] and silent[-1][
        "assistant_message_id"
    ] is None
    seen = await history(anon_client, cid)
    last_id = seen["messages"][-1]["id"]
    assert (
        seen["messages"][-1]["content"] == "Are you there?"
        and seen["conversation_status"] == "pending_human"
    )
    # The agent replies; the visitor's poll gets it.
    reply = await client.post(
        f"/v1/conversations/{cid}/messages",
        json={"content": "Hi, Dana here. How can I help?"},
        headers=agent_headers,
    )
    assert reply.status_code == 201
    polled = await history(anon_client, cid, after=last_id)
    assert [(m["role"], m["content"]) for m in polled["messages"]] == [
        ("agent", "Hi, Dana here. How can I help?")
    ]
    assert polled["conversation_status"] == "human"
    # Resolved: the bot answers again.
    resolved = await client.post(f"/v1/conversations/{cid}/resolve", headers=agent_headers)
    assert resolved.json()["status"] == "resolved"
    back = await ask(anon_client, bot, "When are you open?", cid)
    assert back[-1]["type"] == "done" and back[-1]["assistant_message_id"]
    assert "Monday" in "".join(e["content"] for e in back if e["type"] == "content")
    assert (await history(anon_client, cid))["conversation_status"] == "open"
    # Going offline makes handoff unavailable again.
    await client.post("/v1/agents/presence", json={"online": False}, headers=agent_headers)
    assert (await anon_client.get(f"/v1/public/bots/{bot['id']}/config")).json()[
        "handoff_available"
    ] is False


async def test_auto_handoff_when_the_visitor_insists_or_the_bot_cannot_answer(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, bot: dict[str, Any]
) -> None:
    # Offline: the bot answers that it doesn't know and says nobody is online.
    unknown = await ask(anon_client, bot, "What is the airspeed of an unladen swallow?")
    notices = [e for e in unknown if e["type"] == "notice"]
    assert any(
        n["code"] == "handoff_offline" and n["message"] == "We are away; leave your email."
        for n in notices
    )
    agent = await make_key(client, label="Sam")
    await client.post(
        "/v1/agents/presence",
        json={"online": True},
        headers={"Authorization": f"Bearer {agent['key']}"},
    )
    insisting = await ask(anon_client, bot, "I want to talk to a human", session_id="visitor-2")
    assert [e["type"] for e in insisting][-2:] == ["notice", "done"]
    assert insisting[-2]["code"] == "handoff_requested"
    cid = insisting[-1]["conversation_id"]
    assert (await history(anon_client, cid, session_id="visitor-2"))[
        "conversation_status"
    ] == "pending_human"
    unknown = await ask(
        anon_client, bot, "What is the airspeed of an unladen swallow?", session_id="visitor-3"
    )
    assert any(e.get("code") == "handoff_requested" for e in unknown)


async def test_handoff_rules(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, app: FastAPI
) -> None:
    plain = await make_bot(client, name="No humans", public=True)
    done = (await ask(anon_client, plain, "hello"))[-1]
    refused = await anon_client.post(
        f"/v1/public/conversations/{done['conversation_id']}/handoff",
        json={"session_id": "visitor-1"},
    )
    assert refused.status_code == 403 and refused.json()["error"] == "handoff_disabled"
    # Insisting on a bot that does not hand off just gets an answer.
    assert (await ask(anon_client, plain, "I want a human"))[-1]["assistant_message_id"]
    scoped = await make_key(client, bot_id=plain["id"])
    headers = {"Authorization": f"Bearer {scoped['key']}"}
    assert (
        await client.post("/v1/agents/presence", json={"online": True}, headers=headers)
    ).status_code == 403
    assert (await client.get("/v1/handoff/queue", headers=headers)).status_code == 403
    assert (
        await client.post(
            f"/v1/conversations/{done['conversation_id']}/messages", json={"content": ""}
        )
    ).status_code == 400
    assert (
        await client.post("/v1/conversations/nope/messages", json={"content": "hi"})
    ).status_code == 404


async def test_visitor_feedback_is_owned_by_the_session(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, bot: dict[str, Any]
) -> None:
    done = (await ask(anon_client, bot, "When are you open?"))[-1]
    mid = done["assistant_message_id"]
    liked = await anon_client.post(
        f"/v1/public/messages/{mid}/feedback",
        json={"session_id": "visitor-1", "rating": "positive"},
    )
    assert liked.json() == {"id": mid, "feedback": "positive"}
    assert (await history(anon_client, done["conversation_id"]))["messages"][-1][
        "feedback"
    ] == "positive"
    foreign = await anon_client.post(
        f"/v1/public/messages/{mid}/feedback", json={"session_id": "x", "rating": "negative"}
    )
    assert foreign.status_code == 404 and foreign.json()["error"] == "message_not_found"
    cleared = await anon_client.post(
        f"/v1/public/messages/{mid}/feedback", json={"session_id": "visitor-1", "rating": None}
    )
    assert cleared.json()["feedback"] is None
    bad = await anon_client.post(
        f"/v1/public/messages/{mid}/feedback", json={"session_id": "visitor-1", "rating": "meh"}
    )
    assert bad.status_code == 400
