"""A crawl in the dashboard (issue 23 item 6), in real Chromium against a real site on loopback:
the site is ONE row whose pages found / ingested / failed and progress update live (no reload),
include / exclude patterns, a page cap and an automatic re-crawl are set in the add form, the
schedule changes on the row, the pages fold out (a page the crawl could not fetch is listed), and
Delete asks first, saying how many pages and chunks go."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.dashboard.test_dashboard_browser import VIEWPORT, create_bot, shot, sign_up
from tests.helpers import bearer, build_app
from tests.ingestion.helpers import Route, SiteServer, html_page

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
DOCS = [f"/docs/page-{n}" for n in range(1, 6)]


@pytest.fixture
def site() -> Iterator[SiteServer]:
    server = SiteServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _serve(site: SiteServer) -> None:
    links = (*DOCS, "/docs/broken", "/docs/archive/2019", "/careers")
    site.page("/", html_page("Lantern shop", "Welcome to the lantern shop.", links=links))
    for number, path in enumerate(DOCS, start=1):
        # Slow pages: the crawl takes a few seconds, long enough to watch it move.
        site.page(
            path,
            html_page(f"Guide {number}", f"Guide {number}: lanterns need care step {number}."),
            delay=0.6,
        )
    site.routes["/docs/broken"] = Route(500, b"broken", "text/plain")
    site.page("/docs/archive/2019", html_page("Archive", "Old news."))
    site.page("/careers", html_page("Careers", "Join us."))


def test_crawl_is_one_live_row(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any, site: SiteServer
) -> None:
    from playwright.sync_api import expect

    _serve(site)
    settings = make_settings(crawl_allow_private=True)
    chatwell = live_server.start(build_app(settings, announce=lambda _: None))
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    accept = {"delete": False}

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept() if accept["delete"] else dialog.dismiss()

    page.on("dialog", on_dialog)
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Lanterns")

    form = page.locator("form:has(input[name=kind][value=url])")
    form.locator("input[name=url]").fill(site.url("/"))
    form.locator("input[name=crawl]").check()
    form.locator("input[name=max_pages]").fill("20")
    form.locator("textarea[name=include]").fill("/docs/*")
    form.locator("textarea[name=exclude]").fill("/docs/archive")
    form.locator("select[name=resync]").select_option("weekly")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.evaluate("window.__notReloaded = true")

    rows = page.locator("#sources tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    status = row.locator('[data-field="status"]')
    expect(status).to_contain_text(re.compile("crawling|ingesting"))
    # Live: the counts climb while the pages are fetched, then the row settles, all without reload.
    expect(row.locator('[data-count="found"]')).to_have_text("5", timeout=60_000)
    expect(status).to_have_text("ready", timeout=60_000)
    expect(row.locator('[data-count="ingested"]')).to_have_text("5")
    expect(row.locator('[data-count="failed"]')).to_have_text("1")
    expect(row.locator('[data-field="progress"]')).to_be_hidden()
    assert page.evaluate("window.__notReloaded") is True
    expect(rows).to_have_count(1)  # the pages did not appear as loose rows
    chunks = int(row.locator('[data-field="chunk_count"]').inner_text())
    assert chunks >= 5
    assert "/careers" not in site.paths() and "/docs/archive/2019" not in site.paths()

    page.reload()
    row = page.locator("#sources tbody tr").first
    assert row.locator("td").nth(1).inner_text().strip() == "site"
    expect(row.locator('[data-field="progress"]')).to_be_hidden()
    row.locator("details.crawl-pages summary").click()
    listed = row.locator("details.crawl-pages li")
    expect(listed).to_have_count(6)
    expect(row.locator("details.crawl-pages")).to_contain_text("/docs/broken")
    expect(row.locator("details.crawl-pages")).to_contain_text("not fetched")
    expect(row.locator("select[name=resync]")).to_have_value("weekly")
    shot(page, "sources-crawl")

    # The schedule changes on the row.
    row.locator("select[name=resync]").select_option("daily")
    with page.expect_navigation():
        row.locator("form.schedule button").click()
    row = page.locator("#sources tbody tr").first
    expect(row.locator("select[name=resync]")).to_have_value("daily")
    expect(row.locator("form.schedule")).to_contain_text("next ")

    # Delete asks first and says what goes; dismissing keeps everything.
    row.locator("button", has_text="Delete").click()
    page.wait_for_timeout(300)
    assert len(dialogs) == 1, dialogs
    assert "5 crawled pages" in dialogs[0] and f"{chunks} chunks" in dialogs[0], dialogs
    assert site.url("/") in dialogs[0]
    expect(page.locator("#sources tbody tr[data-source-id]")).to_have_count(1)
    accept["delete"] = True
    with page.expect_navigation():
        row.locator("button", has_text="Delete").click()
    expect(page.locator("#sources tbody tr[data-source-id]")).to_have_count(0)
    listed = httpx.get(
        f"{chatwell}/v1/bots/{bot_id}/sources", headers=bearer(ADMIN_KEY), timeout=10
    )
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert errors == []
