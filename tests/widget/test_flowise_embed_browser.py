"""Flowise's own chat widget (``flowise-embed`` from npm, unchanged) on a customer's page of
another origin, in real Chromium, pointed at chatwell as its ``apiHost``: it loads the bot's
config, checks streaming, asks a question, renders the streamed answer and its sources, and
sends a rating with a comment; on a domain the bot does not allow, it gets no answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import wait_ready
from tests.helpers import build_app
from tests.widget.flowise_embed import flowise_embed_web_js

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite"]
)  # the browser does not depend on the engine
DOCS = (
    (
        "Opening hours",
        "Opening hours: the shop is open Monday through Friday, 9 AM to 5 PM. "
        "On weekends the shop is closed.",
    ),
    ("Returns", "Returns: items can be returned within 30 days of delivery for a full refund."),
)


def customer_site(chatwell: str, bot_id: str) -> Any:
    """A page that embeds the widget as Flowise's README says, serving web.js itself."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse
    from starlette.routing import Route

    web_js = flowise_embed_web_js()

    async def home(request: Any) -> HTMLResponse:
        return HTMLResponse(f"""<!doctype html><html><head><title>Shop</title></head><body><h1>Our shop</h1>
<script type="module">
  import Chatbot from "/web.js";
  Chatbot.init({{ chatflowid: "{bot_id}", apiHost: "{chatwell}" }});
</script></body></html>""")

    async def script(request: Any) -> FileResponse:
        return FileResponse(web_js, media_type="text/javascript")

    return Starlette(routes=[Route("/", home), Route("/web.js", script)])


@dataclass
class Shop:
    chatwell: str
    host: str
    bot_id: str
    admin: httpx.Client


@pytest.fixture
def shop(make_settings: Callable[..., Settings], live_server: Any) -> Iterator[Shop]:
    flowise_embed_web_js()  # download (or skip) before any server starts
    chatwell = live_server.start(build_app(make_settings(), announce=lambda _: None))
    admin = httpx.Client(
        base_url=chatwell, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    bot = admin.post(
        "/v1/bots",
        json={
            "name": "Shop Assistant",
            "slug": "shop",
            "public": True,
            "suggested_questions": ["When are you open?"],
        },
    ).json()
    for title, text in DOCS:
        assert (
            admin.post(
                "/v1/bots/shop/sources", json={"type": "text", "title": title, "text": text}
            ).status_code
            == 202
        )
    wait_ready(admin, "shop")
    host = live_server.start(customer_site(chatwell, bot["id"]))
    assert admin.patch("/v1/bots/shop", json={"allowed_origins": [host]}).status_code == 200
    try:
        yield Shop(chatwell, host, bot["id"], admin)
    finally:
        admin.close()


def open_widget(page: Any, url: str) -> Any:
    """Open the chat and wait until the widget has read the bot's config and streaming check
    (it asks them when the chat mounts; a question typed earlier would not stream)."""
    answered: list[str] = []
    page.on("response", lambda r: answered.append(r.url))
    page.goto(url)
    page.locator('button[part="button"]').click()
    box = page.locator("textarea.text-input")
    box.wait_for(timeout=15_000)
    for _ in range(150):
        if any("/public-chatbotConfig/" in u for u in answered) and any(
            "/chatflows-streaming/" in u for u in answered
        ):
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)
    return box


def test_flowise_embed_streams_an_answer_with_sources(chromium: Any, shop: Shop) -> None:
    page = chromium.new_page()
    calls: list[tuple[str, str, str | None]] = []
    page.on(
        "request",
        lambda r: calls.append((r.method, r.url, r.post_data)) if shop.chatwell in r.url else None,
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        box = open_widget(page, shop.host + "/")
        # the starter prompt from the bot's suggested questions is offered
        page.get_by_text("When are you open?").first.wait_for(timeout=10_000)
        box.fill("When is the shop open?")
        box.press("Enter")
        answer = page.get_by_text("Monday through Friday", exact=False).last
        answer.wait_for(timeout=20_000)
        page.get_by_text("Opening hours", exact=True).first.wait_for(
            timeout=10_000
        )  # the source chip
        paths = [(method, url.removeprefix(shop.chatwell)) for method, url, _ in calls]
        assert ("GET", f"/api/v1/chatflows-streaming/{shop.bot_id}") in paths
        assert ("GET", f"/api/v1/public-chatbotConfig/{shop.bot_id}") in paths
        [body] = [
            json.loads(data or "{}")
            for method, url, data in calls
            if method == "POST" and url.endswith(f"/api/v1/prediction/{shop.bot_id}")
        ]
        assert (
            body["question"] == "When is the shop open?"
            and body["streaming"] is True
            and body["chatId"]
        )
        # the widget's chat is stored under its chatId, in the public flowise namespace
        history = shop.admin.get(
            f"/api/v1/chatmessage/{shop.bot_id}", params={"chatId": body["chatId"]}
        ).json()
        assert [m["role"] for m in history] == ["userMessage", "apiMessage"]
        assert "Monday through Friday" in history[1]["content"]
        # a thumbs up, then the comment the widget asks for: POST, then PUT /api/v1/feedback/{id}
        statuses: list[tuple[str, int]] = []
        page.on(
            "response",
            lambda r: (
                statuses.append((r.request.method, r.status))
                if "/api/v1/feedback/" in r.url
                else None
            ),
        )
        page.locator('button[title="Thumbs Up"]').last.click()
        comment = page.get_by_placeholder("What do you think of the response?")
        comment.wait_for(timeout=10_000)
        comment.fill("Clear and quick")
        page.get_by_role("button", name="Submit Feedback").click()
        for _ in range(100):
            if ("PUT", 200) in statuses:
                break
            page.wait_for_timeout(100)
        assert ("POST", 200) in statuses and ("PUT", 200) in statuses, statuses
        history = shop.admin.get(
            f"/api/v1/chatmessage/{shop.bot_id}", params={"chatId": body["chatId"]}
        ).json()
        assert history[1]["feedback"] == "THUMBS_UP"
        assert not errors, errors
    finally:
        page.close()


def test_flowise_embed_on_a_domain_the_bot_does_not_allow(
    chromium: Any, shop: Shop, live_server: Any
) -> None:
    stranger = live_server.start(customer_site(shop.chatwell, shop.bot_id))
    page = chromium.new_page()
    answers: list[int] = []
    page.on(
        "response", lambda r: answers.append(r.status) if "/api/v1/prediction/" in r.url else None
    )
    try:
        box = open_widget(page, stranger + "/")
        box.fill("When is the shop open?")
        box.press("Enter")
        page.wait_for_timeout(3_000)
        assert page.get_by_text("Monday through Friday", exact=False).count() == 0
        assert answers and set(answers) == {403}
    finally:
        page.close()
    with httpx.Client(
        base_url=shop.chatwell, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        assert admin.get(f"/api/v1/chatmessage/{shop.bot_id}").json() == []
