"""Dashboard test helpers: a browser-like client (cookies, no API key) and sign-up/sign-in steps."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import ADMIN_KEY
from tests.widget.browser import chromium  # noqa: F401  (module-scoped browser for the browser test)

OWNER = {"email": "owner@example.com", "password": "correct horse battery", "name": "Olga Owner"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def sign_up(client: httpx.AsyncClient, **account: str) -> str:
    """Create the first owner; returns the session's CSRF token."""
    page = await client.get("/dashboard/setup")
    assert page.status_code == 200, page.text
    response = await client.post(
        "/dashboard/setup",
        data={**OWNER, **account, "csrf_token": csrf_of(page.text), "setup_token": ADMIN_KEY},
    )
    assert response.status_code == 303, response.text
    return csrf_of((await client.get("/dashboard")).text)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/dashboard/login")
    return await client.post(
        "/dashboard/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
    )
