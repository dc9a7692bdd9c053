"""Loaders and their registry, on small real files built here (no fixtures on disk)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.ingestion.loaders import (
    detect_loader,
    load_document,
    register_loader,
    registered_loaders,
    unregister_loader,
)
from chatwell.ingestion.loaders.docx import check_zip_bomb

from .helpers import make_pdf


def _error(data: bytes, **kwargs: object) -> LoaderError:
    with pytest.raises(LoaderError) as caught:
        load_document(data, **kwargs)  # type: ignore[arg-type]
    return caught.value


def _encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _docx_bytes() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Employee Handbook"
    document.add_heading("Leave", level=1)
    document.add_paragraph("Staff get 25 days of annual leave.")
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Report sickness before 9am.")
    document.add_paragraph("Call your manager", style="List Bullet")
    document.add_paragraph("Email HR", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "Plan", (0, 1): "Days", (1, 0): "Basic", (1, 1): "25"}.items():
        table.cell(row, col).text = text
    document.add_heading("Pay", level=1)
    document.add_paragraph("Salaries are paid monthly.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


# --- PDF ---------------------------------------------------------------------------------


def test_pdf_one_section_per_page_with_1_based_pages() -> None:
    pdf = make_pdf(["Refunds are issued within 14 days.", "", "Shipping is free over 50 euros."])
    document = load_document(pdf, filename="policy.pdf", declared_type="application/pdf")
    assert document.mime_type == "application/pdf"
    assert [(s.page, s.text) for s in document.sections] == [
        (1, "Refunds are issued within 14 days."),
        (3, "Shipping is free over 50 euros."),
    ]
    assert document.metadata["page_count"] == 3
    assert document.title == "policy"


def test_pdf_with_user_password_is_refused() -> None:
    pdf = _encrypted(make_pdf(["Top secret plans."]), user_password="s3cret")
    assert _error(pdf, filename="secret.pdf").code == "encrypted_pdf"


def test_pdf_with_only_an_owner_password_still_opens() -> None:
    pdf = _encrypted(make_pdf(["Printable but restricted."]), user_password="")
    document = load_document(pdf, filename="restricted.pdf")
    assert document.sections[0].text == "Printable but restricted."
    assert document.metadata["encrypted"] is True


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\nthis is not really a pdf", make_pdf(["Cut short"])[:150]],
    ids=["garbage", "truncated"],
)
def test_malformed_pdf(data: bytes) -> None:
    assert _error(data, filename="broken.pdf").code == "malformed_file"


def test_pdf_without_text_layer_is_empty() -> None:
    assert _error(make_pdf(["", ""]), filename="scan.pdf").code == "empty_document"


def test_pdf_hard_wrapped_lines_are_rejoined() -> None:
    text = (
        "Our support team answers every ticket within one busi-\n"
        "ness day, including on public\n"
        "holidays and weekends.\n"
        "Short line."
    )
    document = load_document(make_pdf([text]))
    assert (
        "one business day, including on public holidays and weekends." in document.sections[0].text
    )


# --- DOCX --------------------------------------------------------------------------------


def test_docx_headings_lists_and_tables() -> None:
    document = load_document(_docx_bytes(), filename="handbook.docx")
    assert document.title == "Employee Handbook"
    assert document.mime_type.endswith("wordprocessingml.document")
    by_path = {section.heading_path: section.text for section in document.sections}
    assert by_path[("Leave",)] == "Staff get 25 days of annual leave."
    sick = by_path[("Leave", "Sick leave")]
    assert "- Call your manager\n- Email HR" in sick
    assert "Plan | Days\nBasic | 25" in sick
    assert by_path[("Pay",)] == "Salaries are paid monthly."


def test_docx_is_sniffed_by_content_not_name() -> None:
    document = load_document(_docx_bytes(), filename="renamed.txt", declared_type="text/plain")
    assert document.metadata["loader"] == "docx"


def test_zip_bomb_by_compression_ratio_is_refused() -> None:
    bomb = _zip(
        {"word/document.xml": b"<w:document/>", "word/media/x.bin": b"\0" * (20 * 1024 * 1024)}
    )
    assert len(bomb) < 100_000
    assert _error(bomb, filename="bomb.docx").code == "zip_bomb"


def test_zip_bomb_by_entry_count_is_refused() -> None:
    entries = {f"word/part{i}.xml": b"" for i in range(5_001)}
    entries["word/document.xml"] = b"<w:document/>"
    assert _error(_zip(entries, zipfile.ZIP_STORED), filename="many.docx").code == "zip_bomb"


def test_zip_bomb_by_total_size_limit() -> None:
    archive = _zip({"word/document.xml": b"a" * 5_000})
    check_zip_bomb(archive, max_uncompressed=10_000)
    with pytest.raises(LoaderError) as caught:
        check_zip_bomb(archive, max_uncompressed=4_000)
    assert caught.value.code == "zip_bomb"


def test_broken_docx_is_malformed() -> None:
    broken = _zip({"word/document.xml": b"<w:document><unclosed"})
    assert _error(broken, filename="broken.docx").code == "malformed_file"


# --- HTML --------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html lang="en"><head><title>Pricing | Acme</title>
<meta name="description" content="Plans and prices">
<style>body { color: red }</style><script>var tracking = "secret";</script></head>
<body>
<header><a href="/">Acme</a> <a href="/login">Log in</a></header>
<nav><ul><li>Home</li><li>Pricing</li></ul></nav>
<main>
  <h1>Pricing</h1>
  <p>All plans include <b>unlimited</b> users.</p>
  <h2>Plans</h2>
  <ul><li>Starter: 10 euros</li><li>Pro: 30 euros</li></ul>
  <table><tr><th>Plan</th><th>Seats</th></tr><tr><td>Starter</td><td>5</td></tr></table>
  <h3>Discounts</h3>
  <p>Nonprofits get 50% off.<br>Ask support.</p>
  <div hidden>Invisible text</div>
  <aside>Related: our blog</aside>
</main>
<footer>Copyright Acme</footer>
</body></html>"""


def test_html_keeps_content_and_drops_boilerplate() -> None:
    document = load_document(
        PAGE.encode(), filename=None, declared_type="text/html", url="https://acme.test/pricing"
    )
    assert document.title == "Pricing | Acme"
    assert document.url == "https://acme.test/pricing"
    assert document.metadata["language"] == "en"
    assert document.metadata["description"] == "Plans and prices"
    everything = document.text
    for junk in ("tracking", "color: red", "Log in", "Home", "Copyright", "our blog", "Invisible"):
        assert junk not in everything
    by_path = {section.heading_path: section.text for section in document.sections}
    assert by_path[("Pricing",)] == "All plans include unlimited users."
    assert (
        by_path[("Pricing", "Plans")]
        == "- Starter: 10 euros\n- Pro: 30 euros\n\nPlan | Seats\nStarter | 5"
    )
    assert by_path[("Pricing", "Plans", "Discounts")] == "Nonprofits get 50% off.\nAsk support."


def test_page_wrapped_in_a_form_keeps_its_text() -> None:
    page = b"<html><body><form action='/x'><h1>FAQ</h1><p>We open at 9.</p><input name=q></form>"
    assert load_document(page).sections[0].text == "We open at 9."


def test_html_title_falls_back_to_first_h1() -> None:
    document = load_document(b"<html><body><h1>Welcome</h1><p>Hi there.</p></body></html>")
    assert document.title == "Welcome"


def test_html_sniffed_even_when_named_txt() -> None:
    assert load_document(PAGE.encode(), filename="page.txt").metadata["loader"] == "html"


def test_deeply_nested_html_does_not_crash() -> None:
    html = (
        "<html><body>" + "<div>" * 5_000 + "<p>deep text</p>" + "</div>" * 5_000 + "</body></html>"
    )
    assert "deep text" in load_document(html.encode()).text


def test_html_without_text_is_empty() -> None:
    assert (
        _error(b"<html><head><script>x()</script></head><body><nav>menu</nav></body></html>").code
        == "empty_document"
    )


# --- Markdown, text, CSV -------------------------------------------------------------------


def test_markdown_headings_and_stripped_markup() -> None:
    source = b"""---
title: Getting started
---
# Install

Run `pip install acme` and read the [docs](https://acme.test/docs).

## Configure

- Set **API_KEY**
- Restart the ![server icon](icon.png) server

| Option | Default |
|--------|---------|
| port   | 8000    |

```bash
acme serve --port 8000
```
"""
    document = load_document(source, filename="README.md")
    assert document.title == "Getting started"
    by_path = {section.heading_path: section.text for section in document.sections}
    assert by_path[("Install",)] == "Run pip install acme and read the docs."
    configure = by_path[("Install", "Configure")]
    assert "- Set API_KEY\n- Restart the server icon server" in configure
    assert "Option | Default\nport | 8000" in configure
    assert "acme serve --port 8000" in configure
    assert "**" not in configure and "](" not in configure


def test_extension_only_disambiguates_text_kinds() -> None:
    source = b"# Heading\n\nBody text."
    assert load_document(source, filename="notes.md").metadata["loader"] == "markdown"
    assert load_document(source, filename="notes.txt").metadata["loader"] == "text"
    assert load_document(source, declared_type="text/markdown").metadata["loader"] == "markdown"
    assert (
        load_document(source, filename="notes.pdf", declared_type="application/pdf").metadata[
            "loader"
        ]
        == "text"
    )


def test_plain_text_paragraphs_and_encodings() -> None:
    document = load_document(
        "Café opening hours.\r\n\r\n\r\nMonday to Friday.".encode("cp1252"), filename="hours.txt"
    )
    assert document.title == "hours"
    assert document.sections == [Section("Café opening hours.\n\nMonday to Friday.")]
    utf16 = load_document("Grüße aus Köln".encode("utf-16"), filename="greeting.txt")
    assert utf16.sections[0].text == "Grüße aus Köln"


def test_csv_rows_become_column_value_lines_and_qa_is_noted() -> None:
    data = (
        b"Question,Answer\n"
        b'Do you ship abroad?,"Yes, to 30 countries."\n'
        b"Can I return items?,Within 30 days.\n"
    )
    document = load_document(data, filename="faq.csv")
    assert document.sections[0].text == (
        "Question: Do you ship abroad?\nAnswer: Yes, to 30 countries.\n\n"
        "Question: Can I return items?\nAnswer: Within 30 days."
    )
    assert document.metadata["qa_columns"] == {"question": "Question", "answer": "Answer"}
    plain = load_document(b"name;city\nAda;London\n", filename="people.csv")
    assert plain.sections[0].text == "name: Ada\ncity: London"
    assert "qa_columns" not in plain.metadata


# --- Registry and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
        _zip({"hello.txt": b"hi"}),
        b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4,
        os.urandom(4096) + b"\x00",
    ],
    ids=["png", "plain-zip", "gzip", "random"],
)
def test_unknown_binaries_are_unsupported(data: bytes) -> None:
    assert (
        _error(data, filename="upload.docx", declared_type="application/pdf").code
        == "unsupported_type"
    )


def test_size_limit_is_enforced_before_parsing() -> None:
    assert _error(b"x" * 101, filename="a.txt", max_bytes=100).code == "file_too_large"


@pytest.mark.parametrize("data", [b"", b"   \n\t  "])
def test_empty_input(data: bytes) -> None:
    assert _error(data, filename="a.txt").code == "empty_document"


def test_error_codes_are_validated() -> None:
    with pytest.raises(ValueError):
        LoaderError("something_else", "nope")


@pytest.fixture
def rtf_loader() -> Iterator[None]:
    def load(data: bytes, filename: str | None) -> LoadedDocument:
        text = data.decode("ascii").removeprefix("{\\rtf1").rstrip("}").strip()
        return LoadedDocument(title="rtf", sections=[Section(text)], mime_type="application/rtf")

    register_loader(
        "rtf", load, mime_type="application/rtf", sniff=lambda data: data.startswith(b"{\\rtf1")
    )
    try:
        yield
    finally:
        unregister_loader("rtf")


@pytest.mark.usefixtures("rtf_loader")
def test_third_party_loader_uses_the_same_registry() -> None:
    assert [spec.name for spec in registered_loaders()][:2] == ["pdf", "docx"]
    assert detect_loader(b"{\\rtf1 Hello from RTF}", filename="x.txt").name == "rtf"
    document = load_document(b"{\\rtf1 Hello from RTF}")
    assert document.sections[0].text == "Hello from RTF"
    with pytest.raises(ValueError):
        register_loader("rtf", lambda data, name: document, mime_type="application/rtf")


def test_loader_crash_becomes_malformed_file() -> None:
    def explode(data: bytes, filename: str | None) -> LoadedDocument:
        raise KeyError("bug")

    register_loader(
        "boom", explode, mime_type="application/x-boom", sniff=lambda data: data.startswith(b"BOOM")
    )
    try:
        assert _error(b"BOOM!").code == "malformed_file"
    finally:
        unregister_loader("boom")


DOCBOOK_PAGE = """<html><head><title>4. Memcheck: a memory error detector</title></head><body>
<div><table class="nav" width="100%" summary="Navigation header"><tr>
<td><a accesskey="p" href="core.html"><img src="prev.png" alt="Prev"></a></td>
<td><a accesskey="u" href="manual.html"><img src="up.png" alt="Up"></a></td>
<th>Valgrind User Manual</th>
<td><a accesskey="n" href="cg.html"><img src="next.png" alt="Next"></a></td></tr></table></div>
<div class="chapter"><div class="titlepage"><h1 class="title">4. Memcheck: a memory error detector</h1></div>
<div class="toc"><p><b>Table of Contents</b></p><dl class="toc"><dt><a href="#leaks">4.2.8. Memory leak detection</a></dt>
<dt><a href="#opts">4.3. Memcheck Command-Line Options</a></dt></dl></div>
<div class="sect1"><h2 class="title">4.3. Memcheck Command-Line Options</h2>
<p>Use <code>--leak-check=full</code> to see each leaked block in detail.</p></div></div>
<div class="bottom-links"><p><a href="core.html">&lt;&lt; Previous</a> | <a href="manual.html">Up</a> |
<a href="index.html">Home</a> | <a href="cg.html">Next &gt;&gt;</a></p></div>
<div><br><table class="nav" summary="Navigation footer"><tr>
<td><a accesskey="p" href="core.html">&lt;&lt; 3. Using the Valgrind core</a></td>
<td><a accesskey="u" href="manual.html">Up</a></td></tr></table></div>
</body></html>"""

SHOP_PAGE = """<html><head><title>Corner Bakery</title></head><body>
<div class="site-header"><a href="/">Home</a> <a href="/menu">Menu</a> <a href="/contact">Contact</a></div>
<div id="breadcrumbs"><a href="/">Home</a> &rsaquo; Pastries</div>
<div class="content"><h1>Pastries</h1><p>Our butter croissants are baked fresh every morning.</p>
<ul class="menu"><li>Croissant, 2.10</li><li>Pain au chocolat, 2.40</li></ul></div>
<div class="footer">Imprint · Privacy · Terms</div></body></html>"""


def test_html_drops_documentation_chrome_and_keeps_the_content() -> None:
    document = load_document(DOCBOOK_PAGE.encode(), filename="mc-manual.html")
    text = "\n".join(s.text for s in document.sections)
    assert "--leak-check=full" in text and document.title == "4. Memcheck: a memory error detector"
    for chrome in (
        "Valgrind User Manual",
        "Previous",
        "Home",
        "Next",
        "Table of Contents",
        "Using the Valgrind core",
    ):
        assert chrome not in text
    assert any(
        s.heading_path[-1] == "4.3. Memcheck Command-Line Options" for s in document.sections
    )
    shop = "\n".join(
        s.text for s in load_document(SHOP_PAGE.encode(), filename="pastries.html").sections
    )
    assert (
        "croissants are baked fresh" in shop and "Pain au chocolat, 2.40" in shop
    )  # a food menu is content
    for chrome in ("Contact", "Home", "Imprint"):
        assert chrome not in shop


def test_html_contents_page_keeps_its_lists() -> None:
    page = b"""<html><body><div class="toc"><ul><li><a href="a.html">Installing the app</a></li>
    <li><a href="b.html">Resetting a password</a></li></ul></div></body></html>"""
    text = "\n".join(s.text for s in load_document(page, filename="index.html").sections)
    assert "Installing the app" in text and "Resetting a password" in text


DOCBOOK_FAQ = """<html><head><title>Valgrind Frequently Asked Questions</title></head><body>
<div class="article"><h1 class="title">Valgrind Frequently Asked Questions</h1>
<div class="qandaset"><dl>
<dt>1. <a href="faq.html#faq.background">Background</a></dt>
<dd>1.1. <a href="faq.html#faq.pronounce">How do you pronounce "Valgrind"?</a></dd>
<dt>4. <a href="faq.html#faq.unexpected">Valgrind behaves unexpectedly</a></dt>
<dd>4.2. <a href="faq.html#faq.unhelpful">The stack traces aren't helpful. How can I improve them?</a></dd>
</dl>
<table summary="Q and A Div">
<tr class="qandadiv"><td colspan="2"><a name="faq.background"></a>1. Background</td></tr>
<tr class="question"><td><b>1.1.</b></td><td><b>How do you pronounce "Valgrind"?</b></td></tr>
<tr class="answer"><td></td><td><p>The "Val" as in the word "value".</p></td></tr>
</table>
<table summary="Q and A Div">
<tr class="qandadiv"><td colspan="2">4. Valgrind behaves unexpectedly</td></tr>
<tr class="question"><td><b>4.2.</b></td><td><b>The stack traces aren't helpful. How can I improve them?</b></td></tr>
<tr class="answer"><td></td><td><p>If they're not long enough, use <code>--num-callers</code>.</p>
<p>If they're not detailed enough, compile with <code>-g</code> to add debug information.</p></td></tr>
</table></div></div></body></html>"""


def test_html_faq_answers_are_sections_under_their_questions() -> None:
    # DocBook's qandaset: every answer is its own section headed by its question, so a chunk of
    # it carries the question as context; the list of in-page links to the questions is dropped.
    document = load_document(DOCBOOK_FAQ.encode(), filename="faq.html")
    by_path = {s.heading_path: s.text for s in document.sections}
    question = (
        "Valgrind Frequently Asked Questions",
        "4. Valgrind behaves unexpectedly",
        "4.2. The stack traces aren't helpful. How can I improve them?",
    )
    assert question in by_path
    assert (
        "--num-callers" in by_path[question] and "-g to add debug information" in by_path[question]
    )
    assert "\n\n" in by_path[question]  # its two paragraphs stay two paragraphs
    text = "\n".join(s.text for s in document.sections)
    assert "How do you pronounce" not in text  # a heading now, and no contents list repeats it
    assert any(path[-1] == '1.1. How do you pronounce "Valgrind"?' for path in by_path)
