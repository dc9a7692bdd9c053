"""Accounts after set-up (issue 19 item 17, issue 23 item 8): an owner changes roles and removes
members (their sessions end at once; a workspace keeps an owner); anyone changes their password
(other sessions end) and signs out other browsers; `chatwell reset-password`; a bot is deleted
from its Settings tab."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from chatwell.cli import app as cli
from chatwell.storage.tables import Bot, DashboardSession
from tests.dashboard.conftest import OWNER, csrf_of, sign_in, sign_up
from tests.helpers import count_rows

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
AGENT = {"email": "dana@example.com", "password": "agent password 1", "name": "Dana"}


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def add_agent(browser: httpx.AsyncClient, csrf: str) -> str:
    added = await browser.post(
        "/dashboard/members", data={**AGENT, "role": "agent", "csrf_token": csrf}
    )
    assert added.status_code == 303, added.text
    page = (await browser.get("/dashboard/members")).text
    row = page.split('data-member="dana@example.com"')[1]
    return row.split("/dashboard/members/")[1].split("/")[0]


async def test_roles_and_removal(app: FastAPI, browser: httpx.AsyncClient) -> None:
    csrf = await sign_up(browser)
    agent_id = await add_agent(browser, csrf)
    async with client_of(app) as dana:
        assert (await sign_in(dana, AGENT["email"], AGENT["password"])).status_code == 303
        assert (await dana.get("/dashboard/api-keys")).status_code == 403
        # Promoted: the open session has the new role on its next request.
        changed = await browser.post(
            f"/dashboard/members/{agent_id}/role", data={"role": "admin", "csrf_token": csrf}
        )
        assert changed.status_code == 303
        assert (await dana.get("/dashboard/api-keys")).status_code == 200
        dana_csrf = csrf_of((await dana.get("/dashboard")).text)
        # Only owners manage members.
        refused = await dana.post(
            f"/dashboard/members/{agent_id}/role", data={"role": "owner", "csrf_token": dana_csrf}
        )
        assert refused.status_code == 403
        # Removed: signed out at once, sessions gone.
        removed = await browser.post(
            f"/dashboard/members/{agent_id}/remove", data={"csrf_token": csrf}
        )
        assert removed.status_code == 303
        assert (await dana.get("/dashboard")).headers["location"] == "/dashboard/login"
        assert "dana@example.com" not in (await browser.get("/dashboard/members")).text
    # The last owner can be neither demoted nor removed.
    members_page = (await browser.get("/dashboard/members")).text
    owner_id = (
        members_page.split('data-member="owner@example.com"')[1]
        .split("/dashboard/members/")[1]
        .split("/")[0]
    )
    last = await browser.post(
        f"/dashboard/members/{owner_id}/role", data={"role": "agent", "csrf_token": csrf}
    )
    assert last.status_code == 409 and "needs an owner" in last.text
    assert (
        await browser.post(f"/dashboard/members/{owner_id}/remove", data={"csrf_token": csrf})
    ).status_code == 409
    assert (
        await browser.post("/dashboard/members/not-a-uuid/remove", data={"csrf_token": csrf})
    ).status_code == 404
    assert (
        await browser.post(f"/dashboard/members/{agent_id}/remove", data={})
    ).status_code == 403  # no CSRF token


async def test_password_change_and_sessions(app: FastAPI, browser: httpx.AsyncClient) -> None:
    csrf = await sign_up(browser)
    async with client_of(app) as laptop, client_of(app) as phone:
        await sign_in(laptop, OWNER["email"], OWNER["password"])
        await sign_in(phone, OWNER["email"], OWNER["password"])
        account = (await browser.get("/dashboard/account")).text
        assert account.count("data-session=") == 3 and "this browser" in account
        # Sign out one other browser by its row.
        laptop_ref = [part.split('"')[0] for part in account.split('name="ref" value="')[1:]]
        assert len(laptop_ref) == 2
        ended = await browser.post(
            "/dashboard/account/sessions/revoke", data={"ref": laptop_ref[0], "csrf_token": csrf}
        )
        assert ended.headers["location"] == "/dashboard/account?ended=1"
        still = [c for c in (laptop, phone) if (await c.get("/dashboard")).status_code == 200]
        assert len(still) == 1
        unknown = await browser.post(
            "/dashboard/account/sessions/revoke", data={"ref": "0" * 16, "csrf_token": csrf}
        )
        assert unknown.status_code == 404

        # A wrong current password keeps the form with its message; a good one ends other sessions.
        wrong = await browser.post(
            "/dashboard/account/password",
            data={
                "current_password": "nope nope nope",
                "new_password": "a new passphrase",
                "confirm_password": "a new passphrase",
                "csrf_token": csrf,
            },
        )
        assert wrong.status_code == 400 and "current password is not right" in wrong.text
        differ = await browser.post(
            "/dashboard/account/password",
            data={
                "current_password": OWNER["password"],
                "new_password": "a new passphrase",
                "confirm_password": "another",
                "csrf_token": csrf,
            },
        )
        assert differ.status_code == 400 and "differ" in differ.text
        done = await browser.post(
            "/dashboard/account/password",
            data={
                "current_password": OWNER["password"],
                "new_password": "a new passphrase",
                "confirm_password": "a new passphrase",
                "csrf_token": csrf,
            },
        )
        assert done.status_code == 303
        assert (await browser.get("/dashboard")).status_code == 200  # this session stays
        assert (await still[0].get("/dashboard")).status_code == 303  # the other one ended
        assert await count_rows(app, DashboardSession) == 1
    async with client_of(app) as again:
        assert (await sign_in(again, OWNER["email"], OWNER["password"])).status_code == 401
        assert (await sign_in(again, OWNER["email"], "a new passphrase")).status_code == 303


async def test_delete_a_bot(app: FastAPI, browser: httpx.AsyncClient) -> None:
    csrf = await sign_up(browser)
    created = await browser.post("/dashboard/bots", data={"name": "Doomed", "csrf_token": csrf})
    bot_id = created.headers["location"].split("/")[3]
    settings = (await browser.get(f"/dashboard/bots/{bot_id}/settings")).text
    assert (
        f'action="/dashboard/bots/{bot_id}/delete"' in settings and "can not be undone" in settings
    )
    assert (await browser.post(f"/dashboard/bots/{bot_id}/delete", data={})).status_code == 403
    deleted = await browser.post(f"/dashboard/bots/{bot_id}/delete", data={"csrf_token": csrf})
    assert deleted.headers["location"] == "/dashboard?deleted=1"
    assert await count_rows(app, Bot, name="Doomed") == 0
    assert (
        await browser.post(f"/dashboard/bots/{bot_id}/delete", data={"csrf_token": csrf})
    ).status_code == 404


async def test_reset_password_from_the_command_line(
    app: FastAPI, browser: httpx.AsyncClient, settings: object, tmp_path: Path
) -> None:
    await sign_up(browser)
    args = ["--data-dir", str(settings.data_dir), "--database-url", settings.resolved_database_url]  # type: ignore[attr-defined]
    runner = CliRunner()
    import asyncio

    def reset(stdin: str, email: str = OWNER["email"]) -> object:
        return runner.invoke(cli, ["reset-password", email, "--password-stdin", *args], input=stdin)

    result = await asyncio.to_thread(reset, "short\n")
    assert result.exit_code == 1 and "at least 8" in result.output
    result = await asyncio.to_thread(reset, "forgotten no more\n", "nobody@example.com")
    assert result.exit_code == 1 and "no account" in result.output
    result = await asyncio.to_thread(reset, "forgotten no more\n")
    assert result.exit_code == 0, result.output
    assert (await browser.get("/dashboard")).status_code == 303  # its sessions ended
    async with client_of(app) as again:
        assert (await sign_in(again, OWNER["email"], "forgotten no more")).status_code == 303
