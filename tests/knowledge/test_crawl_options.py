"""A crawl as the owner configures it (issue 23 item 6): include / exclude path patterns, a page
cap, pages that cannot be fetched counted as failed, and a scheduled re-crawl that the ingestion
worker runs by itself when it is due, re-embedding only the pages that changed."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from chatwell.services import sources as source_service
from chatwell.storage.tables import Source, utcnow
from tests.helpers import make_bot
from tests.ingestion.helpers import Route, SiteServer, html_page

from .helpers import add, all_sources, chunks_of, idle, source


def _serve_shop(site: SiteServer) -> None:
    links = ("/docs/install", "/docs/faq", "/docs/old/v1", "/blog/launch", "/docs/missing")
    site.page("/", html_page("Home", "Welcome to the lantern shop.", links=links))
    site.page("/docs/install", html_page("Install", "Hang the lantern on a brass hook."))
    site.page("/docs/faq", html_page("FAQ", "Lanterns run for nine hours on one charge."))
    site.page("/docs/old/v1", html_page("Old", "The first lantern had a paraffin wick."))
    site.page("/blog/launch", html_page("Launch", "We launched in the spring."))
    site.routes["/docs/missing"] = Route(500, b"broken", "text/plain")


async def _pages(client: httpx.AsyncClient, bot: dict, root_id: str) -> dict[str, dict]:
    return {s["url"]: s for s in await all_sources(client, bot) if s["parent_id"] == root_id}


async def test_include_exclude_cap_and_failed_pages(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    _serve_shop(site)
    bot = await make_bot(client)
    root = await add(
        client,
        bot,
        type="url",
        url=site.url("/"),
        crawl=True,
        max_depth=2,
        include=["/docs/*"],
        exclude=["/docs/old"],
    )
    await idle(app)

    pages = await _pages(client, bot, root["id"])
    # The start page is read for its links but is outside /docs/*; /docs/old and /blog are not
    # fetched at all; /docs/missing answered 500 and is counted as a failed page.
    assert set(pages) == {site.url("/docs/install"), site.url("/docs/faq")}
    assert "/docs/old/v1" not in site.paths() and "/blog/launch" not in site.paths()
    assert all(p["status"] == "ready" for p in pages.values())

    async with app.state.runtime.db.read() as session:
        row = await session.get(Source, uuid.UUID(root["id"]))
    progress = (await source_service.crawl_progress(app.state.runtime.db, roots=[row]))[row.id]
    assert (progress.status, progress.found, progress.ingested) == ("ready", 2, 2)
    assert progress.failed == 1 and progress.failed_pages[0]["url"] == site.url("/docs/missing")
    assert progress.chunks == sum(p["chunk_count"] for p in pages.values()) > 0
    assert progress.fraction == 1.0

    # A page cap of 1: one page, however many the site links.
    capped_bot = await make_bot(client)
    capped = await add(
        client,
        capped_bot,
        type="url",
        url=site.url("/"),
        crawl=True,
        max_pages=1,
        include=["/docs"],
    )
    await idle(app)
    assert len(await _pages(client, capped_bot, capped["id"])) == 1


async def test_bad_path_patterns_are_refused(client: httpx.AsyncClient) -> None:
    bot = await make_bot(client)
    response = await client.post(
        f"/v1/bots/{bot['id']}/sources",
        json={"type": "url", "url": "https://example.com/", "crawl": True, "include": ["docs"]},
    )
    assert response.status_code in (400, 422) and "path pattern" in response.text
    response = await client.post(
        f"/v1/bots/{bot['id']}/sources",
        json={"type": "url", "url": "https://example.com/", "resync": "hourly"},
    )
    assert response.status_code in (400, 422)


async def test_scheduled_recrawl_runs_when_due(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    faq = {"text": "Lanterns run for nine hours on one charge."}
    site.page("/", html_page("Home", "Welcome to the lantern shop.", links=("/faq", "/install")))
    site.routes["/faq"] = lambda: Route(body=html_page("FAQ", faq["text"]).encode())
    site.page("/install", html_page("Install", "Hang the lantern on a brass hook."))
    bot = await make_bot(client)
    root = await add(
        client, bot, type="url", url=site.url("/"), crawl=True, max_depth=1, resync="weekly"
    )
    await idle(app)
    state = await source(client, bot, root["id"])
    assert state["status"] == "ready"
    async with app.state.runtime.db.read() as session:
        row = await session.get(Source, uuid.UUID(root["id"]))
    assert row.next_sync_at is not None
    assert timedelta(days=6) < row.next_sync_at - utcnow() <= timedelta(days=7)
    pages = await _pages(client, bot, root["id"])
    install_chunks = await chunks_of(app, pages[site.url("/install")]["id"])
    fetched_before = site.paths().count("/faq")

    # Not due yet: the worker's check leaves it alone.
    assert await app.state.runtime.knowledge.ingestor.queue_due_resyncs() == 0

    # A week later (the clock moved back instead): the worker's own periodic check re-crawls it.
    faq["text"] = "Lanterns now run for twelve hours on one charge."
    async with app.state.runtime.db.write() as session:
        await session.execute(
            update(Source)
            .where(Source.id == row.id)
            .values(next_sync_at=utcnow() - timedelta(minutes=1))
        )
    app.state.runtime.ingestion.next_resync_check = 0.0
    app.state.runtime.ingestion.wake()
    await idle(app)

    assert site.paths().count("/faq") == fetched_before + 1
    pages = await _pages(client, bot, root["id"])
    faq_text = " ".join(c.text for c in await chunks_of(app, pages[site.url("/faq")]["id"]))
    assert "twelve hours" in faq_text and "nine hours" not in faq_text
    # The unchanged page kept its chunks (not re-embedded).
    after = await chunks_of(app, pages[site.url("/install")]["id"])
    assert [c.id for c in after] == [c.id for c in install_chunks]
    assert [c.created_at for c in after] == [c.created_at for c in install_chunks]
    async with app.state.runtime.db.read() as session:
        row = await session.get(Source, uuid.UUID(root["id"]))
    assert row.status == "ready" and row.next_sync_at > utcnow() + timedelta(days=6)


async def test_schedule_changes_on_an_existing_source(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    site.page("/", html_page("Home", "Welcome to the lantern shop."))
    bot = await make_bot(client)
    added = await add(client, bot, type="url", url=site.url("/"))
    await idle(app)
    async with app.state.runtime.db.read() as session:
        row = await session.get(Source, uuid.UUID(added["id"]))
    assert row.next_sync_at is None
    principal = await _owner(app)
    changed = await source_service.set_resync(
        app.state.runtime.db,
        principal=principal,
        bot_ref=bot["id"],
        source_id=added["id"],
        every="daily",
    )
    assert changed.options["resync"] == "daily"
    assert timedelta(hours=23) < changed.next_sync_at - utcnow() <= timedelta(days=1)
    off = await source_service.set_resync(
        app.state.runtime.db,
        principal=principal,
        bot_ref=bot["id"],
        source_id=added["id"],
        every=None,
    )
    assert off.next_sync_at is None and off.options["resync"] is None


async def _owner(app: FastAPI):
    from chatwell.services import keys
    from tests.conftest import ADMIN_KEY

    return await keys.authenticate(app.state.runtime.db, ADMIN_KEY)
