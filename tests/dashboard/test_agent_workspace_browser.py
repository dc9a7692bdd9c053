"""The support agent's day in real Chromium (issue 23 items 1-3): presence kept by any open
dashboard page, the title badge for a waiting visitor, "Talk to a person" before any question,
a live conversation page (the visitor's messages and typing appear without a reload, on two agent
pages at once), canned replies, the agent's typing shown in the widget, taking a conversation,
visitor context, and the widget's "waiting for a person" line surviving a reload.

Presence lapses after ``handoff.PRESENCE_SECONDS``; the test shortens it (the server runs in this
process) so that staying on the Bots page longer than that proves the page itself keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from chatwell.services import handoff
from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import (
    AGENT,
    HOURS,
    VIEWPORT,
    Errors,
    create_bot,
    shot,
    sign_up,
    submit,
    wait_all_ready,
)
from tests.helpers import build_app
from tests.widget.browser import host_site

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
CANNED = "Thanks for waiting! Let me check that for you."


def add_agent(owner: Any, chatwell: str) -> None:
    owner.goto(f"{chatwell}/dashboard/members")
    form = "form[action='/dashboard/members']"
    owner.fill(f"{form} input[name=email]", AGENT["email"])
    owner.fill(f"{form} input[name=name]", AGENT["name"])
    owner.select_option(f"{form} select[name=role]", "agent")
    owner.fill(f"{form} input[name=password]", AGENT["password"])
    submit(owner, form)


def sign_in(page: Any, chatwell: str, email: str, password: str) -> None:
    page.goto(f"{chatwell}/dashboard/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    submit(page, "form[action='/dashboard/login']")


def test_an_agent_answers_live(
    chromium: Any,
    make_settings: Callable[..., Settings],
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setattr(handoff, "PRESENCE_SECONDS", 8)
    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    owner_ctx = chromium.new_context(viewport=VIEWPORT)
    owner = owner_ctx.new_page()
    owner_errors = Errors(owner)
    sign_up(owner, chatwell)
    bot_id = create_bot(owner, "Shop Assistant")
    owner.fill("form textarea[name=text]", HOURS)
    submit(owner, "form:has(input[name=kind][value=text])")
    wait_all_ready(owner, 1)
    host = live_server.start(host_site(chatwell, bot_id))
    owner.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    owner.check("input[name=public]")
    owner.fill("textarea[name=allowed_origins]", host)
    owner.check("input[name=handoff_enabled]")
    owner.fill("textarea[name=handoff_canned_replies]", CANNED)
    submit(owner, f"form[action='/dashboard/bots/{bot_id}/settings']")
    add_agent(owner, chatwell)

    # The agent goes online from the Bots page and stays there, longer than presence lasts.
    agent_ctx = chromium.new_context(viewport=VIEWPORT)
    agent = agent_ctx.new_page()
    agent_errors = Errors(agent)
    sign_in(agent, chatwell, AGENT["email"], AGENT["password"])
    toggle = agent.locator("#presence-toggle button")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_contain_text("Online")
    time.sleep(handoff.PRESENCE_SECONDS + 5)
    assert agent.url.rstrip("/").endswith("/dashboard")
    base_title = agent.title()

    # A visitor asks for a person before asking anything else.
    visitor_ctx = chromium.new_context(viewport=VIEWPORT)
    visitor = visitor_ctx.new_page()
    visitor_errors = Errors(visitor)
    visitor.goto(host)
    visitor.locator("chatwell-widget .cw-launcher").click()
    visitor.locator("chatwell-widget .cw-human").click()
    status_line = visitor.locator("chatwell-widget .cw-status")
    expect(status_line).to_contain_text("Waiting for a person", timeout=15_000)
    widget_log = visitor.locator("chatwell-widget .cw-log")
    assert "Ask your question first" not in widget_log.inner_text()
    assert "Nobody" not in widget_log.inner_text()

    # The agent, still on the Bots page, is alerted: title and Inbox badge.
    expect(agent).to_have_title("(1) " + base_title, timeout=15_000)
    expect(agent.locator("#waiting-badge")).to_have_text("1")
    agent.goto(f"{chatwell}/dashboard/inbox")
    row = agent.locator("#inbox-queue tbody tr").first
    assert "Waiting for a person" in row.inner_text() and "pending_human" not in row.inner_text()
    shot(agent, "inbox-live")
    with agent.expect_navigation():
        row.locator("a", has_text="Open and reply").click()
    conversation_url = agent.url
    expect(agent.locator("#conversation")).to_have_attribute("data-live", "1", timeout=10_000)
    agent.evaluate("window.__sameDocument = 42")
    assert host.rstrip("/") in agent.locator("[data-field=page-url]").inner_text()

    # A second member (the owner) watches the same conversation.
    owner.goto(conversation_url)
    expect(owner.locator("#conversation")).to_have_attribute("data-live", "1", timeout=10_000)
    owner.evaluate("window.__sameDocument = 7")

    # The visitor types, then writes: both appear on the agent's page without a reload.
    visitor.locator("chatwell-widget textarea").fill("My parcel")
    expect(agent.locator("#visitor-typing")).to_be_visible(timeout=10_000)
    visitor.locator("chatwell-widget textarea").fill("My parcel is late, order 1234")
    visitor.locator("chatwell-widget .cw-form button[type=submit]").click()
    expect(agent.locator("#transcript")).to_contain_text("order 1234", timeout=10_000)
    expect(owner.locator("#transcript")).to_contain_text("order 1234", timeout=10_000)
    assert agent.evaluate("window.__sameDocument") == 42

    # A canned reply, and the visitor sees the agent typing, then the reply.
    agent.locator("[data-canned]").first.click()
    assert agent.locator("#reply-form textarea").input_value() == CANNED
    agent.locator("#reply-form textarea").press_sequentially(" One moment.")
    expect(visitor.locator("chatwell-widget .cw-agent-typing")).to_be_visible(timeout=10_000)
    shot(agent, "conversation-live")
    submit(agent, "#reply-form")
    bubble = visitor.locator("chatwell-widget .cw-agent")
    expect(bubble).to_contain_text("Let me check that for you. One moment.", timeout=15_000)
    expect(status_line).to_contain_text("You are chatting with")
    expect(owner.locator("#transcript")).to_contain_text("One moment.", timeout=10_000)
    assert owner.evaluate("window.__sameDocument") == 7  # the owner's page never reloaded
    expect(owner.locator("#conversation-head [data-field=status]")).to_have_text(
        "With a person", timeout=10_000
    )

    # The agent takes the conversation; the owner's page shows who has it.
    submit(agent, "form[action$='/assign']:has(input[value=me])")
    expect(agent.locator("[data-field=assignee]")).to_have_text(AGENT["name"])
    expect(owner.locator("[data-field=assignee]")).to_have_text(AGENT["name"], timeout=10_000)

    # After a reload the widget still says who holds the chat.
    visitor.reload()
    visitor.locator("chatwell-widget .cw-launcher").click()
    expect(visitor.locator("chatwell-widget .cw-status")).to_contain_text(
        "You are chatting with", timeout=10_000
    )
    shot(visitor, "widget-with-a-person")
    assert owner_errors.items == [] and agent_errors.items == [] and visitor_errors.items == []
    for context in (visitor_ctx, agent_ctx, owner_ctx):
        context.close()
