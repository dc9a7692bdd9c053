"""Dashboard accounts: first-owner set-up, sign-in and out, throttling, session fixation, CSRF."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from chatwell.services.accounts import session_key
from chatwell.storage.tables import DashboardSession, Membership, User
from tests.conftest import ADMIN_KEY
from tests.dashboard.conftest import OWNER, csrf_of, sign_in, sign_up
from tests.helpers import count_rows


async def test_fresh_install_sends_to_setup_and_setup_happens_once(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    first = await browser.get("/dashboard")
    assert first.status_code == 303 and first.headers["location"] == "/dashboard/setup"
    await sign_up(browser)
    assert await count_rows(app, User) == 1
    assert await count_rows(app, Membership, role="owner") == 1
    home = await browser.get("/dashboard")
    assert home.status_code == 200 and "owner@example.com" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    # Once an owner exists, set-up is closed, even to a direct POST with a valid form token.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as other:
        assert (await other.get("/dashboard/setup")).headers["location"] == "/dashboard/login"
        page = await other.get("/dashboard/login")
        again = await other.post(
            "/dashboard/setup",
            data={
                "email": "evil@example.com",
                "password": "x" * 12,
                "csrf_token": csrf_of(page.text),
                "setup_token": ADMIN_KEY,
            },
        )
        assert again.status_code == 403
    assert await count_rows(app, User) == 1


async def test_session_cookie_flags_and_password_hash(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    page = await browser.get("/dashboard/setup")
    response = await browser.post(
        "/dashboard/setup",
        data={**OWNER, "csrf_token": csrf_of(page.text), "setup_token": ADMIN_KEY},
    )
    cookie = response.headers["set-cookie"]
    assert (
        "chatwell_session=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=lax" in cookie.replace("Lax", "lax")
    )
    assert "Secure" not in cookie  # plain http in tests; https requests get Secure
    async with app.state.runtime.db.read() as session:
        user = (await session.scalars(User.__table__.select())).first()
    assert user is not None


async def test_sign_in_out_and_wrong_password(app: FastAPI, browser: httpx.AsyncClient) -> None:
    token = await sign_up(browser)
    out = await browser.post("/dashboard/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert (await browser.get("/dashboard")).headers["location"] == "/dashboard/login"
    wrong = await sign_in(browser, OWNER["email"], "not the password")
    assert wrong.status_code == 401 and "wrong email or password" in wrong.text
    unknown = await sign_in(browser, "nobody@example.com", "whatever pass")
    assert unknown.status_code == 401 and "wrong email or password" in unknown.text
    ok = await sign_in(browser, OWNER["email"], OWNER["password"])
    assert ok.status_code == 303
    assert (await browser.get("/dashboard")).status_code == 200


async def test_sign_in_makes_a_new_session_and_ends_the_old_one(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    await sign_up(browser)
    before = browser.cookies.get("chatwell_session")
    response = await sign_in(browser, OWNER["email"], OWNER["password"])
    after = browser.cookies.get("chatwell_session")
    assert response.status_code == 303 and before and after and before != after
    async with app.state.runtime.db.read() as session:
        assert await session.get(DashboardSession, session_key(before)) is None
        assert await session.get(DashboardSession, session_key(after)) is not None
    # Only the hash is stored, never the cookie itself.
    assert await count_rows(app, DashboardSession, id=after) == 0


async def test_fixation_a_planted_cookie_is_not_adopted(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    await sign_up(browser)
    await browser.post(
        "/dashboard/logout", data={"csrf_token": csrf_of((await browser.get("/dashboard")).text)}
    )
    browser.cookies.set(
        "chatwell_session",
        "attacker-chosen-value-0123456789",
        domain="testserver.local",
        path="/dashboard",
    )
    await sign_in(browser, OWNER["email"], OWNER["password"])
    assert (
        await count_rows(app, DashboardSession, id=session_key("attacker-chosen-value-0123456789"))
        == 0
    )


def from_ip(app: FastAPI, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://testserver"
    )


async def test_login_is_throttled_per_account_and_client_with_backoff(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    await sign_up(browser)
    async with from_ip(app, "203.0.113.66") as attacker:
        statuses = [
            (await sign_in(attacker, OWNER["email"], f"wrong-{i}-password")).status_code
            for i in range(5)
        ]
        assert statuses == [401] * 5
        blocked = await sign_in(attacker, OWNER["email"], OWNER["password"])
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


async def test_a_stranger_failing_on_an_account_does_not_lock_its_owner_out(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    """Issue 19 item 9: ten wrong passwords from anywhere locked the real user out."""
    await sign_up(browser)
    async with from_ip(app, "203.0.113.66") as attacker, from_ip(app, "198.51.100.20") as owner:
        for i in range(12):
            await sign_in(attacker, OWNER["email"], f"wrong-{i}-password")
        assert (await sign_in(attacker, OWNER["email"], "still-wrong-pass")).status_code == 429
        assert (await sign_in(owner, OWNER["email"], OWNER["password"])).status_code == 303
        # The owner's own typos back off only the owner's client, and signing in ends that backoff.
        for i in range(4):
            assert (await sign_in(owner, OWNER["email"], f"typo-{i}-password")).status_code == 401
        assert (await sign_in(owner, OWNER["email"], OWNER["password"])).status_code == 303
        for i in range(4):
            assert (await sign_in(owner, OWNER["email"], f"typo-{i}-again")).status_code == 401
        assert (await sign_in(owner, OWNER["email"], OWNER["password"])).status_code == 303


async def test_login_and_setup_refuse_a_form_without_its_token(
    app: FastAPI, browser: httpx.AsyncClient
) -> None:
    assert (
        await browser.post("/dashboard/setup", data={**OWNER, "setup_token": ADMIN_KEY})
    ).status_code == 403
    assert await count_rows(app, User) == 0
    await sign_up(browser)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as other:
        response = await other.post(
            "/dashboard/login", data={"email": OWNER["email"], "password": OWNER["password"]}
        )
        assert response.status_code == 403
        assert "chatwell_session" not in other.cookies


async def test_session_cookie_is_secure_over_https(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as client:
        page = await client.get("/dashboard/setup")
        response = await client.post(
            "/dashboard/setup",
            data={**OWNER, "csrf_token": csrf_of(page.text), "setup_token": ADMIN_KEY},
        )
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]
