"""The dashboard in real headless Chromium against a live server on a fresh install.

Golden path: sign up, create a bot, upload a PDF and watch it become ready, ask in the Playground
and see a cited answer, create a key and see its secret once, copy the embed snippet, chat through
it on a page of another origin, then find the conversation in Conversations and the counts in
Analytics. Agent path: the owner adds an agent; a visitor asks for a person in the widget; the
agent replies from the inbox and the visitor sees it; Settings and API keys are 403 for the agent.

Presence is still keyed by API keys (``agent_presence.key_id`` references ``api_keys``), so the
test marks an agent online with a workspace key created on the Keys page, through
``POST /v1/agents/presence``; the reply itself is sent by the signed-in agent from the dashboard.

With CHATWELL_SCREENSHOTS_DIR set, each dashboard page is saved there as a PNG.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app
from tests.widget.browser import host_site

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite"]
)  # the browser does not depend on the engine
OWNER = {"name": "Olga Owner", "email": "owner@example.com", "password": "correct horse battery"}
AGENT = {"name": "Dana Agent", "email": "dana@example.com", "password": "agent password 1"}
HOURS = "Opening hours: the shop is open Monday through Friday, 9 AM to 5 PM. Closed on weekends."
VIEWPORT = {"width": 1280, "height": 900}


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF with one line of Helvetica text, written by hand (no PDF library)."""
    line = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")
    content = b"BT /F1 11 Tf 40 740 Td (" + line + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_tiny_pdf_is_readable(backend: str) -> None:
    from io import BytesIO

    from pypdf import PdfReader

    assert "Monday through Friday" in PdfReader(BytesIO(tiny_pdf(HOURS))).pages[0].extract_text()


def shot(page: Any, name: str) -> None:
    target = os.environ.get("CHATWELL_SCREENSHOTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"dashboard-{name}.png"), full_page=True)


class Errors:
    def __init__(self, page: Any) -> None:
        self.items: list[str] = []
        page.on("pageerror", lambda e: self.items.append(str(e)))
        page.on("dialog", lambda d: (self.items.append("dialog: " + d.message), d.accept()))


def submit(page: Any, form: str, button: str | None = None) -> None:
    with page.expect_navigation():
        page.locator(f"{form} button[type=submit]" if button is None else button).first.click()


def sign_up(page: Any, chatwell: str) -> None:
    page.goto(f"{chatwell}/dashboard")
    assert page.url.endswith("/dashboard/setup")
    shot(page, "setup")
    for field, value in {**OWNER, "setup_token": ADMIN_KEY}.items():
        page.fill(f"form[action='/dashboard/setup'] input[name={field}]", value)
    submit(page, "form[action='/dashboard/setup']")
    assert page.url.rstrip("/").endswith("/dashboard")


def create_bot(page: Any, name: str) -> str:
    page.fill("form[action='/dashboard/bots'] input[name=name]", name)
    submit(page, "form[action='/dashboard/bots']")
    found = re.search(r"/dashboard/bots/([0-9a-f-]{36})/sources", page.url)
    assert found, page.url
    return found.group(1)


def configure(page: Any, chatwell: str, bot_id: str, origin: str, *, handoff: bool = False) -> None:
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/settings")
    page.check("input[name=public]")
    page.fill("textarea[name=allowed_origins]", origin)
    if handoff:
        page.check("input[name=handoff_enabled]")
    shot(page, "settings")
    submit(page, f"form[action='/dashboard/bots/{bot_id}/settings']")
    assert "saved=1" in page.url


def wait_all_ready(page: Any, count: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator('#sources [data-field="status"]')).to_have_text(
        ["ready"] * count, timeout=60_000
    )


def create_key(page: Any, chatwell: str, label: str) -> str:
    page.goto(f"{chatwell}/dashboard/api-keys")
    page.fill("form[action='/dashboard/api-keys'] input[name=label]", label)
    submit(page, "form[action='/dashboard/api-keys']")
    secret = page.locator("#new-secret code").inner_text().strip()
    assert len(secret) > 20
    shot(page, "api-keys")
    page.goto(f"{chatwell}/dashboard/api-keys")  # shown once: gone on the next visit
    assert page.locator("#new-secret").count() == 0 and secret not in page.content()
    return secret


def widget_ask(page: Any, question: str) -> Any:
    page.locator("chatwell-widget textarea").fill(question)
    page.locator("chatwell-widget .cw-form button[type=submit]").click()
    answer = page.locator("chatwell-widget .cw-assistant[data-id]").last
    answer.wait_for(timeout=20_000)
    return answer


def test_golden_path_on_a_fresh_install(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    snippet: dict[str, str] = {}

    async def shop(request: Any) -> Any:
        from starlette.responses import HTMLResponse

        return HTMLResponse(
            "<!doctype html><html><head><title>Shop</title></head><body><h1>Our shop</h1>"
            f"{snippet.get('tag', '')}</body></html>"
        )

    from starlette.applications import Starlette
    from starlette.routing import Route

    host = live_server.start(Starlette(routes=[Route("/", shop)]))

    ctx = chromium.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    errors = Errors(page)
    sign_up(page, chatwell)
    bot_id = create_bot(page, "Shop Assistant")
    page.goto(f"{chatwell}/dashboard")
    assert "Shop Assistant" in page.locator("main").inner_text()
    shot(page, "bots")
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/sources")
    # A PDF through the file form; the Sources tab's script shows it becoming ready.
    page.locator("form[enctype='multipart/form-data'] input[type=file]").set_input_files(
        {"name": "hours.pdf", "mimeType": "application/pdf", "buffer": tiny_pdf(HOURS)}
    )
    submit(page, "form[enctype='multipart/form-data']")
    wait_all_ready(page, 1)
    assert page.locator("#sources tr[data-source-id]").first.inner_text().startswith("hours.pdf")
    assert int(page.locator('#sources [data-field="chunk_count"]').first.inner_text()) >= 1
    shot(page, "sources")
    configure(page, chatwell, bot_id, host)

    # The Playground streams a cited answer and lists the retrieved passages with scores.
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/playground")
    page.fill("#playground textarea[name=question]", "When is the shop open?")
    page.fill("#playground input[name=temperature]", "0.2")
    page.locator("#playground button[type=submit]").click()
    from playwright.sync_api import expect

    turn = page.locator("#playground-log .turn").first
    expect(turn).to_have_attribute("data-done", "", timeout=30_000)
    assert "Monday through Friday" in turn.locator('[data-part="answer"]').inner_text()
    citation = turn.locator('[data-part="citations"] li').first
    assert citation.inner_text().startswith("[1] hours (page 1)")
    turn.locator("details.passages summary").click()
    first_passage = turn.locator('[data-part="passages"] tr').first
    assert re.fullmatch(r"[01]\.\d{3}", first_passage.locator("td").first.inner_text())
    assert "Monday through Friday" in first_passage.inner_text()
    assert turn.locator('[data-part="answer"] script, [data-part="answer"] img').count() == 0
    shot(page, "playground")

    create_key(page, chatwell, "website")

    # The embed snippet, as the Copy button would copy it.
    page.goto(f"{chatwell}/dashboard/bots/{bot_id}/embed")
    shot(page, "embed")
    tag = page.locator("button.copy").first.get_attribute("data-copy")
    assert tag == page.locator("pre code").first.inner_text()
    assert f'data-bot-id="{bot_id}"' in tag and f"{chatwell}/widget.js" in tag
    snippet["tag"] = tag

    visitor_ctx = chromium.new_context(viewport=VIEWPORT)
    visitor = visitor_ctx.new_page()
    visitor.goto(host)
    visitor.locator("chatwell-widget .cw-launcher").click()
    answer = widget_ask(visitor, "When is the shop open?")
    assert "Monday through Friday" in answer.inner_text()
    visitor_ctx.close()

    page.goto(f"{chatwell}/dashboard/conversations")
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and "Shop Assistant" in rows.first.inner_text()
    shot(page, "conversations")
    with page.expect_navigation():
        rows.first.locator("a").click()
    assert "When is the shop open?" in page.locator(".transcript").inner_text()
    shot(page, "transcript")

    page.goto(f"{chatwell}/dashboard/analytics?bot_id={bot_id}")
    assert page.locator("#stat-conversations").inner_text() == "1"
    assert int(page.locator("#stat-messages").inner_text()) >= 2
    assert "When is the shop open?" in page.locator("#top-questions").inner_text()
    assert page.locator("svg.chart").count() == 3
    shot(page, "analytics")
    assert errors.items == []
    ctx.close()


def test_agent_answers_a_visitor_from_the_inbox(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    owner_ctx = chromium.new_context(viewport=VIEWPORT)
    owner = owner_ctx.new_page()
    errors = Errors(owner)
    sign_up(owner, chatwell)
    bot_id = create_bot(owner, "Shop Assistant")
    owner.fill("form textarea[name=text]", HOURS)
    submit(owner, "form:has(input[name=kind][value=text])")
    wait_all_ready(owner, 1)
    host = live_server.start(host_site(chatwell, bot_id))
    configure(owner, chatwell, bot_id, host, handoff=True)

    owner.goto(f"{chatwell}/dashboard/members")
    owner.fill("form[action='/dashboard/members'] input[name=email]", AGENT["email"])
    owner.fill("form[action='/dashboard/members'] input[name=name]", AGENT["name"])
    owner.select_option("form[action='/dashboard/members'] select[name=role]", "agent")
    owner.fill("form[action='/dashboard/members'] input[name=password]", AGENT["password"])
    submit(owner, "form[action='/dashboard/members']")
    owner.goto(f"{chatwell}/dashboard/members")
    assert AGENT["email"] in owner.locator("table").inner_text()
    shot(owner, "members")

    # Presence is keyed by API keys: a workspace key from the Keys page marks the desk online.
    secret = create_key(owner, chatwell, "Front desk")
    presence = httpx.post(
        f"{chatwell}/v1/agents/presence",
        json={"online": True},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert presence.status_code == 200 and presence.json()["handoff_available"], presence.text

    visitor_ctx = chromium.new_context(viewport=VIEWPORT)
    visitor = visitor_ctx.new_page()
    visitor.goto(host)
    visitor.locator("chatwell-widget .cw-launcher").click()
    widget_ask(visitor, "When are you open?")
    visitor.locator("chatwell-widget .cw-human").click()
    visitor.locator("chatwell-widget .cw-system", has_text="will reply here").wait_for(
        timeout=10_000
    )

    agent_ctx = chromium.new_context(viewport=VIEWPORT)
    agent = agent_ctx.new_page()
    agent_errors = Errors(agent)
    agent.goto(f"{chatwell}/dashboard/login")
    agent.fill("input[name=email]", AGENT["email"])
    agent.fill("input[name=password]", AGENT["password"])
    submit(agent, "form[action='/dashboard/login']")
    nav = agent.locator("header nav").inner_text()
    assert "Inbox" in nav and "API keys" not in nav and "Analytics" not in nav
    agent.goto(f"{chatwell}/dashboard/inbox")
    assert "An agent is online." in agent.content()
    shot(agent, "inbox")
    with agent.expect_navigation():
        agent.locator("a", has_text="Open and reply").first.click()
    agent.fill("textarea[name=content]", "Hi, Dana here! We open at 9.")
    submit(agent, "form[action$='/reply']")
    assert "Dana here!" in agent.locator(".transcript").inner_text()

    bubble = visitor.locator("chatwell-widget .cw-agent")
    bubble.wait_for(timeout=15_000)
    assert "Dana here! We open at 9." in bubble.inner_text()

    for path in (
        f"/dashboard/bots/{bot_id}/settings",
        "/dashboard/api-keys",
        "/dashboard/analytics",
        f"/dashboard/bots/{bot_id}/playground",
    ):
        assert agent.goto(f"{chatwell}{path}").status == 403, path
    assert errors.items == [] and agent_errors.items == []
    for context in (visitor_ctx, agent_ctx, owner_ctx):
        context.close()
