"""The widget in real headless Chromium, embedded in a page of another origin: it opens, streams
a cited answer, records feedback, hands off to a person and back (agent replies pushed on the
event stream, or polled when the stream is blocked), survives a reload, resists
XSS from documents, questions and answers, and refuses to run on a domain the bot does not allow.

With CHATWELL_SCREENSHOTS_DIR set, the open widget is also photographed (desktop and mobile).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import wait_ready
from tests.helpers import build_app
from tests.widget.browser import host_site

DOCS = (
    (
        "Opening hours",
        "Opening hours: the shop is open **Monday through Friday**, 9 AM to 5 PM. "
        "On weekends the shop is closed.",
    ),
    ("Returns", "Returns: items can be returned within 30 days of delivery for a full refund."),
)
XSS = [
    "<img src=x onerror=alert('img')>",
    "<script>alert('script')</script>",
    "[click me](javascript:alert('link'))",
    "<svg onload=alert('svg')>",
    "\"><iframe src=javascript:alert('iframe')></iframe>",
    "**<b onmouseover=alert('bold')>bold</b>**",
    "[data](data:text/html,<script>alert('data')</script>)",
    "`<img src=x onerror=alert('code')>`",
]
pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite"]
)  # the browser does not depend on the engine


@dataclass
class Site:
    chatwell: str
    host: str
    bot_id: str
    admin: httpx.Client


@pytest.fixture
def site(make_settings: Callable[..., Settings], live_server: Any) -> Iterator[Site]:
    app = build_app(make_settings(), announce=lambda _: None)
    chatwell = live_server.start(app)
    admin = httpx.Client(
        base_url=chatwell, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    bot = admin.post(
        "/v1/bots",
        json={
            "name": "Shop Assistant",
            "slug": "shop",
            "public": True,
            "welcome_message": "Hi! Ask me about opening hours or returns.",
            "suggested_questions": ["When are you open?"],
            "handoff": {"enabled": True, "trigger": "both", "agent_label": "Dana"},
            "widget": {"primary_color": "#0f766e", "title": "Shop help"},
        },
    ).json()
    for title, text in DOCS:
        admin.post("/v1/bots/shop/sources", json={"type": "text", "title": title, "text": text})
    admin.post(
        "/v1/bots/shop/sources",
        json={
            "type": "text",
            "title": "Security notes",
            "text": (
                "Security notes: attackers try payloads like "
                + " and ".join(XSS)
                + " in chat widgets."
            ),
        },
    )
    wait_ready(admin, "shop")
    host = live_server.start(host_site(chatwell, bot["id"]))
    assert admin.patch("/v1/bots/shop", json={"allowed_origins": [host]}).status_code == 200
    try:
        yield Site(chatwell, host, bot["id"], admin)
    finally:
        admin.close()


class Watch:
    """Dialogs and page errors: anything here means script ran that should not have."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def open_page(chromium: Any, url: str, **context: Any) -> tuple[Any, Any, Watch]:
    ctx = chromium.new_context(**context)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(url)
    return ctx, page, watch


def ask(page: Any, text: str) -> Any:
    page.locator("chatwell-widget textarea").fill(text)
    page.locator("chatwell-widget .cw-form button[type=submit]").click()
    answer = page.locator("chatwell-widget .cw-assistant[data-id]").last
    answer.wait_for(timeout=20_000)
    return answer


def test_bubble_streams_a_cited_answer_and_records_feedback(chromium: Any, site: Site) -> None:
    ctx, page, watch = open_page(chromium, site.host)
    launcher = page.locator("chatwell-widget .cw-launcher")
    launcher.wait_for(timeout=10_000)
    assert launcher.get_attribute("aria-expanded") == "false"
    # The host page's hostile CSS (hidden buttons, pink 31px text) does not reach the widget.
    assert launcher.is_visible()
    launcher.click()
    panel = page.locator("chatwell-widget .cw-panel")
    assert panel.is_visible() and launcher.get_attribute("aria-expanded") == "true"
    assert page.locator("chatwell-widget .cw-title").inner_text() == "Shop help"
    assert "Ask me about opening hours" in page.locator("chatwell-widget .cw-log").inner_text()
    assert page.locator("chatwell-widget .cw-suggest button").inner_text() == "When are you open?"
    # Streamed: the answer grows before it is done.
    page.locator("chatwell-widget textarea").fill("When is the shop open?")
    page.locator("chatwell-widget .cw-form button[type=submit]").click()
    answer = page.locator("chatwell-widget .cw-assistant[data-id]").last
    answer.wait_for(timeout=20_000)
    text = answer.inner_text()
    assert "Monday through Friday" in text
    style = answer.evaluate("e => [getComputedStyle(e).fontSize, getComputedStyle(e).color]")
    assert style == ["14px", "rgb(17, 24, 39)"]  # not the host page's 31px pink
    assert (
        answer.locator("sup.cw-cite").first.inner_text() == "[1]"
    )  # the marker, tied to its source
    sources = answer.locator(".cw-sources li")
    assert sources.count() >= 1 and "Opening hours" in sources.first.inner_text()
    # Feedback goes to the server.
    answer.locator("button[aria-label=Helpful]").click()
    page.wait_for_function(
        "() => document.querySelector('chatwell-widget').shadowRoot"
        ".querySelector('.cw-assistant[data-id] button[aria-label=Helpful]')"
        ".getAttribute('aria-pressed') === 'true'"
    )
    conversation = site.admin.get("/v1/conversations").json()["data"][0]
    stored = site.admin.get(f"/v1/conversations/{conversation['id']}").json()["messages"]
    assert stored[-1]["feedback"] == "positive" and conversation["channel"] == "chatbotiq"
    # Escape closes the bubble and gives focus back to the launcher.
    page.locator("chatwell-widget textarea").press("Escape")
    assert not panel.is_visible()
    assert watch.dialogs == [] and watch.errors == []
    _screenshots(chromium, site)
    ctx.close()


def test_reload_restores_the_conversation(chromium: Any, site: Site) -> None:
    ctx, page, _ = open_page(chromium, site.host)
    page.locator("chatwell-widget .cw-launcher").click()
    ask(page, "Can I return an item?")
    page.reload()
    page.locator("chatwell-widget .cw-launcher").click()
    log = page.locator("chatwell-widget .cw-log")
    log.locator(".cw-assistant[data-id]").first.wait_for(timeout=10_000)
    restored = log.inner_text()
    assert "Can I return an item?" in restored and "30 days" in restored
    ask(page, "And when are you open?")  # the same conversation continues
    assert len(site.admin.get("/v1/conversations").json()["data"]) == 1
    ctx.close()


def online_agent(site: Site) -> httpx.Client:
    """An agent's API client (a workspace key labelled Dana), said to be online."""
    key = site.admin.post("/v1/keys", json={"label": "Dana"}).json()["key"]
    agent_api = httpx.Client(
        base_url=site.chatwell, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert agent_api.post("/v1/agents/presence", json={"online": True}).json()["handoff_available"]
    return agent_api


def reply_to_the_only_waiting(agent_api: httpx.Client, text: str) -> str:
    queue = agent_api.get("/v1/handoff/queue").json()["data"]
    assert len(queue) == 1
    reply = agent_api.post(f"/v1/conversations/{queue[0]['id']}/messages", json={"content": text})
    assert reply.status_code == 201
    return queue[0]["id"]


@pytest.mark.parametrize("stream", ["pushed", "blocked"])
def test_handoff_round_trip_into_the_widget(chromium: Any, site: Site, stream: str) -> None:
    """Agent replies are pushed on the conversation's event stream; when the stream can't be
    opened (a proxy refusing it, here), the widget polls the history instead."""
    agent_api = online_agent(site)
    ctx, page, watch = open_page(chromium, site.host)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    if stream == "blocked":
        page.route("**/events?*", lambda route: route.abort())
    page.evaluate(
        "window.__events = []; window.chatwell.on('handoff', e => window.__events.push(e))"
    )
    page.locator("chatwell-widget .cw-launcher").click()
    ask(page, "When are you open?")
    page.locator("chatwell-widget .cw-human").click()
    page.locator("chatwell-widget .cw-system", has_text="will reply here").wait_for(timeout=10_000)
    conversation_id = reply_to_the_only_waiting(agent_api, "Hi, **Dana** here!")
    agent_bubble = page.locator("chatwell-widget .cw-agent")
    agent_bubble.wait_for(timeout=10_000)
    assert (
        "Dana here!" in agent_bubble.inner_text()
        and "Dana" in agent_bubble.locator(".cw-who").inner_text()
    )
    assert agent_bubble.locator("strong").inner_text() == "Dana"  # Markdown, built as DOM nodes
    assert page.evaluate("window.__events")[0]["conversation_status"] == "pending_human"
    assert any("/events?session_id=" in url for url in requested)
    polled = any("/messages?session_id=" in url for url in requested)
    assert polled is (stream == "blocked")  # pushed: the widget never had to poll the history
    assert agent_api.post(f"/v1/conversations/{conversation_id}/resolve").status_code == 200
    page.locator(
        "chatwell-widget .cw-system", has_text="conversation with the team has ended"
    ).wait_for(timeout=10_000)
    assert agent_bubble.count() == 1  # pushed or polled, shown once
    agent_api.close()
    assert watch.dialogs == []
    ctx.close()


def test_a_first_message_asking_for_a_person_gets_the_reply_pushed(
    chromium: Any, site: Site
) -> None:
    """The bot hands off on the very first message, before the widget knows the conversation's id."""
    agent_api = online_agent(site)
    ctx, page, watch = open_page(chromium, site.host)
    page.locator("chatwell-widget .cw-launcher").click()
    page.locator("chatwell-widget textarea").fill("I want to talk to a human")
    page.locator("chatwell-widget .cw-form button[type=submit]").click()
    page.locator("chatwell-widget .cw-system", has_text="Connecting you").wait_for(timeout=20_000)
    reply_to_the_only_waiting(agent_api, "Dana here")
    page.locator("chatwell-widget .cw-agent", has_text="Dana here").wait_for(timeout=10_000)
    agent_api.close()
    assert watch.errors == []
    ctx.close()


def test_xss_payloads_in_documents_questions_and_answers_execute_nothing(
    chromium: Any, site: Site
) -> None:
    ctx, page, watch = open_page(chromium, site.host)
    page.locator("chatwell-widget .cw-launcher").click()
    answer = ask(page, "What payloads do attackers try in security notes?")
    assert "onerror" in answer.inner_text()  # quoted as text
    for payload in XSS[:4]:
        ask(page, payload)
    page.wait_for_timeout(500)
    root = "document.querySelector('chatwell-widget').shadowRoot"
    counts = page.evaluate(f"""() => {{
        const r = {root};
        return {{
          dangerous: r.querySelectorAll('.cw-log script, .cw-log iframe, .cw-log svg:not(.cw-icon), .cw-log img, .cw-log [onerror], .cw-log [onload], .cw-log [onmouseover]').length,
          badLinks: [...r.querySelectorAll('a')].filter(a => !/^(https?:|mailto:)/.test(a.href)).length,
          pageImages: document.querySelectorAll('img, iframe, svg').length,
        }};
    }}""")
    assert counts == {"dangerous": 0, "badLinks": 0, "pageImages": 0}
    assert watch.dialogs == [] and watch.errors == []
    ctx.close()


def test_inline_mode_and_the_full_page_chat(chromium: Any, site: Site) -> None:
    ctx, page, _ = open_page(chromium, site.host + "/inline")
    panel = page.locator("#help chatwell-widget .cw-panel")
    panel.wait_for(timeout=10_000)
    assert panel.is_visible() and page.locator("chatwell-widget .cw-launcher").count() == 0
    assert "Monday" in ask(page, "When are you open?").inner_text()
    ctx.close()
    ctx, page, _ = open_page(chromium, site.chatwell + "/chat/shop")
    assert page.title() == "Shop Assistant"
    assert "30 days" in ask(page, "How long do I have to return an item?").inner_text()
    ctx.close()


def test_a_domain_the_bot_does_not_allow_gets_no_widget(chromium: Any, site: Site) -> None:
    foreign = site.host.replace("127.0.0.1", "localhost")  # same server, another origin
    ctx, page, watch = open_page(chromium, foreign)
    with page.expect_response(lambda r: "/config" in r.url) as config:
        page.reload()
    assert config.value.status == 403
    page.wait_for_timeout(300)
    assert page.locator("chatwell-widget .cw-launcher").count() == 0
    # Even a hand-made request from that origin is refused by the server.
    refused = page.evaluate(
        """async ([api, bot]) => {
        const r = await fetch(api + '/v1/public/chat/stream', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({bot_id: bot, message: 'hi', session_id: 's'})}).catch(e => null);
        return r ? r.status : 'blocked';
    }""",
        [site.chatwell, site.bot_id],
    )
    assert refused in (403, "blocked")
    assert watch.dialogs == []
    ctx.close()


def _screenshots(chromium: Any, site: Site) -> None:
    target = os.environ.get("CHATWELL_SCREENSHOTS_DIR")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    for name, options in (
        ("desktop", {"viewport": {"width": 1280, "height": 800}}),
        (
            "mobile",
            {
                "viewport": {"width": 390, "height": 844},
                "is_mobile": True,
                "device_scale_factor": 2,
                "has_touch": True,
            },
        ),
    ):
        ctx, page, _ = open_page(chromium, site.host, **options)
        page.locator("chatwell-widget .cw-launcher").click()
        ask(page, "When is the shop open?")
        time.sleep(0.3)
        page.screenshot(path=str(Path(target) / f"widget-{name}.png"))
        ctx.close()


def test_lead_form_submits_and_the_webhook_receiver_gets_a_valid_signature(
    chromium: Any, make_settings: Callable[..., Settings], live_server: Any
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        received.append((dict(request.headers), await request.body()))
        return {"ok": True}

    hook_url = live_server.start(receiver) + "/hook"
    app = build_app(make_settings(webhook_allow_private=True), announce=lambda _: None)
    chatwell = live_server.start(app)
    with httpx.Client(
        base_url=chatwell, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as admin:
        bot = admin.post(
            "/v1/bots",
            json={
                "name": "Leads",
                "slug": "leads",
                "public": True,
                "webhook_url": hook_url,
                "contact_form": {
                    "enabled": True,
                    "trigger": "on_request",
                    "success_message": "Thanks, talk soon!",
                    "fields": [
                        {"name": "name", "label": "Name", "type": "text"},
                        {"name": "email", "label": "Email", "type": "email", "required": True},
                        {"name": "company", "label": "Company", "type": "text"},
                    ],
                },
            },
        ).json()
        secret = admin.post(f"/v1/bots/{bot['id']}/webhook-secret").json()["secret"]
        host = live_server.start(host_site(chatwell, bot["id"]))
        ctx, page, watch = open_page(chromium, host)
        page.evaluate(
            "window.__leads = []; window.chatwell.on('lead', e => window.__leads.push(e))"
        )
        page.locator("chatwell-widget .cw-launcher").click()
        page.locator("chatwell-widget .cw-contact").click()
        form = page.locator("chatwell-widget .cw-lead")
        form.locator("input[name=name]").fill("Ada <b>Lovelace</b>")
        form.locator("input[name=email]").fill("ada@example.com")
        form.locator("input[name=company]").fill('=HYPERLINK("http://evil")')
        form.locator("button[type=submit]").click()
        page.locator("chatwell-widget .cw-system", has_text="Thanks, talk soon!").wait_for(
            timeout=10_000
        )
        assert len(page.evaluate("window.__leads")) == 1
        leads = admin.get(f"/v1/bots/{bot['id']}/leads").json()["data"]
        assert [(lead["name"], lead["email"]) for lead in leads] == [
            ("Ada <b>Lovelace</b>", "ada@example.com")
        ]
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        ctx.close()
    assert received, "the webhook receiver got nothing"
    headers, body = received[0]
    timestamp = headers["x-chatwell-timestamp"]
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(headers["x-chatwell-signature"], "sha256=" + expected)
    payload = json.loads(body)
    assert payload["event"] == "lead.created" and payload["lead"]["email"] == "ada@example.com"
    assert watch.dialogs == []
