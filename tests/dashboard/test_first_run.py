"""What the owner sees at the first start (issue 23 item 12): the set-up page says it is the first
start, where the set-up token comes from (the very words the server prints), what comes after,
and links to the API docs and to the embedding guide, which is public and names this server."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI


async def test_setup_page_explains_the_first_start(
    app: FastAPI, browser: httpx.AsyncClient, announcements: list[str]
) -> None:
    page = await browser.get("/dashboard/setup")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "Welcome to chatwell" in text and "first start of this server" in text
    # It quotes what the server printed, so the owner finds the token in the log.
    printed = "\n".join(announcements)
    assert "No dashboard account yet" in printed and "No dashboard account yet" in text
    assert "chatwell setup-token" in text and "CHATWELL_ADMIN_KEY" in text
    assert 'href="/docs"' in page.text and 'href="/dashboard/embed-guide"' in page.text

    guide = await browser.get("/dashboard/embed-guide")  # no account, no session: still shown
    assert guide.status_code == 200
    assert "http://testserver/widget.js" in guide.text and 'data-mode="inline"' in guide.text
    assert "http://testserver/chat/BOT_SLUG" in guide.text and 'href="/docs"' in guide.text
    assert (await browser.get("/docs")).status_code == 200
