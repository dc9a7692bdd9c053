"""Fixing bad answers (issue 23 item 9), in real Chromium: a question the bot could not answer is
listed under Analytics' Unanswered, "Add the answer" there creates a Q&A source, and the same
question then gets that answer; the Q&A source is edited in place and the next answer follows.
(Top questions leaving out messages to a person: tests/dashboard/test_agent_workspace.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import (
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

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
QUESTION = "Do you ship parcels to Canada?"


def public_answer(chatwell: str, bot_id: str, question: str, session: str) -> str:
    response = httpx.post(
        f"{chatwell}/v1/public/chat/stream",
        timeout=60,
        json={"bot_id": bot_id, "message": question, "session_id": session},
    )
    assert response.status_code == 200, response.text
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    return "".join(e.get("content", "") for e in events if e.get("type") == "content")


def test_add_the_answer_from_analytics(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    from playwright.sync_api import expect

    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = Errors(page)
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Shop")
    page.fill("form textarea[name=text]", HOURS)
    submit(page, "form:has(input[name=kind][value=text])")
    wait_all_ready(page, 1)
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    page.check("input[name=public]")
    submit(page, f"form[action='/dashboard/bots/{bot_id}/settings']")

    before = public_answer(chatwell, bot_id, QUESTION, "visitor-1")
    assert "Canada" not in before  # the not-found message

    page.goto(f"{chatwell}/dashboard/analytics")
    row = page.locator("#unanswered tbody tr", has_text=QUESTION)
    expect(row).to_have_count(1)
    row.locator("summary", has_text="Add the answer").click()
    row.locator("textarea[name=answer]").fill(
        "Yes, we ship parcels to Canada; delivery takes 5 working days."
    )
    shot(page, "analytics-add-answer")
    with page.expect_navigation():
        row.locator("button[type=submit]").click()
    assert "improved=1" in page.url and "/dashboard/analytics" in page.url
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/sources")
    wait_all_ready(page, 2)

    after = public_answer(chatwell, bot_id, QUESTION, "visitor-2")
    assert "5 working days" in after, after

    # Edited in place: the same source, a new answer.
    qa_row = page.locator("#sources tr[data-source-id]", has_text=QUESTION)
    source_id = qa_row.get_attribute("data-source-id")
    with page.expect_navigation():
        qa_row.locator("a", has_text="Edit").click()
    assert page.input_value("input[name=question]") == QUESTION
    page.fill(
        "textarea[name=answer]",
        "Yes, we ship parcels to Canada; delivery takes 3 working days now.",
    )
    submit(page, "#source-edit")
    wait_all_ready(page, 2)
    assert page.locator(f"#sources tr[data-source-id='{source_id}']").count() == 1
    assert page.locator("#sources tr[data-source-id]").count() == 2
    latest = public_answer(chatwell, bot_id, QUESTION, "visitor-3")
    assert "3 working days" in latest and "5 working days" not in latest, latest
    assert errors.items == []
    context.close()
