"""Helpers for the knowledge tests: adding sources and searching through the public API, waiting
for the in-process ingestion worker, reading chunks straight from the database, and running an
app of one's own (custom settings, restarts) with its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from chatwell.settings import Settings
from chatwell.storage.tables import Chunk, Source
from tests.conftest import ADMIN_KEY
from tests.helpers import bearer, build_app

IDLE_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Start an app for ``settings`` (migrations, bootstrap, worker) and a client with the admin key."""
    app = build_app(settings, announce=lambda _: None)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=bearer(ADMIN_KEY)
        ) as client,
    ):
        yield app, client


async def idle(app: FastAPI) -> None:
    """Wait until the ingestion worker has nothing pending or in flight; fail (listing what is
    still queued) instead of hanging when it never gets there."""
    try:
        await asyncio.wait_for(app.state.runtime.ingestion.idle(), IDLE_TIMEOUT)
    except TimeoutError:
        async with app.state.runtime.db.read() as session:
            stuck = (
                await session.execute(
                    select(Source.title, Source.status, Source.attempts, Source.locked_at).where(
                        Source.status.in_(["pending", "processing"])
                    )
                )
            ).all()
        raise AssertionError(
            f"ingestion not idle after {IDLE_TIMEOUT:.0f}s; still queued: {stuck}"
        ) from None


def sources_url(bot: dict[str, Any]) -> str:
    return f"/v1/bots/{bot['id']}/sources"


async def add(client: httpx.AsyncClient, bot: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(sources_url(bot), json=body)
    assert response.status_code == 202, response.text
    return response.json()


async def upload(
    client: httpx.AsyncClient,
    bot: dict[str, Any],
    filename: str,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> dict[str, Any]:
    response = await client.post(sources_url(bot), files={"file": (filename, data, content_type)})
    assert response.status_code == 202, response.text
    return response.json()


async def source(client: httpx.AsyncClient, bot: dict[str, Any], source_id: str) -> dict[str, Any]:
    response = await client.get(f"{sources_url(bot)}/{source_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def all_sources(client: httpx.AsyncClient, bot: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(sources_url(bot), params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def search(
    client: httpx.AsyncClient, bot: dict[str, Any], query: str, k: int = 5, **kwargs: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/bots/{bot['id']}/search", json={"query": query, "k": k}, **kwargs
    )
    assert response.status_code == 200, response.text
    return response.json()


async def chunks_of(app: FastAPI, source_id: str | uuid.UUID) -> list[Chunk]:
    """The chunk rows of one source, in order."""
    async with app.state.runtime.db.read() as session:
        rows = await session.scalars(
            select(Chunk)
            .where(Chunk.source_id == uuid.UUID(str(source_id)))
            .order_by(Chunk.position, Chunk.id)
        )
        return list(rows.all())


async def keyword_hits(app: FastAPI, bot_id: str | uuid.UUID, query: str) -> dict[int, float]:
    """The keyword index's raw hits for ``query`` in one bot (either backend)."""
    index = app.state.runtime.knowledge.index
    async with app.state.runtime.db.read() as session:
        return await index.keyword_search(session, uuid.UUID(str(bot_id)), query, 100)


async def vector_hits(app: FastAPI, bot_id: str | uuid.UUID, query: str) -> dict[int, float]:
    """The vector index's raw hits for ``query`` in one bot (either backend)."""
    knowledge = app.state.runtime.knowledge
    vector = (await knowledge.embedder.embed([query]))[0]
    async with app.state.runtime.db.read() as session:
        return await knowledge.index.vector_search(session, uuid.UUID(str(bot_id)), vector, 100)


def docx_bytes(heading: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def encrypted_pdf(pdf: bytes, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def top(result: dict[str, Any]) -> dict[str, Any]:
    assert result["data"], f"search found nothing: {result}"
    return result["data"][0]
