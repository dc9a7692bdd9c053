"""Dashboard: presence of signed-in agents, conversation filters/exports/deletion, and the
handoff, contact-form and webhook parts of Settings."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from chatwell.storage.tables import Bot, Conversation, Message, utcnow
from tests.dashboard.conftest import csrf_of, sign_in, sign_up
from tests.helpers import count_rows

AGENT = {"email": "agent@example.com", "password": "agent password 1"}


async def _create_bot(client: httpx.AsyncClient, token: str, name: str = "Help Desk") -> str:
    response = await client.post("/dashboard/bots", data={"name": name, "csrf_token": token})
    assert response.status_code == 303, response.text
    found = re.match(r"/dashboard/bots/([0-9a-f-]{36})/sources", response.headers["location"])
    assert found
    return found.group(1)


async def _public_handoff_bot(client: httpx.AsyncClient, token: str) -> str:
    bot_id = await _create_bot(client, token)
    saved = await client.post(
        f"/dashboard/bots/{bot_id}/settings",
        data={"name": "Help Desk", "public": "on", "handoff_enabled": "on", "csrf_token": token},
    )
    assert saved.status_code == 303, saved.text
    return bot_id


async def test_signed_in_agent_goes_online_and_away(
    app: FastAPI, browser: httpx.AsyncClient, anon_client: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _public_handoff_bot(browser, token)
    added = await browser.post(
        "/dashboard/members", data={**AGENT, "role": "agent", "csrf_token": token}
    )
    assert added.status_code == 303

    async def available() -> bool:
        return (await anon_client.get(f"/v1/public/bots/{bot_id}/config")).json()[
            "handoff_available"
        ]

    assert await available() is False
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as agent:
        assert (await sign_in(agent, AGENT["email"], AGENT["password"])).status_code == 303
        inbox = await agent.get("/dashboard/inbox")
        assert inbox.status_code == 200 and "I'm online" in inbox.text
        agent_token = csrf_of(inbox.text)
        # Without (or with a forged) CSRF token nothing changes.
        assert (
            await agent.post("/dashboard/inbox/presence", data={"online": "1"})
        ).status_code == 403
        assert (
            await agent.post(
                "/dashboard/inbox/presence",
                data={"online": "1", "csrf_token": "forged-token-value-0123456789"},
            )
        ).status_code == 403
        assert await available() is False
        went = await agent.post(
            "/dashboard/inbox/presence", data={"online": "1", "csrf_token": agent_token}
        )
        assert went.status_code == 303 and went.headers["location"] == "/dashboard/inbox"
        assert await available() is True
        inbox = await agent.get("/dashboard/inbox")
        assert "Go away" in inbox.text and 'data-online="1"' in inbox.text
        # The heartbeat of dashboard.js: the header carries the token, the reply is JSON.
        beat = await agent.post(
            "/dashboard/inbox/presence",
            data={"online": "1"},
            headers={"X-CSRF-Token": agent_token, "Accept": "application/json"},
        )
        assert beat.status_code == 200 and beat.json() == {
            "online": True,
            "handoff_available": True,
        }
        away = await agent.post(
            "/dashboard/inbox/presence", data={"online": "0", "csrf_token": agent_token}
        )
        assert away.status_code == 303
        assert await available() is False
    # An owner may go online too.
    assert (
        await browser.post("/dashboard/inbox/presence", data={"online": "1", "csrf_token": token})
    ).status_code == 303
    assert await available() is True


async def _conversation(
    app: FastAPI,
    bot_id: str,
    *,
    title: str,
    texts: list[str],
    status: str = "open",
    feedback: str | None = None,
    days_ago: int = 0,
) -> str:
    async with app.state.runtime.db.write() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
        assert bot is not None
        when = utcnow() - timedelta(days=days_ago)
        conversation = Conversation(
            workspace_id=bot.workspace_id,
            bot_id=bot.id,
            channel="widget",
            status=status,
            title=title,
            created_at=when,
            updated_at=when,
        )
        session.add(conversation)
        await session.flush()
        for i, text in enumerate(texts):
            session.add(
                Message(
                    conversation_id=conversation.id,
                    role="user" if i % 2 == 0 else "assistant",
                    content=text,
                    feedback=feedback if i % 2 else None,
                    created_at=when + timedelta(seconds=i),
                )
            )
        return str(conversation.id)


def _titles(html: str) -> set[str]:
    return set(re.findall(r"<td>(T-[a-z-]+)</td>", html))


async def test_conversation_filters_exports_and_delete(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_a = await _create_bot(browser, token, "Alpha")
    bot_b = await _create_bot(browser, token, "Beta")
    await _conversation(
        app, bot_a, title="T-hours", texts=["When are you open?", "9 to 5."], feedback="positive"
    )
    await _conversation(
        app,
        bot_a,
        title="T-old",
        texts=["Refund please", "Sure."],
        feedback="negative",
        days_ago=10,
    )
    held = await _conversation(
        app, bot_b, title="T-human", texts=["I want a human", "One moment."], status="human"
    )
    await _conversation(
        app, bot_b, title="T-percent", texts=["Is it 100% cotton?", "Yes."], status="resolved"
    )
    await _conversation(app, bot_b, title="T-formula", texts=['=HYPERLINK("http://evil")', "No."])

    async def titles(**params: str) -> set[str]:
        page = await browser.get("/dashboard/conversations", params=params)
        assert page.status_code == 200, page.text
        return _titles(page.text)

    everything = {"T-hours", "T-old", "T-human", "T-percent", "T-formula"}
    assert await titles() == everything
    assert await titles(bot_id=bot_a) == {"T-hours", "T-old"}
    today = utcnow().date()
    assert await titles(**{"from": str(today - timedelta(days=1))}) == everything - {"T-old"}
    assert await titles(to=str(today - timedelta(days=5))) == {"T-old"}
    assert await titles(**{"from": str(today), "to": str(today)}) == everything - {"T-old"}
    assert await titles(feedback="positive") == {"T-hours"}
    assert await titles(feedback="negative") == {"T-old"}
    assert await titles(handed_off="1") == {"T-human", "T-percent"}
    assert await titles(q="REFUND") == {"T-old"}
    assert await titles(q="100%") == {"T-percent"}  # % is matched literally, not as a wildcard
    assert await titles(q="%") == {"T-percent"}
    assert await titles(q="_") == set()
    assert await titles(bot_id=bot_b, handed_off="1", q="human") == {"T-human"}
    assert (
        await browser.get("/dashboard/conversations", params={"from": "31/01/2024"})
    ).status_code == 400
    assert (
        await browser.get("/dashboard/conversations", params={"feedback": "meh"})
    ).status_code == 400
    page = await browser.get("/dashboard/conversations", params={"bot_id": bot_a})
    assert f"/dashboard/conversations.csv?bot_id={bot_a}" in page.text

    exported = await browser.get("/dashboard/conversations.csv", params={"bot_id": bot_b})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:3] == ["id", "bot_id", "bot"] and {r[7] for r in rows[1:]} == {
        "T-human",
        "T-percent",
        "T-formula",
    }
    exported = await browser.get("/dashboard/conversations.csv", params={"q": "HYPERLINK"})
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert len(rows) == 2 and rows[1][7] == "T-formula"
    # Formula-injection safe: a cell that starts like a formula is shown as text.
    await _conversation(app, bot_b, title="=1+1", texts=["calc"])
    rows = list(
        csv.reader(
            io.StringIO(
                (await browser.get("/dashboard/conversations.csv", params={"q": "calc"})).text
            )
        )
    )
    assert rows[1][7] == "'=1+1"
    data = (
        await browser.get("/dashboard/conversations.json", params={"feedback": "negative"})
    ).json()
    assert [c["title"] for c in data["conversations"]] == ["T-old"]
    assert [m["content"] for m in data["conversations"][0]["messages"]] == [
        "Refund please",
        "Sure.",
    ]
    assert data["conversations"][0]["bot"] == "Alpha"

    # Delete: CSRF required, owners and admins only, then gone.
    assert (await browser.post(f"/dashboard/conversations/{held}/delete")).status_code == 403
    before = await count_rows(app, Conversation)
    added = await browser.post(
        "/dashboard/members", data={**AGENT, "role": "agent", "csrf_token": token}
    )
    assert added.status_code == 303
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as agent:
        assert (await sign_in(agent, AGENT["email"], AGENT["password"])).status_code == 303
        listed = await agent.get("/dashboard/conversations")
        assert (
            listed.status_code == 200
            and "conversations.csv" not in listed.text
            and "/delete" not in listed.text
        )
        agent_token = csrf_of(listed.text)
        for path in ("/dashboard/conversations.csv", "/dashboard/conversations.json"):
            assert (await agent.get(path)).status_code == 403
        refused = await agent.post(
            f"/dashboard/conversations/{held}/delete", data={"csrf_token": agent_token}
        )
        assert refused.status_code == 403
    assert await count_rows(app, Conversation) == before
    page = await browser.get(f"/dashboard/conversations/{held}")
    assert 'data-confirm="Delete this conversation' in page.text
    deleted = await browser.post(
        f"/dashboard/conversations/{held}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/dashboard/conversations"
    assert await count_rows(app, Conversation) == before - 1
    assert (await browser.get(f"/dashboard/conversations/{held}")).status_code == 404
    assert (
        await browser.post(f"/dashboard/conversations/{held}/delete", data={"csrf_token": token})
    ).status_code == 404


async def test_settings_handoff_contact_form_and_webhook_secret(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    form = {
        "name": "Help Desk",
        "handoff_enabled": "on",
        "handoff_trigger": "both",
        "handoff_offline_message": "We are away, leave your email.",
        "handoff_agent_label": "Support team",
        "contact_enabled": "on",
        "contact_trigger": "after_messages",
        "contact_after_messages": "4",
        "contact_success_message": "Thanks, we will write back.",
        "contact_fields": "email | Your email | email | required\nphone | Phone | phone\nnote | Anything else? | textarea | optional\n",
        "webhook_url": "https://hooks.example/chatwell",
        "csrf_token": token,
    }
    saved = await browser.post(f"/dashboard/bots/{bot_id}/settings", data=form)
    # A first webhook URL issues its signing secret: the page shows it this once (no redirect).
    assert saved.status_code == 200 and "shown only this once" in saved.text, saved.text
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None and bot.webhook_url == "https://hooks.example/chatwell"
    assert bot.handoff_settings == {
        "enabled": True,
        "trigger": "both",
        "offline_message": "We are away, leave your email.",
        "agent_label": "Support team",
        "canned_replies": [],
        # The form had no email fields (a page from before they existed): defaults are kept.
        "notify_emails": [],
        "email_on_lead": True,
        "email_on_offline_request": True,
        "email_on_missed": True,
    }
    assert bot.contact_form["enabled"] is True and bot.contact_form["trigger"] == "after_messages"
    assert (
        bot.contact_form["after_messages"] == 4
        and bot.contact_form["success_message"] == "Thanks, we will write back."
    )
    assert bot.contact_form["fields"] == [
        {"name": "email", "label": "Your email", "type": "email", "required": True},
        {"name": "phone", "label": "Phone", "type": "phone", "required": False},
        {"name": "note", "label": "Anything else?", "type": "textarea", "required": False},
    ]
    page = await browser.get(f"/dashboard/bots/{bot_id}/settings")
    # The field editor shows one row per field (and a blank one to add another).
    assert (
        'name="cf_0_name" aria-label="Field 1 name"' in page.text
        and 'value="Your email"' in page.text
    )
    assert (
        'name="cf_1_name"' in page.text
        and 'value="phone"' in page.text
        and 'name="cf_3_name"' in page.text
    )
    assert (
        'name="cf_2_type" aria-label="Field 3 type"><option>text</option><option>email</option><option>phone</option><option selected>textarea</option>'
        in page.text
    )
    assert '<option value="both" selected>' in page.text and "Support team" in page.text

    for bad_fields in (
        "just-a-name",
        "email | Email | fax | required",
        "email | Email | email | maybe",
        "a | A\na | Again",
        "bad name! | Label",
    ):
        bad = await browser.post(
            f"/dashboard/bots/{bot_id}/settings", data={**form, "contact_fields": bad_fields}
        )
        assert bad.status_code == 400, bad_fields
    for name, value in (
        ("handoff_trigger", "sometimes"),
        ("contact_trigger", "never"),
        ("contact_after_messages", "0"),
        ("contact_after_messages", "many"),
    ):
        assert (
            await browser.post(f"/dashboard/bots/{bot_id}/settings", data={**form, name: value})
        ).status_code == 400, name
    # Clearing optional texts and fields works.
    cleared = await browser.post(
        f"/dashboard/bots/{bot_id}/settings",
        data={**form, "handoff_offline_message": "", "contact_fields": "", "handoff_enabled": ""},
    )
    assert cleared.status_code == 303
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None and bot.handoff_settings.get("offline_message") is None
    assert bot.handoff_settings["enabled"] is False and bot.contact_form["fields"] == []

    # The webhook secret: CSRF required, shown once, stored, not shown again.
    assert (await browser.post(f"/dashboard/bots/{bot_id}/webhook-secret")).status_code == 403
    rotated = await browser.post(
        f"/dashboard/bots/{bot_id}/webhook-secret", data={"csrf_token": token}
    )
    assert rotated.status_code == 200
    found = re.search(r"shown only this once: <code>([^<]+)</code>", rotated.text)
    assert found
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None and bot.webhook_secret == found.group(1)
    again = await browser.get(f"/dashboard/bots/{bot_id}/settings")
    assert found.group(1) not in again.text and "Rotate webhook secret" in again.text
    second = await browser.post(
        f"/dashboard/bots/{bot_id}/webhook-secret", data={"csrf_token": token}
    )
    assert found.group(1) not in second.text
    # Agents may not rotate it.
    added = await browser.post(
        "/dashboard/members", data={**AGENT, "role": "agent", "csrf_token": token}
    )
    assert added.status_code == 303
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as agent:
        assert (await sign_in(agent, AGENT["email"], AGENT["password"])).status_code == 303
        agent_token = csrf_of((await agent.get("/dashboard")).text)
        assert (
            await agent.post(
                f"/dashboard/bots/{bot_id}/webhook-secret", data={"csrf_token": agent_token}
            )
        ).status_code == 403


async def test_leads_page_filters_by_bot_date_and_text(signed_in_owner_for_leads) -> None:  # type: ignore[no-untyped-def]
    client, app, bots_made = signed_in_owner_for_leads
    page = (await client.get("/dashboard/leads")).text
    assert "ada@example.com" in page and "grace@example.com" in page
    only_first = (await client.get("/dashboard/leads", params={"bot_id": bots_made[0]})).text
    assert "ada@example.com" in only_first and "grace@example.com" not in only_first
    searched = (await client.get("/dashboard/leads", params={"q": "GRACE"})).text
    assert "grace@example.com" in searched and "ada@example.com" not in searched
    future = (await client.get("/dashboard/leads", params={"from": "2999-01-01"})).text
    assert "ada@example.com" not in future and "No leads yet" in future
    assert (await client.get("/dashboard/leads", params={"to": "soon"})).status_code == 400


async def test_inbox_queue_is_marked_live(signed_in_owner_for_leads) -> None:  # type: ignore[no-untyped-def]
    client, _app, _bots = signed_in_owner_for_leads
    page = (await client.get("/dashboard/inbox")).text
    assert 'id="inbox-queue" data-live="5000"' in page


@pytest.fixture
async def signed_in_owner_for_leads(app: FastAPI, browser: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    from chatwell.domain.bots import BotCreate
    from chatwell.services import bots as bot_service
    from chatwell.services import leads as lead_service
    from chatwell.services.workspaces import get_default_workspace

    await sign_up(browser)
    workspace = await get_default_workspace(app.state.runtime.db)
    assert workspace is not None
    made = []
    for name, email in (("Shop", "ada@example.com"), ("Docs", "grace@example.com")):
        bot = await bot_service.create_bot(
            app.state.runtime.db, workspace_id=workspace.id, data=BotCreate(name=name)
        )
        await lead_service.create_lead(
            app.state.runtime.db, bot=bot, name=name + " lead", email=email
        )
        made.append(str(bot.id))
    return browser, app, made
