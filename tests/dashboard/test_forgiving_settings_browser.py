"""Settings and sources that forgive (issue 23 items 5 and 7), in real Chromium: a refused
setting is shown beside its field and every other edit stays on the page; the contact form's
fields are edited as rows (no pipe syntax); an empty file is refused on the Sources tab beside the
upload form; a PDF whose metadata title is "untitled" is listed and cited by its file name."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest

from chatwell.ingestion.loaders import pdf
from chatwell.ingestion.loaders._text import pick_title
from chatwell.settings import Settings
from tests.dashboard.test_dashboard_browser import (
    HOURS,
    VIEWPORT,
    Errors,
    create_bot,
    shot,
    sign_up,
    tiny_pdf,
    wait_all_ready,
)
from tests.helpers import build_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def untitled_pdf(text: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(BytesIO(tiny_pdf(text))))
    writer.add_metadata({"/Title": "untitled"})
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_placeholder_titles_fall_back(backend: str) -> None:
    assert pick_title("untitled", "Price list", "first line") == "Price list"
    assert pick_title("Microsoft Word - draft.docx", "Draft") == "Draft"
    assert pick_title("Untitled-3", None, "First line") == "First line"
    assert pick_title("Returns policy", "file") == "Returns policy"
    assert pdf.load(untitled_pdf(HOURS), "opening-hours.pdf").title == "opening hours"


def test_a_refused_setting_keeps_every_edit(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    from playwright.sync_api import expect

    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = Errors(page)
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Forgiving")

    # An empty file: refused beside the upload form, on the Sources tab.
    page.locator("form[enctype='multipart/form-data'] input[type=file]").set_input_files(
        {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""}
    )
    page.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    refusal = page.locator("[data-error=file]")
    expect(refusal).to_contain_text("empty.txt is empty", timeout=10_000)
    assert (
        page.locator("#sources").count() == 1
        and page.locator("form:has(input[name=kind][value=text])").count() == 1
    )

    # A PDF titled "untitled" in its metadata is listed by its file name.
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/sources")
    page.locator("form[enctype='multipart/form-data'] input[type=file]").set_input_files(
        {"name": "opening-hours.pdf", "mimeType": "application/pdf", "buffer": untitled_pdf(HOURS)}
    )
    with page.expect_navigation():
        page.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    wait_all_ready(page, 1)
    page.reload()
    assert (
        page.locator("#sources tr[data-source-id] td")
        .first.inner_text()
        .startswith("opening hours")
    )
    assert "untitled" not in page.locator("#sources").inner_text().lower()

    # Settings: several edits, then two contact fields with the same name.
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    page.fill("input[name=name]", "Forgiving Bot")
    page.fill("input[name=welcome_message]", "Hello there, how can I help?")
    page.check("input[name=contact_enabled]")
    page.fill("input[name=cf_0_name]", "email")
    page.fill("input[name=cf_0_label]", "Your email")
    page.select_option("select[name=cf_0_type]", "email")
    page.check("input[name=cf_0_required]")
    page.locator("[data-add-field]").click()
    page.fill("input[name=cf_1_name]", "email")
    page.fill("input[name=cf_1_label]", "Email again")
    url = page.url
    page.locator(f"form[action='/dashboard/bots/{bot_id}/settings'] button[type=submit]").click()
    inline = page.locator("#contact-fields + .field-error")
    expect(inline).to_contain_text("names must be unique", timeout=10_000)
    assert page.url == url  # still the same page, nothing lost
    assert page.input_value("input[name=name]") == "Forgiving Bot"
    assert page.input_value("input[name=welcome_message]") == "Hello there, how can I help?"
    assert page.input_value("input[name=cf_1_label]") == "Email again"
    shot(page, "settings-inline-error")

    # Fixed in place, saved; the rows come back from the server.
    page.fill("input[name=cf_1_name]", "phone")
    page.fill("input[name=cf_1_label]", "Phone")
    page.select_option("select[name=cf_1_type]", "phone")
    with page.expect_navigation():
        page.locator(
            f"form[action='/dashboard/bots/{bot_id}/settings'] button[type=submit]"
        ).click()
    assert "saved=1" in page.url
    assert page.input_value("input[name=name]") == "Forgiving Bot"
    assert page.input_value("input[name=cf_0_name]") == "email" and page.is_checked(
        "input[name=cf_0_required]"
    )
    assert page.input_value("input[name=cf_1_name]") == "phone" and not page.is_checked(
        "input[name=cf_1_required]"
    )
    assert page.input_value("input[name=cf_2_name]") == ""  # one blank row to add another
    # Removing a row and saving drops that field.
    page.locator("tr[data-field-row]:has(input[name=cf_1_name]) [data-remove-field]").click()
    with page.expect_navigation():
        page.locator(
            f"form[action='/dashboard/bots/{bot_id}/settings'] button[type=submit]"
        ).click()
    assert page.locator("input[name=cf_1_name]").input_value() == ""
    shot(page, "settings-contact-fields")
    assert errors.items == []
    context.close()
