"""The link-guard corpus (issue 19 item 4): every way of writing a link a browser or a Markdown
renderer would follow to another place, checked against the chat engine's guard
(``chatwell.chat.links``) and rendered by the widget in real Chromium.

Forms the old guard let through: protocol-relative ``//evil.example``, ``https:/\\evil.example``
(browsers read the backslash as a slash), ``https:evil.example``, a tab inside the scheme, an
entity-encoded scheme (CommonMark decodes entities in link destinations), ``www.`` autolinks. The
widget linked anything ``new URL(x, location)`` called http(s) or mailto, relative and
protocol-relative forms included, and used a citation's ``url`` without any check.

Oracles: CommonMark itself (markdown-it-py, with its own link validation turned off so every
destination it would make shows) for what a renderer links, and Chromium's URL parser for where a
destination really leads.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from chatwell.chat.links import (
    LINK_REMOVED,
    LinkGuard,
    allowed_links,
    normalise,
    remove_foreign_links,
)
from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import wait_ready
from tests.helpers import build_app
from tests.upstream import scripted_upstream
from tests.widget.browser import chromium  # noqa: F401  (module-scoped Chromium)

OK = "https://help.acme.example/login"
PAYLOADS = [
    "[a](//evil.example/a)",
    "[a]( //evil.example/a)",
    "[a](/\\evil.example/a)",
    "[a](\\/evil.example/a)",
    "[a](\\\\evil.example\\a)",
    "[a](https:/\\evil.example/a)",
    "[a](https:\\\\evil.example/a)",
    "[a](http:evil.example/a)",
    "[a](https:evil.example)",
    "[a](https:/evil.example/a)",
    "[a](HtTpS://evil.example/a)",
    "[a](HTTP://EVIL.EXAMPLE/a)",
    "[a](<ht\ttps://evil.example/a>)",
    "[a](\x01https://evil.example/a)",
    "[a](\x00https://evil.example/a)",
    '[a](https://evil.example/a "t")',
    "[a](javascript:alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](<java\tscript:alert(1)>)",
    "[a](&#106;avascript:alert(1))",
    "[a](&#x6A;avascript&#x3A;alert(1))",
    "[a](javascript&colon;alert(1))",
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[a](vbscript:msgbox(1))",
    "[a](file:///etc/passwd)",
    "[a](blob:https://evil.example/0b7e)",
    "[a](&#104;ttps://evil.example/a)",
    "[a](https&#58;//evil.example/a)",
    "[a](https://help.acme.example@evil.example/a)",
    "[a](https://evil.example\\@help.acme.example/login)",
    "[a](https://evil\u3002example/a)",
    "[a](\uff48\uff54\uff54\uff50\uff53://evil.example/a)",
    "[a](https://evil.example/\u202egpj.exe)",
    "[a](ht\u200btps://evil.example/a)",
    "[a](ftp://evil.example/a)",
    "<https://evil.example/a>",
    "<//evil.example/a>",
    "<HTTPS://EVIL.EXAMPLE/a>",
    "https://evil.example/a",
    "HTTPS://EVIL.example/a",
    "www.evil.example/a",
    "**https://evil.example/a**",
    "[a](https://help.acme.example/login/../../x)",
    "![i](https://evil.example/pixel.png)",
    "[a][r]\n\n[r]: //evil.example/ref",
    "[a][s]\n\n[s]: https:/\\evil.example/ref",
]
KEPT = [
    f"[the login page]({OK})",
    f"<{OK}>",
    f"**{OK}**",
    f"{OK}.",
    f"[a]({OK.upper().replace('/LOGIN', '/login')})",
]
HARMLESS_SCHEMES = {"mailto", "tel"}
SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


def renderer_destinations(text: str) -> list[str]:
    """Every href and image src CommonMark makes of ``text``, entity-decoded, unvalidated."""
    md = MarkdownIt("commonmark")
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    found = []
    for token in md.parse(text):
        for child in token.children or []:
            if child.type in ("link_open", "image"):
                found.append(str(child.attrGet("href") or child.attrGet("src") or ""))
    return found


def leads_elsewhere(destination: str, allowed: frozenset[str]) -> bool:
    """Whether a browser following ``destination`` from a page would leave for another place."""
    target = re.sub(r"[\t\n\r]", "", html.unescape(destination)).strip(C0_AND_SPACE)
    scheme = SCHEME.match(target)
    if scheme:
        if scheme.group(1).lower() in HARMLESS_SCHEMES:
            return False
        return normalise(target) not in allowed
    return bool(re.match(r"[/\\]{2}", target))


def test_the_corpus_leaves_the_guard_with_no_way_elsewhere() -> None:
    allowed = allowed_links([OK])
    for payload in PAYLOADS:
        text = f"Before {payload} after."
        guarded = remove_foreign_links(text, allowed)
        assert LINK_REMOVED in guarded, payload
        bad = [d for d in renderer_destinations(guarded) if leads_elsewhere(d, allowed)]
        assert bad == [], (payload, guarded)
        assert not re.search(r"evil(\.|\u3002)example", guarded, re.IGNORECASE), (payload, guarded)
    for payload in KEPT:  # the bot's own link survives every way of writing it
        assert remove_foreign_links(payload, allowed) == payload, payload


def test_without_the_guard_the_corpus_does_lead_elsewhere() -> None:
    """The oracle can fail: unguarded, CommonMark makes a foreign destination of most payloads."""
    allowed = allowed_links([OK])
    leaking = [
        p for p in PAYLOADS if any(leads_elsewhere(d, allowed) for d in renderer_destinations(p))
    ]
    assert len(leaking) >= 30, leaking


@hsettings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    picked=st.lists(
        st.sampled_from(PAYLOADS + KEPT + ["plain words", "10:30", "and/or", "data: 42"]),
        min_size=1,
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=7), max_size=60),
)
def test_the_streaming_guard_equals_the_whole_text_on_the_corpus(
    picked: list[str], cuts: list[int]
) -> None:
    allowed = allowed_links([OK])
    text = " ".join(picked)
    guard, out, i = LinkGuard(allowed), "", 0
    for cut in cuts:
        out += guard.feed(text[i : i + cut])
        i += cut
    out += guard.feed(text[i:]) + guard.flush()
    assert out == remove_foreign_links(text, allowed)


def test_a_www_host_alone_is_removed_too() -> None:
    assert (
        remove_foreign_links("Visit www.evil.example today", allowed_links([OK]))
        == f"Visit {LINK_REMOVED} today"
    )


def test_ordinary_prose_is_left_alone() -> None:
    prose = (
        "Opening hours: 9:00-17:00, Mon/Tue and/or Wed. Ratio 3:1, data: 42, see section 2.3; "
        "email hi@shop.example, call +1 555 0100. C:\\Users\\me is a path. a // b"
    )
    assert remove_foreign_links(prose, allowed_links([OK])) == prose


# ----------------------------------------------------------------------------- real Chromium

BROWSER_PAYLOADS = [p for p in PAYLOADS if "\x00" not in p]  # a NUL is refused at the door
GUIDE = "<html><body><h1>Login help</h1><p>The login page explains how to sign in to your account.</p></body></html>"


def _site() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def home(request: Request) -> HTMLResponse:
        tag = request.app.state.tag
        return HTMLResponse(f"<!doctype html><html><body><h1>Shop</h1>{tag}</body></html>")

    async def guide(request: Request) -> HTMLResponse:
        return HTMLResponse(GUIDE)

    app = Starlette(routes=[Route("/", home), Route("/guide", guide)])
    app.state.tag = ""
    return app


@pytest.fixture
def world(make_settings: Callable[..., Settings], live_server: Any) -> Iterator[dict[str, Any]]:
    site = _site()
    host = live_server.start(site)
    ok = f"{host}/guide"
    corpus = [p.replace(OK, ok) for p in BROWSER_PAYLOADS] + [f"[the guide]({ok})"]
    answer = "\n\n".join(corpus) + "\n\nSee the guide [1]."
    upstream = live_server.start(scripted_upstream(answer))
    app = build_app(
        make_settings(
            crawl_allow_private=True, llm_base_url=upstream + "/v1", llm_model="scripted"
        ),
        announce=lambda _: None,
    )
    chatwell = live_server.start(app)
    admin = httpx.Client(
        base_url=chatwell, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    welcome = "\n\n".join(BROWSER_PAYLOADS[:22])  # unguarded: the widget's own rule alone
    bot = admin.post(
        "/v1/bots",
        json={
            "name": "Links",
            "slug": "links",
            "public": True,
            "welcome_message": welcome,
            "allowed_origins": [host],
        },
    ).json()
    assert admin.post("/v1/bots/links/sources", json={"type": "url", "url": ok}).status_code == 202
    wait_ready(admin, "links")
    site.state.tag = f'<script src="{chatwell}/widget.js" data-bot-id="{bot["id"]}" async></script>'
    try:
        yield {"host": host, "ok": ok, "chatwell": chatwell, "welcome": welcome, "answer": answer}
    finally:
        admin.close()


ANCHORS = textwrap.dedent("""() => {
    const root = document.querySelector('chatwell-widget').shadowRoot;
    return [...root.querySelectorAll('a')].map(a => ({href: a.getAttribute('href'), inAnswer: !!a.closest('.cw-assistant[data-id]')}));
}""")
RESOLVE = "([hrefs, base]) => hrefs.map(h => { try { const u = new URL(h, base); return u.protocol + '//' + u.host + (u.username ? '@' : ''); } catch (e) { return 'invalid'; } })"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_widget_links_only_the_bots_own_url_and_chromium_agrees_with_the_guard(
    chromium: Any, world: dict[str, Any], backend: str
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    hostile_cite = "javascript:alert(document.domain)"

    def poison_citations(route: Any) -> None:
        """The chat reply as the server sent it, but every citation URL made hostile: the widget
        must check a citation's url like any other link."""
        response = route.fetch()
        body = response.text().replace(
            f'"source_url": "{world["ok"]}"', f'"source_url": "{hostile_cite}"'
        )
        body = body.replace(f'"source_url":"{world["ok"]}"', f'"source_url":"{hostile_cite}"')
        route.fulfill(response=response, body=body)

    page.route(re.compile(r".*/v1/public/.*/chat.*"), poison_citations)
    page.goto(world["host"])
    page.locator("chatwell-widget .cw-launcher").click()
    page.locator("chatwell-widget textarea").fill("How do I log in?")
    page.locator("chatwell-widget .cw-form button[type=submit]").click()
    answer = page.locator("chatwell-widget .cw-assistant[data-id]").last
    answer.wait_for(timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('chatwell-widget').shadowRoot"
        ".querySelector('.cw-assistant[data-id] .cw-cite')",
        timeout=20_000,
    )
    anchors = page.evaluate(ANCHORS)
    text = answer.inner_text()
    assert LINK_REMOVED in text and not re.search(r"evil(\.|\u3002)example", text, re.IGNORECASE), (
        text
    )
    assert dialogs == []
    # The answer went through the guard: its only link target is the bot's own page.
    in_answer = {a["href"] for a in anchors if a["inAnswer"]}
    assert in_answer == {world["ok"]}, in_answer
    assert not any(a["href"].lower().startswith("javascript") for a in anchors), (
        anchors
    )  # the poisoned citation
    # Unguarded (the welcome message), the widget links only plainly written absolute http(s) URLs.
    others = [a["href"] for a in anchors if not a["inAnswer"]]
    # Of the first 22 payloads only "HtTpS://evil.example/a" and "HTTP://EVIL.EXAMPLE/a" are written
    # plainly; every bent form (//, /\\, https:/\\, http:host, controls, tabs, entities) stays text.
    assert sorted(others) == ["http://evil.example/a", "https://evil.example/a"], others
    resolved = page.evaluate(RESOLVE, [others, world["host"]])
    assert all("@" not in r and r.startswith("http") for r in resolved), resolved
    # Chromium's own URL parser on every destination CommonMark finds in the guarded answer:
    # none leads anywhere but the page itself (relative) or the bot's own URL.
    guarded = remove_foreign_links(world["answer"], allowed_links([world["ok"]]))
    destinations = renderer_destinations(guarded)
    targets = page.evaluate(RESOLVE, [destinations, world["host"] + "/page"])
    assert destinations and set(targets) <= {world["host"]}, list(zip(destinations, targets))
    # ... while the unguarded answer's destinations, parsed the same way, do lead away.
    raw_targets = page.evaluate(
        RESOLVE, [renderer_destinations(world["answer"]), world["host"] + "/page"]
    )
    assert (
        len(
            [
                t
                for t in raw_targets
                if "evil" in t or t.startswith(("javascript", "data", "vbscript", "file", "blob"))
            ]
        )
        >= 15
    )
    context.close()
