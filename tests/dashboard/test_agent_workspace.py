"""The agent workspace's server side (issue 23 items 1-3): an explicit request for a person is a
handoff or the offline message (never the not-found answer first), a loose mention of a person
is an ordinary question; the pulse every dashboard page polls; visitor and agent typing hints;
taking and transferring; human-readable statuses and channels; the "Handed off" filter keeps a
conversation a person answered after it went back to the bot."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.api.dashboard.web import channel_label
from chatwell.services import analytics, handoff
from chatwell.storage.tables import Bot
from tests.dashboard.conftest import sign_up
from tests.helpers import make_bot
from tests.widget.test_handoff import HOURS, ask

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
async def bot(client: httpx.AsyncClient, app: FastAPI) -> dict[str, Any]:
    bot = await make_bot(
        client,
        public=True,
        handoff={
            "enabled": True,
            "trigger": "button",
            "offline_message": "We are away; leave your email.",
        },
    )
    await client.post(
        f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Hours", "text": HOURS}
    )
    await app.state.runtime.ingestion.idle()
    return bot


def notices(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("code", "") for e in events if e.get("type") == "notice"]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e.get("content", "") for e in events if e.get("type") == "content")


async def test_asking_for_a_person_with_nobody_online(
    anon_client: httpx.AsyncClient, bot: dict[str, Any]
) -> None:
    events = await ask(anon_client, bot, "I want a human")
    assert notices(events) == ["handoff_offline"], events
    assert text_of(events) == ""  # not "I could not find that" before the offline message
    assert any("We are away" in (e.get("message") or "") for e in events)
    # A mention of people in an ordinary question is answered as one.
    events = await ask(
        anon_client, bot, "Are you open for human visitors on Monday?", session_id="visitor-2"
    )
    assert "handoff_offline" not in notices(events) and text_of(events)


async def test_asking_for_a_person_with_someone_online(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, bot: dict[str, Any]
) -> None:
    agent = {
        "Authorization": f"Bearer {(await client.post('/v1/keys', json={'label': 'Dana'})).json()['key']}"
    }
    await client.post("/v1/agents/presence", json={"online": True}, headers=agent)
    events = await ask(
        anon_client, bot, "I'd like to talk to a person."
    )  # the widget's button, before any question
    assert notices(events) == ["handoff_requested"] and text_of(events) == ""
    cid = events[-1]["conversation_id"]
    held = await anon_client.get(
        f"/v1/public/conversations/{cid}/messages", params={"session_id": "visitor-1"}
    )
    assert held.json()["conversation_status"] == "pending_human"
    typing = await anon_client.post(
        f"/v1/public/conversations/{cid}/typing", json={"session_id": "visitor-1"}
    )
    assert typing.status_code == 204
    stranger = await anon_client.post(
        f"/v1/public/conversations/{cid}/typing", json={"session_id": "someone-else"}
    )
    assert stranger.status_code == 404 and stranger.json()["error"] == "conversation_not_found"


async def test_pulse_typing_and_assignment(
    browser: httpx.AsyncClient, anon_client: httpx.AsyncClient, app: FastAPI, bot: dict[str, Any]
) -> None:
    csrf = await sign_up(browser)
    pulse = (await browser.get("/dashboard/pulse.json")).json()
    assert pulse["me_online"] is False and pulse["waiting"] == 0 and pulse["agents_online"] is False
    went = await browser.post(
        "/dashboard/inbox/presence",
        data={"online": "1", "csrf_token": csrf},
        headers={"Accept": "application/json"},
    )
    assert went.json() == {"online": True, "handoff_available": True}
    events = await ask(anon_client, bot, "Can I speak with an agent?")
    cid = events[-1]["conversation_id"]
    pulse = (await browser.get("/dashboard/pulse.json")).json()
    assert pulse["me_online"] is True and pulse["waiting"] == 1 and pulse["latest_visitor_message"]

    page = (await browser.get(f"/dashboard/conversations/{cid}")).text
    assert (
        "Waiting for a person" in page
        and "pending_human</" not in page
        and "Website widget" in page
    )
    # Agent typing needs the session's CSRF token; it is a hint, nothing is stored.
    assert (await browser.post(f"/dashboard/conversations/{cid}/typing")).status_code == 403
    assert (
        await browser.post(f"/dashboard/conversations/{cid}/typing", headers={"X-CSRF-Token": csrf})
    ).status_code == 204
    # Take it, transfer to a stranger (refused), release.
    taken = await browser.post(
        f"/dashboard/inbox/{cid}/assign", data={"user_id": "me", "csrf_token": csrf}
    )
    assert taken.status_code == 303
    assert (
        "Olga Owner"
        in (await browser.get(f"/dashboard/conversations/{cid}")).text.split(
            'data-field="assignee">'
        )[1][:40]
    )
    refused = await browser.post(
        f"/dashboard/inbox/{cid}/assign",
        data={"user_id": "00000000-0000-4000-8000-000000000000", "csrf_token": csrf},
    )
    assert refused.status_code == 400 and "not a member" in refused.text
    await browser.post(f"/dashboard/inbox/{cid}/assign", data={"user_id": "", "csrf_token": csrf})
    assert (
        'data-field="assignee">Nobody'
        in (await browser.get(f"/dashboard/conversations/{cid}")).text
    )

    # Answered by a person, resolved, then the visitor is back (open again): still "handed off".
    assert (
        await browser.post(
            f"/dashboard/inbox/{cid}/reply", data={"content": "Hello!", "csrf_token": csrf}
        )
    ).status_code == 303
    assert (
        await browser.post(f"/dashboard/inbox/{cid}/resolve", data={"csrf_token": csrf})
    ).status_code == 303
    await ask(anon_client, bot, "When are you open?", conversation_id=cid)
    listed = (await browser.get("/dashboard/conversations?handed_off=1")).text
    assert cid in listed and "Bot answering" in listed


async def test_top_questions_leave_out_messages_to_a_person(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client, public=True, handoff={"enabled": True, "trigger": "button"})
    await client.post(
        f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Hours", "text": HOURS}
    )
    await app.state.runtime.ingestion.idle()
    agent = {
        "Authorization": f"Bearer {(await client.post('/v1/keys', json={'label': 'Dana'})).json()['key']}"
    }
    await client.post("/v1/agents/presence", json={"online": True}, headers=agent)
    await ask(anon_client, bot, "When are you open?", session_id="a")
    events = await ask(anon_client, bot, "I want a human", session_id="b")
    cid = events[-1]["conversation_id"]
    await ask(anon_client, bot, "My order 4411 never arrived", conversation_id=cid, session_id="b")
    await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "Let me look."}, headers=agent
    )
    async with app.state.runtime.db.read() as session:
        row = await session.get(Bot, uuid.UUID(bot["id"]))
    report = await analytics.report(app.state.runtime.db, workspace_id=row.workspace_id)
    asked = [q for q, _ in report.top_questions]
    assert "When are you open?" in asked
    assert not any("4411" in q or "human" in q for q in asked), asked


def test_labels(backend: str) -> None:
    assert handoff.status_label("pending_human") == "Waiting for a person"
    assert handoff.status_label("human") == "With a person"
    assert (
        channel_label("chatbotiq") == "Website widget"
        and channel_label("openai") == "OpenAI-compatible API"
    )
    assert handoff.asks_explicitly("Talk to a person") and not handoff.asks_explicitly(
        "What agent do you use?"
    )


async def test_unanswered_lists_what_the_bot_abstained_on(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, app: FastAPI, bot: dict[str, Any]
) -> None:
    """The stored answer says whether the bot abstained: the question stays unanswered even after
    the bot's not-found message is reworded."""
    events = await ask(anon_client, bot, "What is the capital of Peru?")
    assert events[-1].get("answered") in (False, None)
    await ask(anon_client, bot, "When are you open?", session_id="visitor-2")
    changed = await client.patch(
        f"/v1/bots/{bot['id']}", json={"answer": {"not_found_message": "No idea, sorry."}}
    )
    assert changed.status_code == 200, changed.text
    async with app.state.runtime.db.read() as session:
        row = await session.get(Bot, uuid.UUID(bot["id"]))
    report = await analytics.report(app.state.runtime.db, workspace_id=row.workspace_id)
    assert [q for q, _ in report.unanswered] == ["What is the capital of Peru?"]
    assert report.unanswered_bot["What is the capital of Peru?"] == row.id
