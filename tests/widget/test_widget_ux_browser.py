"""What visitors see (issue 23 item 10), in real Chromium: a light brand colour gets dark text
(WCAG AA contrast computed, and the dashboard warns); the contact form offered after N messages
comes below the answer without taking focus and can be dismissed; citation numbers in the text
match the source list; the log opens at the newest message; the input is 16 px and the controls
44 px; a Stop button ends an answer that is still coming."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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
from tests.widget.browser import host_site

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
YELLOW = "#fde047"
YELLOW_RGB = (0xFD, 0xE0, 0x47)


def rgb(css: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    def lum(c: tuple[int, ...]) -> float:
        parts = [v / 255 for v in c]
        lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    x, y = lum(a), lum(b)
    return (max(x, y) + 0.05) / (min(x, y) + 0.05)


def test_what_visitors_see(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    from playwright.sync_api import expect

    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = Errors(page)
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Sunny Shop")
    page.fill("form textarea[name=text]", HOURS)
    submit(page, "form:has(input[name=kind][value=text])")
    wait_all_ready(page, 1)
    host = live_server.start(host_site(chatwell, bot_id))
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    page.check("input[name=public]")
    page.fill("textarea[name=allowed_origins]", host)
    page.locator("input[name=primary_color]").evaluate(
        f"e => {{ e.value = '{YELLOW}'; e.dispatchEvent(new Event('input', {{bubbles: true}})); }}"
    )
    warning = page.locator("[data-contrast-warning]")
    expect(warning).to_be_visible()
    assert "dark text" in warning.inner_text()
    head = page.locator("[data-preview-head]")
    assert contrast(rgb(head.evaluate("e => getComputedStyle(e).color")), YELLOW_RGB) >= 4.5
    page.check("input[name=contact_enabled]")
    page.select_option("select[name=contact_trigger]", "after_messages")
    page.fill("input[name=contact_after_messages]", "1")
    shot(page, "settings-contrast-warning")
    submit(page, f"form[action='/dashboard/bots/{bot_id}/settings']")

    visitor_ctx = chromium.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    visitor = visitor_ctx.new_page()
    visitor_errors = Errors(visitor)
    visitor.goto(host)
    launcher = visitor.locator("chatwell-widget .cw-launcher").bounding_box()
    assert launcher is not None and launcher["height"] >= 44 and launcher["width"] >= 44
    visitor.locator("chatwell-widget .cw-launcher").click()
    widget = "chatwell-widget"
    # Readable on yellow: header, Send and the visitor's bubble use dark text (AA, 4.5:1).
    for part in (".cw-head", ".cw-form button[type=submit]"):
        colours = visitor.locator(f"{widget} {part}").evaluate(
            "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
        )
        assert contrast(rgb(colours[0]), rgb(colours[1])) >= 4.5, (part, colours)
    textarea = visitor.locator(f"{widget} .cw-form textarea")
    assert textarea.evaluate("e => getComputedStyle(e).fontSize") == "16px"  # no zoom on iOS
    for part in (".cw-form button[type=submit]", ".cw-close"):
        box = visitor.locator(f"{widget} {part}").bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, (part, box)

    textarea.fill("When is the shop open?")
    visitor.locator(f"{widget} .cw-form button[type=submit]").click()
    answer = visitor.locator(f"{widget} .cw-assistant[data-id]").last
    answer.wait_for(timeout=20_000)
    bubble = visitor.locator(f"{widget} .cw-user").last.evaluate(
        "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    )
    assert contrast(rgb(bubble[0]), rgb(bubble[1])) >= 4.5
    # Citation numbers: the [n] in the text is item n of the list.
    markers = [m.strip("[]") for m in answer.locator("sup.cw-cite").all_inner_texts()]
    numbers = answer.locator(".cw-sources li").evaluate_all(
        "items => items.map(li => String(li.value))"
    )
    assert markers and set(markers) <= set(numbers), (markers, numbers)
    # The contact form after 1 message: below the answer, not over it, no focus taken, dismissible.
    lead = visitor.locator(f"{widget} .cw-log .cw-lead")
    expect(lead).to_be_visible(timeout=10_000)
    after = visitor.locator(widget).evaluate("""host => {
        const root = host.shadowRoot, answers = root.querySelectorAll('.cw-assistant[data-id]');
        const last = answers[answers.length - 1], lead = root.querySelector('.cw-lead');
        return [Boolean(last.compareDocumentPosition(lead) & Node.DOCUMENT_POSITION_FOLLOWING),
                root.activeElement ? root.activeElement.closest('.cw-lead') !== null : false];
    }""")
    assert after == [True, False]
    shot(visitor, "widget-lead-below-answer")
    lead.locator("button", has_text="Not now").click()
    expect(lead).to_have_count(0)

    # Reopened: the log shows the newest message.
    for i in range(6):
        textarea.fill(f"Question number {i}: when are you open?")
        visitor.locator(f"{widget} .cw-form button[type=submit]").click()
        expect(visitor.locator(f"{widget} .cw-assistant[data-id]")).to_have_count(
            i + 2, timeout=20_000
        )
    visitor.locator(f"{widget} .cw-close").click()
    visitor.locator(f"{widget} .cw-launcher").click()
    at_bottom = visitor.locator(f"{widget} .cw-log").evaluate(
        "e => e.scrollTop + e.clientHeight >= e.scrollHeight - 4"
    )
    assert at_bottom

    # Stop: an answer held up on the way (the request is held, as on a slow network) is stopped.
    held: list[Any] = []
    visitor.route("**/v1/public/chat/stream", lambda route: held.append(route))
    textarea.fill("Are you open on Sunday?")
    send = visitor.locator(f"{widget} .cw-form button[type=submit]")
    send.click()
    expect(send).to_have_text("Stop")
    send.click()
    expect(visitor.locator(f"{widget} .cw-system", has_text="Stopped.")).to_be_visible(
        timeout=10_000
    )
    expect(send).to_have_text("Send")
    assert len(held) == 1
    for route in held:
        try:
            route.abort()
        except Exception:  # the browser already dropped the stopped request
            pass
    assert errors.items == [] and visitor_errors.items == []
    visitor_ctx.close()
    context.close()
