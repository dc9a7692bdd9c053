"""Hypothesis fuzzing of what hostile input reaches first: the document loaders and the chat doors'
JSON bodies.

Loaders: a small valid file of each kind (PDF, DOCX, HTML, Markdown, CSV, text) is built here, then
mutated by hypothesis (bytes flipped, inserted, deleted, duplicated, truncated; for DOCX also the
XML inside the zip). ``load_document`` must return a document or raise ``LoaderError`` — never
another exception — within a 2 s deadline per example, and a document's text stays bounded by its
input. Chat doors: hypothesis-generated JSON (nested values, huge numbers, unicode, field shapes of
the real body with wrong types, nesting up to 1000 deep) to the native, OpenAI, ChatIQ and public
widget chat endpoints through the ASGI app, on both engines: never a 5xx, never an
``internal_error`` event in a stream.

What it found: nothing to fix (every parser failure already arrives as ``LoaderError``, every bad
body as a 400 in the door's shape).
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from typing import Any

import docx
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chatwell.domain.documents import LoaderError
from chatwell.ingestion.loaders import load_document
from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app
from tests.ingestion.helpers import make_pdf

GENEROUS = "100000/minute"
LOADER_EXAMPLES = 100
JSON_EXAMPLES = 60


def _docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Handbook"
    document.add_heading("Leave", level=1)
    document.add_paragraph("Staff get 25 days of annual leave.")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Plan", "Days"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


SEEDS: dict[str, tuple[str, bytes]] = {
    "pdf": ("guide.pdf", make_pdf(["Acme guide\nBackups run nightly.", "Page two (restore)."])),
    "docx": ("handbook.docx", _docx()),
    "html": (
        "page.html",
        b"<!doctype html><html><head><title>Help</title><script>x()</script></head><body>"
        b"<nav>menu</nav><h1>Help</h1><p>Open <a href='/a'>the page</a> &amp; press "
        b"<b>Go</b>.</p><table><tr><td>a</td></tr></table></body></html>",
    ),
    "markdown": (
        "notes.md",
        b"---\ntitle: Notes\n---\n# Notes\n\nSome *text* with [a link](http://x.example).\n\n"
        b"## Part\n\n- item\n- item two\n\n```\ncode\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    ),
    "csv": (
        "prices.csv",
        'plan,price,notes\nbasic,10,"has, comma"\npro,20,"quote ""x"""\nü,ß,é\n'.encode(),
    ),
    "text": ("readme.txt", "Plain text.\n\nSecond paragraph with unicode: ✓ — 日本語.\n".encode()),
}

_INTERESTING = st.sampled_from(
    [
        b"\x00",
        b"\xff\xfe",
        b"<",
        b">",
        b"&#",
        b"(",
        b")",
        b"\\",
        b"obj",
        b"stream",
        b"endstream",
        b"<<",
        b">>",
        b"/Length 99999999",
        b'"',
        b",",
        b"\n",
        b"\r",
        b"<![CDATA[",
        b"<!--",
        b"PK\x03\x04",
        b"\xef\xbb\xbf",
        b"%PDF-1.7",
        b"#",
        b"|",
    ]
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 8))):
        n = len(out)
        op = draw(
            st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate", "interesting"])
        )
        at = draw(st.integers(0, max(0, n - 1)))
        if op == "flip" and n:
            out[at] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete" and n:
            del out[at : at + draw(st.integers(1, 64))]
        elif op == "duplicate" and n:
            piece = out[at : at + draw(st.integers(1, 256))]
            out[at:at] = piece * draw(st.integers(1, 20))
        elif op == "truncate":
            del out[at:]
        elif op == "interesting":
            out[at:at] = draw(_INTERESTING)
    return bytes(out)


@st.composite
def mutated_docx(draw: st.DrawFn) -> bytes:
    """A DOCX whose XML parts are mutated inside a well-formed zip (reaches the XML parser)."""
    source = zipfile.ZipFile(io.BytesIO(SEEDS["docx"][1]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename.endswith(".xml") and draw(st.booleans()):
                content = draw(mutated(content))
            target.writestr(info.filename, content)
    return out.getvalue()


def check_load(data: bytes, filename: str) -> None:
    try:
        document = load_document(data, filename=filename)
    except LoaderError as error:
        assert error.code and error.message
        return
    text = sum(len(s.text) + sum(map(len, s.heading_path)) for s in document.sections) + len(
        document.title
    )
    assert text <= 20 * len(data) + 10_000  # bounded by its input
    assert any(s.text.strip() for s in document.sections)


FUZZ = hsettings(
    max_examples=LOADER_EXAMPLES,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("kind", list(SEEDS))
def test_a_mutated_file_loads_or_raises_a_loader_error(kind: str) -> None:
    filename, seed = SEEDS[kind]
    check_load(seed, filename)  # the seed itself is valid

    @FUZZ
    @given(data=mutated(seed), named=st.booleans())
    def run(data: bytes, named: bool) -> None:
        check_load(data, filename if named else "upload.bin")

    run()


def test_a_docx_with_mutated_xml_loads_or_raises_a_loader_error() -> None:
    @FUZZ
    @given(data=mutated_docx())
    def run(data: bytes) -> None:
        check_load(data, "handbook.docx")

    run()


# ------------------------------------------------------------------------------------------------
# JSON bodies of the chat doors
# ------------------------------------------------------------------------------------------------

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["", "user", "assistant", "system", "\u202e", "\ud7ff" * 3, "𝔘𝔫𝔦", "\x00", "0" * 300]
    )
)
JSON = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    value: Any = draw(_LEAVES)
    for _ in range(draw(st.integers(1, 1000))):
        value = [value] if draw(st.booleans()) else {"content": value}
    return value


def shaped(fields: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The door's real body with each field either kept or swapped for arbitrary JSON."""
    return st.fixed_dictionaries(
        {k: st.just(v) | JSON | deep() for k, v in fields.items()}, optional={"extra": JSON}
    )


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(
        api_rate_limits=GENEROUS,
        public_rate_limits=GENEROUS,
        history_rate_limits=GENEROUS,
        auth_failure_rate_limits=GENEROUS,
    )


def test_chat_doors_never_answer_5xx_to_generated_json(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    app = build_app(settings, announce=lambda _: None)
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    try:
        bot = loop.run_until_complete(
            client.post("/v1/bots", json={"name": "Fuzz", "public": True})
        ).json()
        doors = {
            f"/v1/bots/{bot['id']}/chat": {
                "message": "hello",
                "conversation_id": None,
                "private": False,
            },
            "/v1/chat/completions": {
                "model": bot["slug"],
                "messages": [{"role": "user", "content": "hi"}],
                "stream": False,
                "temperature": 0.5,
            },
            "/api/chat": {
                "bot_slug": bot["slug"],
                "message": "hi",
                "stream": False,
                "history": [{"role": "user", "content": "x"}],
            },
            "/v1/public/chat/stream": {"bot_id": bot["id"], "message": "hi", "session_id": "s-1"},
        }
        body_of = st.sampled_from(list(doors)).flatmap(
            lambda path: st.tuples(st.just(path), shaped(doors[path]) | JSON | deep())
        )

        @hsettings(
            max_examples=JSON_EXAMPLES * 2,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=body_of, raw=st.booleans())
        def run(case: tuple[str, Any], raw: bool) -> None:
            path, body = case
            content = json.dumps(body, ensure_ascii=raw).encode()
            response = loop.run_until_complete(
                client.post(path, content=content, headers={"Content-Type": "application/json"})
            )
            assert response.status_code < 500, (path, content[:300], response.text[:300])
            assert "internal_error" not in response.text, (path, content[:300], response.text[:500])

        run()
        assert loop.run_until_complete(client.get("/healthz")).status_code == 200
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
