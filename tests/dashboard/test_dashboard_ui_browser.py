"""Two dashboard conveniences in real Chromium: a file dropped on the Sources tab's upload box is
uploaded (and ingested), and the Settings tab's widget preview follows colour, title and position."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import create_bot, sign_up, wait_all_ready
from tests.helpers import build_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def test_drop_a_file_and_preview_the_widget(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Dropper")
    with page.expect_navigation():
        page.evaluate("""() => {
            const zone = document.querySelector('[data-dropzone]');
            const data = new DataTransfer();
            data.items.add(new File(['Dropped notes: parcels leave the warehouse at noon.'], 'notes.txt', {type: 'text/plain'}));
            zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        }""")
    wait_all_ready(page, 1)
    # Uploaded as "notes.txt"; once ingested, titled by its file name ("notes"). Read after a
    # reload: the list shown before may have rendered either, depending on the ingestion's pace.
    page.reload()
    row = page.locator("#sources tbody tr").first.inner_text()
    assert row.split()[:3] == ["notes", "file", "ready"], row

    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    head = page.locator("[data-preview-head]")
    page.fill("input[name=widget_title]", "Parcel help")
    page.locator("input[name=primary_color]").evaluate(
        "e => { e.value = '#0f766e'; e.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    page.select_option("select[name=position]", "bottom-left")
    assert head.inner_text() == "Parcel help"
    assert head.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(15, 118, 110)"
    assert "left" in (page.locator("[data-widget-preview]").get_attribute("class") or "")
    assert errors == []
    page.close()
    assert re.fullmatch(r"[0-9a-f-]{36}", bot_id)
