"""The Playground as a chat (issue 23 item 11), in real Chromium: several turns in one page, each
answer's Markdown rendered safely (a list, bold text, no raw HTML), its [n] markers linking to its
own citations, its retrieved passages listed under it, and the earlier turns sent with the next
question (a follow-up is read in its conversation). "New chat" starts over."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import (
    VIEWPORT,
    create_bot,
    shot,
    sign_up,
    submit,
    wait_all_ready,
)
from tests.helpers import build_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
SHIPPING_Q = "Do you ship parcels to Canada?"
SHIPPING_A = (
    "Yes, we ship parcels to **Canada** and the United States:\n\n"
    "- standard delivery takes 5 working days\n"
    "- express delivery takes 2 working days\n\n"
    "<script>window.__owned = 1</script>"
)
HOURS = "The lantern shop is open Monday through Friday, 9 AM to 5 PM. It is closed on weekends."


def test_playground_is_a_multi_turn_chat(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    from playwright.sync_api import expect

    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    posted: list[dict[str, str]] = []
    page.on(
        "request",
        lambda r: posted.append({"body": r.post_data or ""}) if r.url.endswith("/chat") else None,
    )
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Lanterns")
    page.fill("form textarea[name=text]", HOURS)
    submit(page, "form:has(input[name=kind][value=text])")
    page.fill("form input[name=question]", SHIPPING_Q)
    page.fill("form textarea[name=answer]", SHIPPING_A)
    submit(page, "form:has(input[name=kind][value=qa])")
    wait_all_ready(page, 2)

    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/playground")
    box = page.locator("#playground textarea[name=question]")
    box.fill(SHIPPING_Q)
    box.press("Enter")  # Enter sends
    turns = page.locator("#playground-log .turn")
    expect(turns.nth(0)).to_have_attribute("data-done", "", timeout=30_000)
    first = turns.nth(0)
    answer = first.locator('[data-part="answer"]')
    expect(answer.locator("strong")).to_have_text("Canada")  # Markdown, rendered
    assert answer.locator("script, img").count() == 0
    assert page.evaluate("window.__owned") is None
    citation = first.locator('[data-part="citations"] li').first
    assert citation.inner_text().startswith(f"[1] {SHIPPING_Q}")
    first.locator("details.passages summary").click()
    assert int(first.locator('[data-part="passage-count"]').inner_text()) >= 1
    assert "Canada" in first.locator('[data-part="passages"] tr').first.inner_text()
    answer.locator("a.cite").first.click()  # [1] leads to this answer's citation 1
    assert page.url.endswith("#turn-1-cite-1")
    assert citation.get_attribute("id") == "turn-1-cite-1"
    expect(box).to_have_value("")

    page.fill("#playground textarea[name=question]", "When are you open?")
    page.locator("#playground button[type=submit]").click()
    expect(turns).to_have_count(2)
    second = turns.nth(1)
    expect(second).to_have_attribute("data-done", "", timeout=30_000)
    assert "Monday through Friday" in second.locator('[data-part="answer"]').inner_text()
    assert second.locator("a.cite").first.get_attribute("href") == "#turn-2-cite-1"
    second.locator("details.passages summary").click()
    assert "Monday" in second.locator('[data-part="passages"] tr').first.inner_text()
    # The first turn keeps its own answer and passages.
    expect(first.locator('[data-part="answer"] strong')).to_have_text("Canada")
    # The second question carried the first exchange; the first carried none.
    assert len(posted) == 2
    assert 'name="history"\r\n\r\n[]\r\n' in posted[0]["body"]
    sent = posted[1]["body"].split('name="history"\r\n\r\n', 1)[1].split("\r\n", 1)[0]
    history = json.loads(sent)
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == SHIPPING_Q and "Canada" in history[1]["content"]
    shot(page, "playground-chat")

    page.click("#playground-reset")  # New chat
    expect(turns).to_have_count(0)
    box.fill("When are you open?")
    box.press("Enter")
    expect(turns.nth(0)).to_have_attribute("data-done", "", timeout=30_000)
    assert 'name="history"\r\n\r\n[]\r\n' in posted[2]["body"]
    assert errors == []
