"""A source's life in the index: deduplicated on the way in, removed completely (chunks, keyword
rows, vectors) on the way out, also with its bot, and processed exactly once: resumed after a
restart, and never taken from a worker that is still busy with it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from chatwell.settings import Settings
from chatwell.storage.tables import Chunk, Source, SourceContent, utcnow
from tests.helpers import count_rows, make_bot
from tests.ingestion.helpers import SiteServer

from .helpers import (
    add,
    all_sources,
    chunks_of,
    idle,
    keyword_hits,
    running,
    search,
    source,
    sources_url,
    top,
    vector_hits,
)

LONG_TEXT = "\n\n".join(
    f"Section {n}. The lighthouse keeper logs the weather at dawn on day {n}, checks the lamp, "
    f"polishes the brass fittings and records passing ships in the harbour ledger."
    for n in range(1, 25)
)


async def test_the_same_text_twice_is_one_source(client: httpx.AsyncClient, app: FastAPI) -> None:
    bot = await make_bot(client)
    body = {"type": "text", "title": "Refunds", "text": "Refunds are paid within fourteen days."}
    first = await add(client, bot, **body)
    again = await add(client, bot, **body)
    assert again["id"] == first["id"]
    await idle(app)
    chunks = await count_rows(app, Chunk)
    assert chunks == (await source(client, bot, first["id"]))["chunk_count"] > 0
    # Also once it is ready: same id back, nothing queued, no new chunk.
    third = await add(client, bot, **body)
    assert third["id"] == first["id"] and third["status"] == "ready"
    await idle(app)
    assert await count_rows(app, Chunk) == chunks
    assert await count_rows(app, Source) == 1 and await count_rows(app, SourceContent) == 1
    assert len((await search(client, bot, "When are refunds paid?", k=10))["data"]) == chunks
    # Different text, or the same text in another bot, is a source of its own.
    other = await add(client, bot, **{**body, "text": "Refunds are paid within thirty days."})
    assert other["id"] != first["id"]
    other_bot = await make_bot(client, name="Other Bot")
    elsewhere = await add(client, other_bot, **body)
    assert elsewhere["id"] != first["id"]
    await idle(app)
    assert await count_rows(app, Source) == 3


async def test_delete_removes_chunks_keywords_and_vectors(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    doomed = await add(
        client,
        bot,
        type="text",
        title="Quokka care",
        text="\n\n".join(
            f"Recipe {n}: the quokkaberry smoothie number {n} is blended with {fruit} and served on Tuesdays."
            for n, fruit in enumerate(["mango", "banana", "kiwi", "apple", "lime", "pear"] * 6)
        ),
    )
    kept = await add(
        client,
        bot,
        type="text",
        title="Garden cafe",
        text="The garden cafe serves coffee, cakes and fresh juice every day.",
    )
    await idle(app)
    doomed_rows = await chunks_of(app, doomed["id"])
    doomed_ids = {c.id for c in doomed_rows}
    assert doomed_ids
    # Before: found by search, the keyword index and the vector index.
    assert top(await search(client, bot, "quokkaberry smoothie"))["source_id"] == doomed["id"]
    assert doomed_ids <= set(await keyword_hits(app, bot["id"], "quokkaberry"))
    assert doomed_ids <= set(await vector_hits(app, bot["id"], "quokkaberry smoothie on Tuesdays"))

    assert (await client.delete(f"{sources_url(bot)}/{doomed['id']}")).status_code == 204

    # The best remaining passage is still found, even with k=1 (no deleted chunk takes its place).
    only = await search(client, bot, "smoothie with mango", k=1)
    assert [p["source_id"] for p in only["data"]] == [kept["id"]], only
    result = await search(client, bot, "quokkaberry smoothie", k=10)
    assert all(
        p["source_id"] != doomed["id"] and "quokkaberry" not in p["text"] for p in result["data"]
    )
    assert [p["source_id"] for p in result["data"]] == [kept["id"]]
    assert await chunks_of(app, doomed["id"]) == []
    assert await keyword_hits(app, bot["id"], "quokkaberry") == {}
    stale = doomed_ids & set(await vector_hits(app, bot["id"], "quokkaberry smoothie on Tuesdays"))
    assert not stale, f"the vector index still returns deleted chunks {stale}"
    # The keyword index holds exactly the chunks that remain.
    assert set(await keyword_hits(app, bot["id"], "cafe")) == {
        c.id for c in await chunks_of(app, kept["id"])
    }
    assert (await source(client, bot, kept["id"]))["status"] == "ready"


async def test_deleting_a_bot_removes_its_chunks(client: httpx.AsyncClient, app: FastAPI) -> None:
    doomed_bot = await make_bot(client, name="Doomed Bot")
    kept_bot = await make_bot(client, name="Kept Bot")
    await add(
        client,
        doomed_bot,
        type="text",
        title="Axolotl",
        text="The axolotlium exhibit is closed for cleaning on Mondays.",
    )
    kept = await add(
        client,
        kept_bot,
        type="text",
        title="Aquarium",
        text="The aquarium opens at nine and the axolotlium tank is on the first floor.",
    )
    await idle(app)
    assert await count_rows(app, Chunk, bot_id=uuid.UUID(doomed_bot["id"])) >= 1
    assert await keyword_hits(app, doomed_bot["id"], "axolotlium")

    assert (await client.delete(f"/v1/bots/{doomed_bot['id']}")).status_code == 204

    assert await count_rows(app, Chunk, bot_id=uuid.UUID(doomed_bot["id"])) == 0
    assert await count_rows(app, Source, bot_id=uuid.UUID(doomed_bot["id"])) == 0
    assert await count_rows(app, SourceContent) == 1
    # FK cascade deletes the chunks, and the keyword index has nothing left of them.
    assert await keyword_hits(app, doomed_bot["id"], "axolotlium") == {}
    assert len(await keyword_hits(app, kept_bot["id"], "axolotlium")) == 1
    hit = top(await search(client, kept_bot, "axolotlium"))
    assert hit["source_id"] == kept["id"]
    assert (
        await client.post(f"/v1/bots/{doomed_bot['id']}/search", json={"query": "axolotlium"})
    ).status_code == 404


async def test_restart_resumes_an_interrupted_source_exactly_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(ingestion_lease_seconds=5)
    async with running(settings) as (app, client):
        await (
            app.state.runtime.ingestion.stop()
        )  # this process will "crash" before finishing the work
        bot = await make_bot(client)
        added = await add(client, bot, type="text", title="Lighthouse", text=LONG_TEXT)
        ingestor = app.state.runtime.knowledge.ingestor
        claimed = await ingestor.claim_next()
        assert claimed == uuid.UUID(added["id"])
        state = await source(client, bot, added["id"])
        assert state["status"] == "processing"
        # While its worker's lease is fresh, nobody else takes it.
        assert await ingestor.claim_next() is None
        # The worker dies here. Pretend it was a while ago, longer than the lease.
        async with app.state.runtime.db.write() as session:
            await session.execute(
                update(Source)
                .where(Source.id == claimed)
                .values(locked_at=utcnow() - timedelta(seconds=30))
            )
    async with running(settings) as (app, client):
        await idle(app)
        state = await source(client, bot, added["id"])
        assert state["status"] == "ready" and state["error_code"] is None, state
        rows = await chunks_of(app, added["id"])
        assert state["chunk_count"] == len(rows) > 1
        assert [c.position for c in rows] == list(range(len(rows)))  # no duplicates, no gaps
        async with app.state.runtime.db.read() as session:
            attempts, locked_by = (
                await session.execute(
                    select(Source.attempts, Source.locked_by).where(Source.id == claimed)
                )
            ).one()
            distinct = await session.scalar(
                select(func.count(func.distinct(Chunk.content_hash))).where(
                    Chunk.source_id == claimed
                )
            )
        assert attempts == 2 and locked_by is None
        assert distinct == len(rows)
        assert await count_rows(app, Chunk) == len(rows)
        hit = top(await search(client, bot, "Who records passing ships?"))
        assert hit["source_id"] == added["id"]
        assert len(await all_sources(client, bot)) == 1


async def test_a_live_worker_keeps_its_lease_on_a_slow_source(
    make_settings: Callable[..., Settings], site: SiteServer
) -> None:
    # The page takes longer to arrive than the lease: the worker is alive and busy with it the whole
    # time, so nobody may take the source over (it would be fetched, embedded and written twice).
    site.page(
        "/slow",
        "<html><head><title>Slow page</title></head><body><p>The ferry to the island "
        "leaves at noon.</p></body></html>",
        delay=7.5,
    )
    async with running(make_settings(ingestion_lease_seconds=5, crawl_allow_private=True)) as (
        app,
        client,
    ):
        bot = await make_bot(client)
        added = await add(client, bot, type="url", url=site.url("/slow"))
        await idle(app)
        state = await source(client, bot, added["id"])
        assert state["status"] == "ready" and state["title"] == "Slow page", state
        async with app.state.runtime.db.read() as session:
            attempts = await session.scalar(
                select(Source.attempts).where(Source.id == uuid.UUID(added["id"]))
            )
        fetches = site.paths().count("/slow")
        assert (attempts, fetches) == (1, 1), (
            f"a source still being worked on was claimed {attempts} times and fetched {fetches} times"
        )
