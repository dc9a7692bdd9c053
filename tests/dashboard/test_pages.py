"""Dashboard pages: bots, sources, settings, keys; roles (agents), CSRF on every POST, tenants."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from chatwell.api.dashboard import account_pages, bot_pages, workspace_pages
from chatwell.services import accounts, workspaces
from chatwell.storage.tables import Bot, Membership, User
from tests.dashboard.conftest import csrf_of, sign_in, sign_up
from tests.helpers import count_rows

AGENT = {"email": "agent@example.com", "password": "agent password 1"}


async def _create_bot(client: httpx.AsyncClient, token: str, name: str = "Help Desk") -> str:
    response = await client.post("/dashboard/bots", data={"name": name, "csrf_token": token})
    assert response.status_code == 303, response.text
    found = re.match(r"/dashboard/bots/([0-9a-f-]{36})/sources", response.headers["location"])
    assert found
    return found.group(1)


async def _wait_ready(client: httpx.AsyncClient, bot_id: str, timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        data = (await client.get(f"/dashboard/bots/{bot_id}/sources.json")).json()
        if data["sources"] and all(s["status"] in ("ready", "failed") for s in data["sources"]):
            return data
        assert asyncio.get_running_loop().time() < deadline, data
        await asyncio.sleep(0.2)


async def _user_in(
    app: FastAPI, workspace_id: uuid.UUID, email: str, password: str, role: str
) -> None:
    password_hash = await accounts.hash_password(password)
    async with app.state.runtime.db.write() as session:
        user = User(email=email, password_hash=password_hash, is_active=True)
        session.add(user)
        await session.flush()
        session.add(Membership(workspace_id=workspace_id, user_id=user.id, role=role))


async def test_create_bot_add_text_source_and_see_it_ready(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    assert "Help Desk" in (await browser.get("/dashboard")).text
    added = await browser.post(
        f"/dashboard/bots/{bot_id}/sources",
        data={
            "kind": "text",
            "title": "Opening hours",
            "text": "We are open Monday to Friday, 9 to 5.",
            "csrf_token": token,
        },
    )
    assert added.status_code == 303
    data = await _wait_ready(browser, bot_id)
    assert data["sources"][0]["status"] == "ready" and data["sources"][0]["chunk_count"] >= 1
    page = await browser.get(f"/dashboard/bots/{bot_id}/sources")
    assert page.status_code == 200 and "Opening hours" in page.text and "status-ready" in page.text
    # Q&A and a file upload go through the same tab.
    qa = await browser.post(
        f"/dashboard/bots/{bot_id}/sources",
        data={
            "kind": "qa",
            "question": "Do you ship abroad?",
            "answer": "Yes, to the EU.",
            "csrf_token": token,
        },
    )
    assert qa.status_code == 303
    upload = await browser.post(
        f"/dashboard/bots/{bot_id}/sources",
        data={"kind": "file", "csrf_token": token},
        files={"file": ("notes.md", b"# Notes\n\nParking is free.", "text/markdown")},
    )
    assert upload.status_code == 303, upload.text
    data = await _wait_ready(browser, bot_id)
    assert len(data["sources"]) == 3
    source_id = data["sources"][0]["id"]
    assert (
        await browser.post(
            f"/dashboard/bots/{bot_id}/sources/{source_id}/sync", data={"csrf_token": token}
        )
    ).status_code == 303
    assert (
        await browser.post(
            f"/dashboard/bots/{bot_id}/sources/{source_id}/delete", data={"csrf_token": token}
        )
    ).status_code == 303
    assert len((await browser.get(f"/dashboard/bots/{bot_id}/sources.json")).json()["sources"]) == 2


async def test_settings_save_and_embed_snippets(app: FastAPI, browser: httpx.AsyncClient) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    saved = await browser.post(
        f"/dashboard/bots/{bot_id}/settings",
        data={
            "name": "Help Desk",
            "instructions": "Be brief <b>always</b>.",
            "public": "on",
            "allowed_origins": "https://shop.example\n",
            "suggested_questions": "When are you open?",
            "per_minute": "5",
            "primary_color": "#112233",
            "position": "bottom-left",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303, saved.text
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None and bot.public and bot.allowed_origins == ["https://shop.example"]
    assert bot.rate_limits["per_minute"] == 5 and bot.widget_settings["primary_color"] == "#112233"
    page = await browser.get(f"/dashboard/bots/{bot_id}/settings")
    assert "Be brief &lt;b&gt;always&lt;/b&gt;." in page.text  # autoescaped
    bad = await browser.post(
        f"/dashboard/bots/{bot_id}/settings",
        data={"name": "Help Desk", "per_minute": "many", "csrf_token": token},
    )
    assert bad.status_code == 400
    embed = await browser.get(f"/dashboard/bots/{bot_id}/embed")
    assert embed.status_code == 200
    assert (
        f"data-bot-id=&#34;{bot_id}&#34;" in embed.text
        and "data-mode=&#34;inline&#34;" in embed.text
    )
    assert "/chat/help-desk" in embed.text


async def test_key_secret_is_shown_exactly_once_and_revoke(
    app: FastAPI, browser: httpx.AsyncClient, anon_client: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    created = await browser.post(
        "/dashboard/api-keys",
        data={
            "label": "website",
            "bot_id": bot_id,
            "daily_message_limit": "100",
            "csrf_token": token,
        },
    )
    assert created.status_code == 201
    secret = re.search(r"<code>(cw_[A-Za-z0-9_-]+)</code>", created.text)
    assert secret
    listed = await browser.get("/dashboard/api-keys")
    assert secret.group(1) not in listed.text and secret.group(1)[:10] in listed.text
    works = await anon_client.get(
        f"/v1/bots/{bot_id}", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert works.status_code == 200
    key_id = re.search(r"/dashboard/api-keys/([0-9a-f-]{36})/revoke", listed.text)
    assert key_id
    # The list holds the owner key from start-up too; revoke the new one.
    ids = re.findall(r"/dashboard/api-keys/([0-9a-f-]{36})/revoke", listed.text)
    for kid in ids:
        await browser.post(f"/dashboard/api-keys/{kid}/revoke", data={"csrf_token": token})
    refused = await anon_client.get(
        f"/v1/bots/{bot_id}", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert refused.status_code == 401


async def test_agent_gets_403_on_settings_and_keys(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    added = await browser.post(
        "/dashboard/members", data={**AGENT, "role": "agent", "csrf_token": token}
    )
    assert added.status_code == 303
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as agent:
        assert (await sign_in(agent, AGENT["email"], AGENT["password"])).status_code == 303
        agent_token = csrf_of((await agent.get("/dashboard")).text)
        for path in (
            f"/dashboard/bots/{bot_id}/settings",
            "/dashboard/api-keys",
            f"/dashboard/bots/{bot_id}/sources",
            "/dashboard/leads",
            "/dashboard/members",
        ):
            assert (await agent.get(path)).status_code == 403, path
        for path in (
            f"/dashboard/bots/{bot_id}/settings",
            "/dashboard/api-keys",
            "/dashboard/bots",
        ):
            assert (
                await agent.post(path, data={"name": "x", "label": "x", "csrf_token": agent_token})
            ).status_code == 403
        for path in ("/dashboard", "/dashboard/conversations", "/dashboard/inbox"):
            assert (await agent.get(path)).status_code == 200, path


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_every_post_route_refuses_a_request_without_csrf_token(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    posts = [
        r.path
        for pages in (account_pages, bot_pages, workspace_pages)
        for r in pages.router.routes
        if isinstance(r, APIRoute) and "POST" in r.methods
    ]
    assert len(posts) >= 12
    any_id = str(uuid.uuid4())
    for path in posts:
        url = (
            path.replace("{bot_id}", bot_id)
            .replace("{source_id}", any_id)
            .replace("{key_id}", any_id)
            .replace("{conversation_id}", any_id)
        )
        for data in ({"name": "x"}, {"name": "x", "csrf_token": "forged-token-value-0123456789"}):
            response = await browser.post(url, data=data)
            assert response.status_code == 403, (url, response.status_code)
    assert await count_rows(app, Bot) == 1
    # The header works for scripts.
    ok = await browser.post(
        "/dashboard/bots", data={"name": "Second"}, headers={"X-CSRF-Token": token}
    )
    assert ok.status_code == 303


async def test_workspace_b_user_gets_404_on_workspace_a_pages(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    workspace_b, _ = await workspaces.create_workspace(app.state.runtime.db, name="B")
    await _user_in(app, workspace_b.id, "b@example.com", "b-password-123", "owner")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as other:
        assert (await sign_in(other, "b@example.com", "b-password-123")).status_code == 303
        b_token = csrf_of((await other.get("/dashboard")).text)
        assert "Help Desk" not in (await other.get("/dashboard")).text
        for page in ("sources", "settings", "embed", "sources.json", "leads.csv"):
            assert (await other.get(f"/dashboard/bots/{bot_id}/{page}")).status_code == 404, page
        assert (await other.get(f"/dashboard/conversations?bot_id={bot_id}")).status_code == 404
        for path in (f"/dashboard/bots/{bot_id}/settings", f"/dashboard/bots/{bot_id}/sources"):
            response = await other.post(
                path, data={"name": "pwned", "kind": "text", "text": "x", "csrf_token": b_token}
            )
            assert response.status_code == 404, path
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None and bot.name == "Help Desk"


async def test_leads_page_and_csv(app: FastAPI, browser: httpx.AsyncClient) -> None:
    from chatwell.services import leads

    token = await sign_up(browser)
    bot_id = await _create_bot(browser, token)
    async with app.state.runtime.db.read() as session:
        bot = await session.get(Bot, uuid.UUID(bot_id))
    await leads.create_lead(
        app.state.runtime.db, bot=bot, name="Ada", email="ada@example.com", phone="+1 555"
    )
    page = await browser.get("/dashboard/leads")
    assert page.status_code == 200 and "ada@example.com" in page.text
    csv = await browser.get(f"/dashboard/bots/{bot_id}/leads.csv")
    assert csv.status_code == 200 and "ada@example.com" in csv.text and "'+1 555" in csv.text
