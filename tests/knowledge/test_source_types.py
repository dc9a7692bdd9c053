"""Every kind of source, end to end through the API: added, ingested by the in-process worker,
and found by search for a question about it; failures end ``failed`` with a stable code and a
human message while the other sources keep ingesting; oversized uploads store nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from fastapi import FastAPI

from chatwell.settings import Settings
from chatwell.storage.tables import Source, SourceContent
from tests.helpers import count_rows, make_bot
from tests.ingestion.helpers import Route, SiteServer, make_pdf

from .helpers import (
    add,
    all_sources,
    chunks_of,
    docx_bytes,
    encrypted_pdf,
    idle,
    running,
    search,
    source,
    sources_url,
    top,
    upload,
)

MARKDOWN = b"""# Returns policy

## Refunds

Refunds are paid back to the original card within fourteen days of the returned parcel arriving
at our warehouse.

## Exchanges

Exchanges for a different size are free of charge.
"""

HTML = b"""<!doctype html><html><head><title>Espresso machine warranty</title></head><body>
<nav><a href="/">Home</a></nav>
<main><h1>Warranty</h1>
<p>Every espresso machine carries a two-year warranty that covers the pump and the boiler.</p>
</main><footer>Copyright</footer></body></html>"""

CSV = b"""plan,monthly price,storage
Starter,9 dollars,10 GB
Enterprise,249 dollars,50 TB
"""

PDF_PAGES = [
    "Installation guide\nUnpack the router and plug the power cable into the wall socket.",
    "Troubleshooting\nIf the blue light blinks three times, hold the reset button for ten seconds.",
]

URL_PAGE = """<!doctype html><html><head><title>Company history</title></head><body>
<h1>About us</h1><p>The company was founded in 1987 in Porto as a small bicycle repair shop.</p>
</body></html>"""


async def test_every_source_type_is_ingested_and_found(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    bot = await make_bot(client)
    site.page("/history", URL_PAGE)
    ids = {
        "text": (
            await add(
                client,
                bot,
                type="text",
                title="Lisbon office hours",
                text="Our Lisbon office is open Monday to Friday from nine to five. "
                "On Saturdays the Lisbon office opens from ten until one.",
            )
        )["id"],
        "qa": (
            await add(
                client,
                bot,
                type="qa",
                question="Do you ship to Canada?",
                answer="Yes. Parcels to Canada arrive in five to seven business days.",
            )
        )["id"],
        "markdown": (await upload(client, bot, "returns.md", MARKDOWN, "text/markdown"))["id"],
        "html": (await upload(client, bot, "warranty.html", HTML, "text/html"))["id"],
        "csv": (await upload(client, bot, "plans.csv", CSV, "text/csv"))["id"],
        "docx": (
            await upload(
                client,
                bot,
                "security.docx",
                docx_bytes(
                    "Security",
                    [
                        "Passwords are hashed with Argon2 before they are stored.",
                        "Two-factor authentication is available for every account.",
                    ],
                ),
            )
        )["id"],
        "pdf": (await upload(client, bot, "router.pdf", make_pdf(PDF_PAGES), "application/pdf"))[
            "id"
        ],
        "url": (await add(client, bot, type="url", url=site.url("/history")))["id"],
    }
    await idle(app)

    for kind, sid in ids.items():
        state = await source(client, bot, sid)
        assert state["status"] == "ready", (kind, state)
        assert state["error_code"] is None and state["error"] is None, (kind, state)
        rows = await chunks_of(app, sid)
        assert state["chunk_count"] == len(rows) > 0, (kind, state)
        assert state["progress"] == 1.0
        assert all(row.bot_id == uuid.UUID(bot["id"]) for row in rows)
        assert [row.position for row in rows] == list(range(len(rows))), kind

    questions = {
        "text": ("When is the Lisbon office open on Saturday?", "Saturdays"),
        "qa": ("How long does delivery to Canada take?", "five to seven business days"),
        "markdown": ("How long until I get my refund?", "fourteen days"),
        "html": ("What does the espresso machine warranty cover?", "pump and the boiler"),
        "csv": ("How much does the Enterprise plan cost per month?", "249 dollars"),
        "docx": ("How are passwords stored?", "Argon2"),
        "pdf": ("What should I do when the blue light blinks?", "reset button"),
        "url": ("When was the company founded?", "1987"),
    }
    wrong = []
    for kind, (question, expected) in questions.items():
        result = await search(client, bot, question, k=3)
        best = top(result)
        if best["source_id"] != ids[kind] or expected not in best["text"] or not result["relevant"]:
            wrong.append((kind, question, best["source_id"] == ids[kind], best["text"][:120]))
    assert not wrong, wrong

    # Citations: type, title, page and URL travel with the passage.
    pdf_hit = top(await search(client, bot, "blue light blinks three times reset button", k=3))
    assert pdf_hit["source_id"] == ids["pdf"] and pdf_hit["source_type"] == "file"
    assert pdf_hit["page"] == 2, pdf_hit
    first_page = top(await search(client, bot, "plug the power cable into the wall socket", k=3))
    assert first_page["source_id"] == ids["pdf"] and first_page["page"] == 1, first_page
    text_hit = top(await search(client, bot, "Lisbon office Saturday", k=3))
    assert (
        text_hit["title"] == "Lisbon office hours"
        and text_hit["page"] is None
        and text_hit["url"] is None
    )
    qa_hit = top(await search(client, bot, "Do you ship to Canada?", k=3))
    assert qa_hit["source_type"] == "qa" and qa_hit["title"] == "Do you ship to Canada?"

    url_state = await source(client, bot, ids["url"])
    assert url_state["title"] == "Company history" and url_state["url"] == site.url("/history")
    url_hit = top(await search(client, bot, "When was the company founded?", k=3))
    assert url_hit["source_type"] == "url"
    assert url_hit["title"] == "Company history" and url_hit["url"] == site.url("/history")
    assert site.paths().count("/history") == 1  # fetched once, by the worker

    # A file's title comes from the document when the caller gave only a file name.
    html_state = await source(client, bot, ids["html"])
    assert html_state["title"] == "Espresso machine warranty"
    assert html_state["filename"] == "warranty.html"
    # Boilerplate (nav, footer) is not indexed.
    html_text = " ".join(c.text for c in await chunks_of(app, ids["html"]))
    assert "Copyright" not in html_text and "Home" not in html_text


async def test_failures_are_reported_and_do_not_stop_other_sources(
    client: httpx.AsyncClient, app: FastAPI, site: SiteServer
) -> None:
    bot = await make_bot(client)
    site.page(
        "/empty",
        "<!doctype html><html><head><title>Nothing</title></head><body>"
        "<nav>Menu</nav><script>var x = 1;</script></body></html>",
    )
    site.routes["/gone"] = Route(404, b"<html><body>Not here</body></html>")
    good_before = await add(
        client,
        bot,
        type="text",
        title="Parking",
        text="Free parking for visitors is available behind the main building.",
    )
    failing = {
        "encrypted_pdf": await upload(
            client,
            bot,
            "secret.pdf",
            encrypted_pdf(make_pdf(["Top secret launch plans."]), "s3cret"),
            "application/pdf",
        ),
        # Named and declared as a PDF, but the bytes are binary junk: the content decides.
        "unsupported_type": await upload(
            client, bot, "invoice.pdf", bytes(range(256)) * 16, "application/pdf"
        ),
        # Starts like a PDF but is not one.
        "malformed_file": await upload(
            client, bot, "broken.pdf", b"%PDF-1.7\nthis is not really a pdf", "application/pdf"
        ),
        "empty_document": await add(client, bot, type="url", url=site.url("/empty")),
        "http_error": await add(client, bot, type="url", url=site.url("/gone")),
    }
    good_after = await add(
        client,
        bot,
        type="text",
        title="Pets",
        text="Dogs on a leash are welcome in the garden but not in the restaurant.",
    )
    await idle(app)

    for code, added in failing.items():
        state = await source(client, bot, added["id"])
        assert state["status"] == "failed", (code, state)
        assert state["error_code"] == code, (code, state)
        message = state["error"]
        assert isinstance(message, str) and " " in message and message != code, (code, message)
        assert "Traceback" not in message and "Error(" not in message, message
        assert state["chunk_count"] == 0 and await chunks_of(app, added["id"]) == []
    assert "404" in (await source(client, bot, failing["http_error"]["id"]))["error"]

    for good, question in (
        (good_before, "Where can visitors park?"),
        (good_after, "Can I bring my dog to the restaurant?"),
    ):
        state = await source(client, bot, good["id"])
        assert state["status"] == "ready" and state["chunk_count"] >= 1, state
        assert top(await search(client, bot, question, k=1))["source_id"] == good["id"]

    statuses = [s["status"] for s in await all_sources(client, bot)]
    assert sorted(statuses) == ["failed"] * len(failing) + ["ready"] * 2
    # Adding the same content again is a fresh attempt, not the failed source handed back.
    retry = await upload(client, bot, "invoice.pdf", bytes(range(256)) * 16, "application/pdf")
    assert retry["id"] != failing["unsupported_type"]["id"] and retry["status"] == "pending"
    await idle(app)


async def test_private_addresses_are_refused_by_default(
    make_settings: Callable[..., Settings], site: SiteServer
) -> None:
    site.page(
        "/internal",
        "<html><head><title>Intranet</title></head><body><p>Salaries.</p></body></html>",
    )
    async with running(make_settings()) as (app, client):  # crawl_allow_private left off
        bot = await make_bot(client)
        blocked = await add(client, bot, type="url", url=site.url("/internal"))
        fine = await add(
            client, bot, type="text", title="Hours", text="We open at nine every morning."
        )
        await idle(app)
        state = await source(client, bot, blocked["id"])
        assert state["status"] == "failed" and state["error_code"] == "blocked_address", state
        assert state["error"] and " " in state["error"]
        assert (await source(client, bot, fine["id"]))["status"] == "ready"
    assert "/internal" not in site.paths()  # refused before any connection was made


async def test_upload_over_the_limit_is_refused_and_stores_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(max_upload_bytes=4_000)) as (app, client):
        bot = await make_bot(client)
        big = ("word " * 2_000).encode()
        response = await client.post(
            sources_url(bot), files={"file": ("big.txt", big, "text/plain")}
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"

        # Without a Content-Length (chunked), the body is counted as it streams in.
        boundary = "chatwellboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
                f"Content-Type: text/plain\r\n\r\n"
            ).encode()
            + big
            + f"\r\n--{boundary}--\r\n".encode()
        )

        async def stream():  # type: ignore[no-untyped-def]
            for start in range(0, len(body), 1_000):
                yield body[start : start + 1_000]

        streamed = await client.post(
            sources_url(bot),
            content=stream(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["error"]["code"] == "payload_too_large"

        assert await count_rows(app, Source) == 0
        assert await count_rows(app, SourceContent) == 0
        # A file under the limit on the same app is accepted.
        small = await upload(client, bot, "small.txt", b"Small files are welcome.", "text/plain")
        await idle(app)
        assert (await source(client, bot, small["id"]))["status"] == "ready"
        assert await count_rows(app, Source) == 1
