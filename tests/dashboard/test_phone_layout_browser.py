"""The dashboard on a phone (issue 23 item 11), in real Chromium at 390 x 844 (an iPhone 12-14):
on every page an owner or an agent uses, from the first-run set-up to answering a visitor, nothing
makes the page scroll sideways, every control lies within the screen (a wide table scrolls inside
its own box instead) and is big enough to tap (24 px, WCAG 2.2's minimum); and the agent's work is
done by tapping: going online, opening the waiting conversation and sending a reply."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import (
    HOURS,
    create_bot,
    shot,
    sign_up,
    submit,
    wait_all_ready,
)
from tests.helpers import build_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
PHONE = {"width": 390, "height": 844}
SHOTS = {"sources", "inbox", "settings"}  # the pages docs/screenshots keeps (of every page checked)

# Controls outside the screen or smaller than this are findings; inline text links are exempt
# (WCAG 2.5.8's exception for targets in a sentence).
LAYOUT_PROBLEMS = """
(width) => {
  // The phone's width, not window.innerWidth: a mobile browser widens its layout viewport to fit
  // a page that overflows, which would hide the very overflow looked for.
  const problems = [];
  if (document.documentElement.scrollWidth > width + 1)
    problems.push("page scrolls sideways: " + document.documentElement.scrollWidth + " > " + width);
  if (window.innerWidth > width + 1) problems.push("the browser zoomed out to " + window.innerWidth);
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if ((o === "auto" || o === "scroll") && p.scrollWidth > p.clientWidth) return true;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.name ? "[name=" + el.name + "]" : "") +
    (el.id ? "#" + el.id : "") + " '" + (el.innerText || el.value || "").trim().slice(0, 30) + "'";
  for (const el of document.querySelectorAll("button, input, select, textarea, nav a, .tabs a, header a, summary")) {
    if (el.type === "hidden") continue;
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || getComputedStyle(el).visibility === "hidden") continue;
    if (el.closest("details:not([open])") && el.tagName !== "SUMMARY") continue;
    if ((box.right > width + 1 || box.left < -1) && !scrolls(el))
      problems.push("off screen: " + name(el) + " " + Math.round(box.left) + ".." + Math.round(box.right));
    const small = el.type === "checkbox" || el.type === "radio" ? 13 : 24;
    if (box.height < small - 0.5 || box.width < small - 0.5)
      problems.push("too small: " + name(el) + " " + Math.round(box.width) + "x" + Math.round(box.height));
  }
  return problems;
}
"""


def check(page: Any, url: str, label: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, (label, url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)  # the scripts have run (live pages never go network-idle)
    problems = page.evaluate(LAYOUT_PROBLEMS, PHONE["width"])
    if label in SHOTS:
        shot(page, f"phone-{label}")
    assert problems == [], f"{label} ({url}): {problems}"


def test_dashboard_on_a_phone(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    from playwright.sync_api import expect

    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())

    check(page, f"{chatwell}/dashboard/setup", "setup")
    check(page, f"{chatwell}/dashboard/embed-guide", "embed-guide")
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Lantern shop")
    page.fill("form textarea[name=text]", HOURS)
    submit(page, "form:has(input[name=kind][value=text])")
    wait_all_ready(page, 1)
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    page.check("input[name=public]")
    page.check("input[name=handoff_enabled]")
    page.check("input[name=contact_enabled]")
    submit(page, f"form[action='/dashboard/bots/{bot_id}/settings']")

    # The agent goes online by tapping the header's toggle.
    toggle = page.locator("#presence-toggle button")
    toggle.tap()
    expect(toggle).to_have_attribute("aria-pressed", "true")

    # A visitor chats, leaves contact details and asks for a person.
    with httpx.Client(base_url=chatwell, timeout=60) as visitor:
        chat = visitor.post(
            "/v1/public/chat/stream",
            json={"bot_id": bot_id, "message": "When is the shop open?", "session_id": "v1"},
        )
        events = [json.loads(x[6:]) for x in chat.text.splitlines() if x.startswith("data: ")]
        cid = next(e["conversation_id"] for e in events if e.get("conversation_id"))
        visitor.post(
            "/v1/public/leads",
            json={
                "bot_id": bot_id,
                "session_id": "v1",
                "conversation_id": cid,
                "name": "Ada Lovelace",
                "email": "ada@example.com",
            },
        )
        asked = visitor.post(f"/v1/public/conversations/{cid}/handoff", json={"session_id": "v1"})
        assert asked.json()["conversation_status"] == "pending_human", asked.text

    # The Playground keeps a turn on the page.
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/playground")
    page.fill("#playground textarea[name=question]", "When is the shop open?")
    page.locator("#playground button[type=submit]").tap()
    expect(page.locator("#playground-log .turn").first).to_have_attribute(
        "data-done", "", timeout=30_000
    )
    page.locator("#playground-log details.passages summary").first.tap()
    problems = page.evaluate(LAYOUT_PROBLEMS, PHONE["width"])
    assert problems == [], f"playground: {problems}"

    pages = {
        "bots": "/dashboard",
        "sources": f"/dashboard/bots/{bot_id}/sources",
        "settings": f"/dashboard/bots/{bot_id}/settings",
        "embed": f"/dashboard/bots/{bot_id}/embed",
        "bot-analytics": f"/dashboard/analytics?bot_id={bot_id}",
        "bot-conversations": f"/dashboard/conversations?bot_id={bot_id}",
        "conversations": "/dashboard/conversations",
        "inbox": "/dashboard/inbox",
        "analytics": "/dashboard/analytics",
        "leads": "/dashboard/leads",
        "api-keys": "/dashboard/api-keys",
        "members": "/dashboard/members",
        "account": "/dashboard/account",
        "conversation": f"/dashboard/conversations/{cid}",
    }
    for label, path in pages.items():
        check(page, chatwell + path, label)

    # The agent answers by tapping: from the Inbox into the conversation, a reply, sent.
    page.goto(f"{chatwell}/dashboard/inbox")
    row = page.locator("#inbox-queue tbody tr").first
    with page.expect_navigation():
        row.locator("a", has_text="Open and reply").tap()
    page.locator("#reply-form textarea").fill("Hello Ada, I can help with that.")
    with page.expect_navigation():
        page.locator("#reply-form button[type=submit]").first.tap()
    expect(page.locator("#conversation")).to_contain_text("Hello Ada, I can help with that.")
    problems = page.evaluate(LAYOUT_PROBLEMS, PHONE["width"])
    assert problems == [], f"conversation after the reply: {problems}"
    assert errors == []
