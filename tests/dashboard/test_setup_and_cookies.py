"""Set-up needs proof, and sign-in CSRF by cookie tossing fails (issue 19 items 6 and 8).

Item 6: whoever opened ``/dashboard/setup`` first owned the default workspace, even with an admin
key set. Now the form needs the set-up token the server prints at start (and ``chatwell
setup-token`` prints) or an owner key of the default workspace.

Item 8: the sign-in form's CSRF token was the pre-session cookie's own value (double submit), and
the cookies had plain names: a sibling subdomain (or any http page of the host) could toss a known
``chatwell_presession_csrf`` into a victim's browser and post the login form with that value,
signing the victim into the attacker's account. Now over https both cookies are ``__Host-``
cookies and the form token is an HMAC of the cookie's value under the server's key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from chatwell.cli import app as cli
from chatwell.settings import Settings
from chatwell.storage.tables import User
from tests.conftest import ADMIN_KEY
from tests.dashboard.conftest import OWNER, csrf_of
from tests.helpers import build_app, count_rows

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
TOKEN = re.compile(r"cwsetup_[A-Za-z0-9_-]{24}")


async def _setup(client: httpx.AsyncClient, **extra: str) -> httpx.Response:
    page = await client.get("/dashboard/setup")
    assert page.status_code == 200, page.text
    return await client.post(
        "/dashboard/setup", data={**OWNER, "csrf_token": csrf_of(page.text), **extra}
    )


async def test_setup_without_proof_is_refused_even_to_the_first_visitor(
    app: FastAPI, browser: httpx.AsyncClient, backend: str
) -> None:
    page = await browser.get("/dashboard/setup")
    assert (
        "set-up token" in page.text and "chatwell setup-token" in page.text
    )  # the page says what it needs
    for proof in (
        {},
        {"setup_token": ""},
        {"setup_token": "cwsetup_" + "A" * 24},
        {"setup_token": "wrong-admin-key"},
    ):
        refused = await _setup(browser, **proof)
        assert refused.status_code == 403, (
            proof,
            refused.status_code,
        )  # was 303: the first visitor owned it
        assert "set-up token" in refused.text
        assert "chatwell_session" not in "".join(refused.headers.get_list("set-cookie"))
    assert await count_rows(app, User) == 0


async def test_the_admin_key_is_proof(
    app: FastAPI, browser: httpx.AsyncClient, backend: str
) -> None:
    assert (await _setup(browser, setup_token=ADMIN_KEY)).status_code == 303
    assert await count_rows(app, User) == 1


async def test_the_token_printed_at_start_and_by_the_cli_is_proof(
    make_settings: Callable[..., Settings], tmp_path: Path, backend: str
) -> None:
    settings = make_settings(admin_key=None)
    printed: list[str] = []
    app = build_app(settings, announce=printed.append)
    async with app.router.lifespan_context(app):
        [token] = {m.group(0) for text in printed for m in TOKEN.finditer(text)}
        assert any("/dashboard/setup" in text for text in printed)
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "setup-token",
                "--database-url",
                settings.resolved_database_url,
                "--data-dir",
                str(settings.data_dir),
            ],
        )
        assert result.exit_code == 0 and result.output.strip() == token
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as web:
            assert (await _setup(web, setup_token=token)).status_code == 303
        assert await count_rows(app, User) == 1
        after = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "setup-token",
                "--database-url",
                settings.resolved_database_url,
                "--data-dir",
                str(settings.data_dir),
            ],
        )
        assert after.exit_code == 1 and token not in after.output  # single use: set-up is closed


async def test_over_https_the_cookies_are_host_prefixed(app: FastAPI, backend: str) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as web:
        page = await web.get("/dashboard/setup")
        pre = page.headers["set-cookie"]
        assert (
            pre.startswith("__Host-chatwell_presession=")
            and "Secure" in pre
            and "Path=/;" in pre + ";"
            and "Domain" not in pre
        ), pre
        done = await web.post(
            "/dashboard/setup",
            data={**OWNER, "csrf_token": csrf_of(page.text), "setup_token": ADMIN_KEY},
        )
        cookie = done.headers["set-cookie"]
        assert (
            done.status_code == 303
            and cookie.startswith("__Host-chatwell_session=")
            and "Secure" in cookie
        )
        assert "Path=/;" in cookie + ";" and "Domain" not in cookie
        assert (await web.get("/dashboard")).status_code == 200
        # A plain-named session cookie (what a tossing page could set) is not read over https.
        value = web.cookies.get("__Host-chatwell_session")
        web.cookies.clear()
        web.cookies.set("chatwell_session", value, domain="testserver.local", path="/dashboard")
        assert (await web.get("/dashboard")).headers["location"] == "/dashboard/login"


async def test_a_tossed_pre_session_cookie_is_no_token(
    app: FastAPI, browser: httpx.AsyncClient, backend: str
) -> None:
    await _setup(browser, setup_token=ADMIN_KEY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as victim:
        # The attacker chose the cookie's value and posts the form with that same value (double submit).
        tossed = "attacker-chosen-presession-value-0123456789"
        for name in ("chatwell_presession", "chatwell_presession_csrf"):
            victim.cookies.set(name, tossed, domain="testserver.local", path="/dashboard")
        forged = await victim.post(
            "/dashboard/login",
            data={"email": OWNER["email"], "password": OWNER["password"], "csrf_token": tossed},
        )
        assert forged.status_code == 403  # was 303: the victim signed in to the attacker's account
        assert "chatwell_session" not in "".join(forged.headers.get_list("set-cookie"))
        # The page's own token is an HMAC of the cookie, not the cookie.
        page = await victim.get("/dashboard/login")
        token = csrf_of(page.text)
        assert token != victim.cookies.get("chatwell_presession")
        ok = await victim.post(
            "/dashboard/login",
            data={"email": OWNER["email"], "password": OWNER["password"], "csrf_token": token},
        )
        assert ok.status_code == 303
