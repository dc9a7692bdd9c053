"""Native source endpoints: add (text, Q&A, URL, file), read, list, delete with its chunks."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI

from chatwell.storage.tables import Chunk, Source, SourceContent
from tests.helpers import bearer, count_rows, make_bot, make_key


async def test_add_each_kind_of_source(client: httpx.AsyncClient) -> None:
    bot = await make_bot(client)
    base = f"/v1/bots/{bot['id']}/sources"
    bodies = [
        {"type": "text", "title": "Hours", "text": "We open at nine."},
        {"type": "qa", "question": "Do you ship abroad?", "answer": "Yes, to the EU."},
        {"type": "url", "url": "https://docs.example.com/start", "crawl": True, "max_pages": 5},
    ]
    for body in bodies:
        response = await client.post(base, json=body)
        assert response.status_code == 202, response.text
        assert response.json()["type"] == body["type"]
        assert response.json()["status"] in ("pending", "processing", "ready", "failed")
    upload = await client.post(
        base, files={"file": ("faq.md", b"# FAQ\n\nShipping is free.", "text/markdown")}
    )
    assert upload.status_code == 202, upload.text
    assert upload.json()["filename"] == "faq.md" and upload.json()["size_bytes"] == 24
    listed = (await client.get(base)).json()["data"]
    assert sorted(s["type"] for s in listed) == ["file", "qa", "text", "url"]
    one = await client.get(f"{base}/{upload.json()['id']}")
    assert one.status_code == 200
    assert set(one.json()) >= {"id", "type", "title", "status", "error", "chunk_count"}


async def test_bad_source_bodies_are_refused_and_write_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    base = f"/v1/bots/{bot['id']}/sources"
    cases = [
        (b"{oops", "application/json", "malformed_json"),
        (b'{"type": "pdf"}', "application/json", "invalid_request"),
        (b'{"type": "text", "text": "   "}', "application/json", "invalid_request"),
        (b'{"type": "url", "url": "ftp://example.com/x"}', "application/json", "invalid_request"),
        (b'{"type": "qa", "question": "q"}', "application/json", "invalid_request"),
    ]
    for body, ctype, code in cases:
        response = await client.post(base, content=body, headers={"content-type": ctype})
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == code, (body, response.text)
    no_file = await client.post(base, files={"other": ("a.txt", b"x", "text/plain")})
    assert no_file.status_code == 400 and no_file.json()["error"]["code"] == "missing_file"
    empty = await client.post(base, files={"file": ("a.txt", b"", "text/plain")})
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_file"
    assert await count_rows(app, Source) == 0


async def test_upload_over_the_limit_is_refused(make_settings, announcements) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import ADMIN_KEY
    from tests.helpers import build_app

    app = build_app(make_settings(max_upload_bytes=10_000), announce=announcements.append)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=bearer(ADMIN_KEY)
        ) as client:
            bot = await make_bot(client)
            response = await client.post(
                f"/v1/bots/{bot['id']}/sources",
                files={"file": ("big.txt", b"a" * 20_000, "text/plain")},
            )
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "payload_too_large"
            assert await count_rows(app, Source) == 0


async def test_delete_removes_the_source_its_content_and_its_chunks(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    base = f"/v1/bots/{bot['id']}/sources"
    source = (
        await client.post(base, json={"type": "text", "title": "t", "text": "hello world"})
    ).json()
    keep = (await client.post(base, json={"type": "text", "title": "k", "text": "keep me"})).json()
    # The app's ingestion worker indexes both: wait for their chunks rather than race it.
    for _ in range(600):
        listed = (await client.get(base)).json()["data"]
        if all(s["status"] in ("ready", "failed") for s in listed):
            break
        await asyncio.sleep(0.1)
    assert {s["status"] for s in listed} == {"ready"}
    assert await count_rows(app, Chunk, source_id=uuid.UUID(source["id"])) >= 1
    assert await count_rows(app, Chunk, source_id=uuid.UUID(keep["id"])) >= 1
    kept_chunks = await count_rows(app, Chunk, source_id=uuid.UUID(keep["id"]))
    assert (await client.delete(f"{base}/{source['id']}")).status_code == 204
    assert (await client.get(f"{base}/{source['id']}")).status_code == 404
    assert await count_rows(app, Chunk, source_id=uuid.UUID(source["id"])) == 0
    assert await count_rows(app, SourceContent, source_id=uuid.UUID(source["id"])) == 0
    assert await count_rows(app, Chunk, source_id=uuid.UUID(keep["id"])) == kept_chunks
    assert (await client.delete(f"{base}/{source['id']}")).status_code == 404
    assert (await client.get(f"{base}/not-a-uuid")).status_code == 404


async def test_sources_are_workspace_admin_only_and_isolated(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    from chatwell.services import workspaces

    bot = await make_bot(client)
    base = f"/v1/bots/{bot['id']}/sources"
    source = (await client.post(base, json={"type": "text", "title": "t", "text": "x"})).json()
    bot_key = (await make_key(client, bot_id=bot["id"]))["key"]
    assert (await client.get(base, headers=bearer(bot_key))).status_code == 403
    _, other_key = await workspaces.create_workspace(app.state.runtime.db, name="Other")
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{base}/{source['id']}", headers=bearer(other_key))
        assert response.status_code == 404
    response = await client.post(
        base, json={"type": "text", "title": "t", "text": "x"}, headers=bearer(other_key)
    )
    assert response.status_code == 404
    assert (await client.get(f"{base}/{source['id']}")).status_code == 200
