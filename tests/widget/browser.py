"""Real headless Chromium (Debian's, driven by Playwright) for the widget tests, and a host site
on another origin that embeds the widget the way a customer's site does."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import service_unavailable

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per test module: Playwright's sync API marks an event loop as running on this
    thread until it stops, which later tests calling ``asyncio.run`` must not see."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_unavailable("playwright is not installed (pip install playwright)")
    path = chromium_path()
    if path is None:
        service_unavailable("chromium not found (apt-get install chromium)")
    manager = sync_playwright().start()
    browser = manager.chromium.launch(
        executable_path=path,
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    )
    try:
        yield browser
    finally:
        browser.close()
        manager.stop()


def host_site(chatwell: str, bot_id: str, *, poll_ms: int = 300) -> Any:
    """A customer's site: a page with hostile CSS and the widget's script tag, and an inline page."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    tag = f'<script src="{chatwell}/widget.js" data-bot-id="{bot_id}" data-poll-ms="{poll_ms}" async></script>'
    hostile_css = "<style>*{color:#f0f !important;font-size:31px !important} button{display:none !important}</style>"

    async def home(request: Any) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><head><title>Shop</title>"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{hostile_css}</head>'
            f"<body><h1>Our shop</h1><p>Welcome.</p>{tag}</body></html>"
        )

    async def inline(request: Any) -> HTMLResponse:
        inline_tag = tag.replace("async>", 'data-mode="inline" data-target="#help" async>')
        return HTMLResponse(
            f"<!doctype html><html><body><h1>Help</h1><div id='help' style='height:500px'></div>"
            f"{inline_tag}</body></html>"
        )

    return Starlette(routes=[Route("/", home), Route("/inline", inline)])
