"""Web sources over time: a crawl turns a small site into one source per allowed page, and a
re-sync replaces a page's chunks with its new content (the old ones serve until then, and none
is left afterwards)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from chatwell.storage.tables import Bot, Chunk, Conversation, Message, Source
from tests.helpers import count_rows, make_bot
from tests.ingestion.helpers import Route, SiteServer, html_page

from .helpers import (
    add,
    all_sources,
    chunks_of,
    idle,
    keyword_hits,
    search,
    source,
    sources_url,
    top,
)


def _serve_site(site: SiteServer) -> None:
    site.routes["/robots.txt"] = Route(
        body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    site.page(
        "/",
        html_page(
            "Harbour Cafe",
            "Welcome to the Harbour Cafe on the old pier.",
            links=("/menu", "/contact", "/private/accounts"),
        ),
    )
    site.page(
        "/menu",
        html_page(
            "Menu",
            "Our signature dish is grilled sardines with lemon potatoes.",
            links=("/", "/events"),
        ),
    )
    site.page(
        "/contact", html_page("Contact", "Book a table by calling the harbour office after noon.")
    )
    site.page(
        "/events",
        html_page("Events", "Live fado music plays every Thursday evening on the terrace."),
    )
    site.page("/private/accounts", html_page("Accounts", "Quarterly revenue ledger zebrafinch."))


async def _crawled(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer, *, max_pages: int = 10
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cafe's site crawled into a new bot: the bot and the crawl's root source."""
    _serve_site(site)
    bot = await make_bot(client)
    root = await add(
        client, bot, type="url", url=site.url("/"), crawl=True, max_pages=max_pages, max_depth=3
    )
    await idle(app)
    return bot, root


async def _pages(
    client: httpx.AsyncClient, bot: dict[str, Any], root: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    return {c["url"]: c for c in await all_sources(client, bot) if c["parent_id"] == root["id"]}


async def test_crawl_makes_one_ready_source_per_allowed_page(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    bot, root = await _crawled(client, app, site)

    root_state = await source(client, bot, root["id"])
    assert root_state["status"] == "ready" and root_state["error_code"] is None, root_state
    assert root_state["chunk_count"] == 0 and await chunks_of(app, root["id"]) == []
    children = [s for s in await all_sources(client, bot) if s["parent_id"] == root["id"]]
    expected = {
        site.url(p): t
        for p, t in (
            ("/", "Harbour Cafe"),
            ("/menu", "Menu"),
            ("/contact", "Contact"),
            ("/events", "Events"),
        )
    }
    assert {c["url"]: c["title"] for c in children} == expected
    for child in children:
        assert child["type"] == "url" and child["status"] == "ready", child
        rows = await chunks_of(app, child["id"])
        assert child["chunk_count"] == len(rows) > 0, child
    # robots.txt kept the crawler out of /private/, and nothing from it is searchable.
    assert "/private/accounts" not in site.paths()
    assert await keyword_hits(app, bot["id"], "zebrafinch") == {}
    # Each page was fetched once: the worker indexes the crawled bytes, it does not refetch them.
    assert site.paths().count("/menu") == 1

    by_url = {c["url"]: c for c in children}
    hit = top(await search(client, bot, "What is the signature dish?", k=3))
    assert hit["source_id"] == by_url[site.url("/menu")]["id"]
    assert (
        hit["url"] == site.url("/menu") and hit["title"] == "Menu" and hit["source_type"] == "url"
    )
    hit = top(await search(client, bot, "When is there live music?", k=3))
    assert hit["source_id"] == by_url[site.url("/events")]["id"] and hit["title"] == "Events"

    # Deleting the root takes its pages and their chunks along.
    assert (await client.delete(f"{sources_url(bot)}/{root['id']}")).status_code == 204
    assert await count_rows(app, Source, bot_id=uuid.UUID(bot["id"])) == 0
    assert await count_rows(app, Chunk, bot_id=uuid.UUID(bot["id"])) == 0
    assert (await search(client, bot, "What is the signature dish?"))["data"] == []


async def test_a_recrawl_removes_the_pages_the_site_no_longer_has(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    bot, root = await _crawled(client, app, site)
    before = await _pages(client, bot, root)
    events = before[site.url("/events")]
    assert await keyword_hits(app, bot["id"], "fado")

    del site.routes["/events"]  # the site dropped it: the menu's link to it answers 404 now
    site.routes["/contact"] = Route(status=500, body=b"try again later")  # down for a moment
    synced = await client.post(f"{sources_url(bot)}/{root['id']}/sync")
    assert synced.status_code == 202
    await idle(app)

    after = await _pages(client, bot, root)
    assert set(after) == set(before) - {site.url("/events")}  # the failing page stays
    assert after[site.url("/menu")]["id"] == before[site.url("/menu")]["id"]
    assert after[site.url("/contact")]["status"] == "ready"
    assert await chunks_of(app, events["id"]) == []
    assert await keyword_hits(app, bot["id"], "fado") == {}
    assert (await client.get(f"{sources_url(bot)}/{events['id']}")).status_code == 404
    assert await keyword_hits(app, bot["id"], "sardines")  # the pages still there still answer


async def test_a_recrawl_with_a_page_down_keeps_what_only_that_page_links_to(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    # The menu page links to the events page and nothing else does: while the menu answers 500
    # the crawl cannot reach the events page, which is still there. Neither is removed.
    bot, root = await _crawled(client, app, site)
    before = await _pages(client, bot, root)
    site.routes["/menu"] = Route(status=500, body=b"try again later")
    assert (await client.post(f"{sources_url(bot)}/{root['id']}/sync")).status_code == 202
    await idle(app)

    after = await _pages(client, bot, root)
    assert set(after) == set(before)
    assert site.paths().count("/events") == 1  # only the first crawl reached it
    assert await keyword_hits(app, bot["id"], "fado") and await keyword_hits(
        app, bot["id"], "sardines"
    )


async def test_a_recrawl_cut_short_by_its_page_cap_removes_nothing(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    # Fewer pages allowed than the site has (4): the crawl cannot tell a page that is gone from
    # one it had no room for.
    bot, root = await _crawled(client, app, site, max_pages=3)
    before = set(await _pages(client, bot, root))
    assert len(before) == 3
    gone = sorted(before - {site.url("/")})[0]
    del site.routes[gone.removeprefix(site.origin)]
    assert (await client.post(f"{sources_url(bot)}/{root['id']}/sync")).status_code == 202
    await idle(app)
    after = set(await _pages(client, bot, root))
    assert before <= after and gone in after


async def test_resync_replaces_the_old_version(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    version = {
        "body": html_page(
            "Museum",
            "The museum opens at eight. Visitors are greeted by the "
            "flamingo statue in the entrance hall.",
        )
    }
    delay = {"seconds": 0.0}
    site.routes["/museum"] = lambda: Route(body=version["body"].encode(), delay=delay["seconds"])
    bot = await make_bot(client)
    added = await add(client, bot, type="url", url=site.url("/museum"))
    await idle(app)
    before = await source(client, bot, added["id"])
    assert before["status"] == "ready" and before["title"] == "Museum"
    old_rows = await chunks_of(app, added["id"])
    assert old_rows and "flamingo" in top(await search(client, bot, "flamingo statue"))["text"]

    version["body"] = html_page(
        "Museum",
        "Since the renovation the museum opens at ten, and a bronze "
        "pelican sculpture now welcomes visitors in the courtyard.",
    )
    delay["seconds"] = 0.5  # the new fetch is slow, so the swap happens visibly later
    synced = await client.post(f"{sources_url(bot)}/{added['id']}/sync")
    assert synced.status_code == 202 and synced.json()["status"] == "pending"
    # Until the new version is indexed, the old chunks keep serving.
    assert "flamingo" in top(await search(client, bot, "flamingo statue"))["text"]
    await idle(app)

    after = await source(client, bot, added["id"])
    assert after["status"] == "ready" and after["error_code"] is None, after
    rows = await chunks_of(app, added["id"])
    assert after["chunk_count"] == len(rows) > 0
    # Every row was written by the re-sync (SQLite may reuse a deleted rowid, so ids prove nothing).
    resynced_at = max(c.created_at for c in old_rows)
    assert all(c.created_at > resynced_at for c in rows), (
        "a chunk of the old version survived the re-sync"
    )
    assert all("flamingo" not in c.text for c in rows) and any("pelican" in c.text for c in rows)
    assert await count_rows(app, Chunk, bot_id=uuid.UUID(bot["id"])) == len(rows)
    assert site.paths().count("/museum") == 2

    new = await search(client, bot, "What welcomes visitors in the courtyard?")
    assert "pelican" in top(new)["text"] and top(new)["source_id"] == added["id"]
    old = await search(client, bot, "flamingo statue")
    assert all("flamingo" not in p["text"] for p in old["data"])
    assert await keyword_hits(app, bot["id"], "flamingo") == {}
    assert set(await keyword_hits(app, bot["id"], "pelican")) == {
        c.id for c in rows if "pelican" in c.text
    }


async def test_failed_resync_keeps_serving_the_last_good_version(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    up = {"ok": True}
    site.routes["/faq"] = lambda: (
        Route(body=html_page("FAQ", "Gift cards never expire.").encode())
        if up["ok"]
        else Route(503, b"down", "text/plain")
    )
    bot = await make_bot(client)
    added = await add(client, bot, type="url", url=site.url("/faq"))
    await idle(app)
    chunks = [c.id for c in await chunks_of(app, added["id"])]
    up["ok"] = False
    assert (await client.post(f"{sources_url(bot)}/{added['id']}/sync")).status_code == 202
    await idle(app)
    state = await source(client, bot, added["id"])
    assert state["status"] == "failed" and state["error_code"] == "http_error", state
    # The old chunks were not thrown away by the failed fetch.
    assert [c.id for c in await chunks_of(app, added["id"])] == chunks
    assert top(await search(client, bot, "Do gift cards expire?"))["source_id"] == added["id"]


async def test_deleting_a_crawl_of_1200_pages_takes_them_all(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # A documentation site's crawl is deleted with its root: every page goes, and a past answer
    # citing one of them stops naming it (SQLite refuses a search for 1,201 ids in one query).
    bot = await make_bot(client)
    bot_id = uuid.UUID(bot["id"])
    async with app.state.runtime.db.write() as session:
        workspace_id = (await session.get(Bot, bot_id)).workspace_id
        page = {"workspace_id": workspace_id, "bot_id": bot_id, "type": "url", "status": "ready"}
        root = Source(**page, title="docs", url="https://docs.example/", options={"crawl": True})
        session.add(root)
        await session.flush()
        pages = [
            Source(**page, parent_id=root.id, url=f"https://docs.example/p{n}", title=f"p{n}")
            for n in range(1200)
        ]
        session.add_all(pages)
        conversation = Conversation(workspace_id=workspace_id, bot_id=bot_id)
        session.add(conversation)
        await session.flush()
        cited = {"index": 1, "source_id": str(pages[700].id), "title": "p700", "snippet": "x"}
        answer = Message(conversation_id=conversation.id, role="assistant", citations=[cited])
        session.add(answer)
        await session.flush()
        answer_id = answer.id

    assert (await client.delete(f"{sources_url(bot)}/{root.id}")).status_code == 204
    assert await count_rows(app, Source, bot_id=bot_id) == 0
    async with app.state.runtime.db.read() as session:
        citations = (await session.get(Message, answer_id)).citations
    assert citations[0]["source_deleted"] is True and citations[0]["source_id"] is None
