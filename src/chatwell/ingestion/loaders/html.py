"""HTML loader: the readable main content of a page, with h1-h6 as heading_path.

Boilerplate (scripts, styles, navigation, site header/footer, asides, forms, hidden elements,
and what documentation generators mark as chrome by class: DocBook's Prev/Up/Next tables, Sphinx's
related bar and sidebar, in-page tables of contents, blocks of page-turning links) is dropped; list items and table rows stay one per line. It parses with the stdlib-backed
``html.parser`` and never fetches anything (links, images, frames are not followed).
"""

from __future__ import annotations

import re
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.dammit import UnicodeDammit
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.ingestion.loaders._text import (
    SectionBuilder,
    clean_inline,
    pick_title,
    title_from_filename,
)

MIME_TYPE = "text/html"

_MARKERS = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_HEADING = re.compile(r"^h([1-6])$")
# Not <form>: ASP.NET WebForms pages wrap their whole body in one.
_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "nav",
        "footer",
        "aside",
        "iframe",
        "frame",
        "frameset",
        "svg",
        "math",
        "canvas",
        "button",
        "select",
        "input",
        "textarea",
        "object",
        "embed",
        "dialog",
        "head",
        "link",
        "meta",
    }
)
_DROP_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "dialog"}
)
# Class or id words of site chrome as documentation generators (DocBook, Sphinx, MkDocs, Hugo,
# WordPress themes) write it; "header"/"footer" only outside the article, like the tags.
_DROP_CLASSES = frozenset(
    {
        "nav",
        "navbar",
        "navheader",
        "navfooter",
        "navigation",
        "breadcrumb",
        "breadcrumbs",
        "sidebar",
        "sphinxsidebar",
        "related",
        "skip-link",
        "skiplink",
        "site-nav",
        "site-header",
        "site-footer",
        "cookie-banner",
        "cookie-notice",
        "pagination",
        "pager",
        "prev-next",
        "md-header",
        "md-footer",
        "md-sidebar",
        "toc",
        "localtoc",
    }
)
_PAGE_CLASSES = frozenset({"header", "footer", "page-header", "page-footer"})
_ARTICLE_TAGS = frozenset({"article", "main", "section"})
# A block of nothing but page-turning links: "Prev", "Up", "Home", "Next", "<< Previous | Next >>".
_PAGE_TURNING = re.compile(
    r"^(?:prev(?:ious)?|next|up|home|top|back|index|contents|[<>«»|·‹›←→\s-])+$", re.IGNORECASE
)
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "blockquote",
        "address",
        "figure",
        "figcaption",
        "details",
        "summary",
        "dl",
        "dt",
        "dd",
        "header",
        "hgroup",
        "center",
        "fieldset",
        "legend",
        "body",
        "html",
        "caption",
        "hr",
    }
)
# DocBook renders a FAQ (qandaset) as a table: a group title row, then question and answer rows.
_QA_ROW_LEVELS = {"qandadiv": 5, "question": 6}
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)


def sniff_text(head: str) -> bool:
    """True when decoded text opens like an HTML document (not merely containing a tag)."""
    stripped = head.lstrip("\ufeff \t\r\n")
    return stripped.startswith("<") and _MARKERS.search(head[:4096]) is not None


def load(data: bytes, filename: str | None) -> LoadedDocument:
    try:
        # UnicodeDammit honours BOMs and <meta charset>; an XML prolog trips bs4's XML warning.
        markup = UnicodeDammit(data, is_html=True).unicode_markup or ""
        soup = BeautifulSoup(_XML_DECLARATION.sub("", markup, count=1), "html.parser")
        title_tag = soup.find("title")
        page_title = clean_inline(title_tag.get_text(" ")) if title_tag else ""
        metadata = _metadata(soup)
        first_h1 = soup.find("h1")
        h1_text = clean_inline(first_h1.get_text(" ")) if first_h1 else ""
        _drop_boilerplate(soup)
        sections = _Walker().run(_content_root(soup))
        if not sections:  # all of it looked like chrome (a contents page): keep its lists after all
            pristine = BeautifulSoup(_XML_DECLARATION.sub("", markup, count=1), "html.parser")
            _drop_boilerplate(pristine, by_class=False)
            sections = _Walker().run(_content_root(pristine))
    except LoaderError:
        raise
    except RecursionError as exc:
        raise LoaderError("malformed_file", "The HTML is nested too deeply to read.") from exc
    except Exception as exc:
        raise LoaderError("malformed_file", "The HTML page could not be parsed.") from exc
    if not sections:
        raise LoaderError("empty_document", "The page has no readable text.")
    return LoadedDocument(
        title=pick_title(page_title, h1_text, title_from_filename(filename)),
        sections=sections,
        mime_type=MIME_TYPE,
        metadata=metadata,
    )


def _metadata(soup: BeautifulSoup) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    html_tag = soup.find("html")
    if isinstance(html_tag, Tag) and html_tag.get("lang"):
        metadata["language"] = str(html_tag["lang"]).strip()
    for meta in soup.find_all("meta"):
        name = str(meta.get("name") or meta.get("property") or "").lower()
        content = clean_inline(str(meta.get("content") or ""))
        if name in {"description", "og:description"} and content:
            metadata.setdefault("description", content)
        elif name == "robots" and content:
            metadata["robots"] = content.lower()
    canonical = soup.find("link", rel="canonical")
    if isinstance(canonical, Tag) and canonical.get("href"):
        metadata["canonical_url"] = str(canonical["href"]).strip()
    return metadata


def _is_boilerplate(tag: Tag, *, by_class: bool, outside_article: bool, holds_link: bool) -> bool:
    if tag.name in _DROP_TAGS:
        return True
    attrs = tag.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _DROP_ROLES:
        return True
    style = str(attrs.get("style", "")).replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    if not by_class:
        return tag.name == "header" and outside_article
    words = {w.lower() for w in [*_words(attrs.get("class")), *_words(attrs.get("id"))]}
    if words & _DROP_CLASSES or str(attrs.get("summary", "")).lower().startswith("navigation"):
        return True
    if words & _PAGE_CLASSES and outside_article:
        return True
    if tag.name in ("div", "p", "table", "td", "tr", "span") and holds_link:
        text = tag.get_text(" ", strip=True)
        if text and len(text) <= 80 and _PAGE_TURNING.match(text):
            return True
    if tag.name in ("ul", "ol", "dl") and holds_link and _in_page_contents(tag):
        return True
    # A page-level <header> is site chrome; a <header> inside an article is the article's own.
    return tag.name == "header" and outside_article


def _in_page_contents(tag: Tag) -> bool:
    """A list of nothing but links to places in the same page: an unmarked table of contents
    (a DocBook FAQ's list of its questions), which repeats the headings below it."""
    links = tag.find_all("a", href=True)
    if len(links) < 3 or not all("#" in str(a["href"]) for a in links):
        return False
    linked = sum(len(a.get_text(" ", strip=True)) for a in links)
    return linked >= 0.8 * len(tag.get_text(" ", strip=True))


def _words(value: Any) -> list[str]:
    if not value:
        return []
    return list(value) if isinstance(value, list) else str(value).split()


def _drop_boilerplate(soup: BeautifulSoup, *, by_class: bool = True) -> None:
    tags = soup.find_all(True)
    # Whether a tag sits in an article and holds a link, in one pass down and one up: asking each
    # tag (find_parent, find) was quadratic, a minute for a page of 5,000 nested <div>s.
    in_article: set[int] = set()
    for tag in tags:  # document order: a parent before its children
        parent = tag.parent
        if parent is not None and (parent.name in _ARTICLE_TAGS or id(parent) in in_article):
            in_article.add(id(tag))
    with_link: set[int] = set()
    for tag in reversed(tags):  # children before their parent
        if tag.parent is not None and (tag.name == "a" or id(tag) in with_link):
            with_link.add(id(tag.parent))
    doomed = [
        tag
        for tag in tags
        if _is_boilerplate(
            tag,
            by_class=by_class,
            outside_article=id(tag) not in in_article,
            holds_link=id(tag) in with_link,
        )
    ]
    for tag in doomed:
        if not tag.decomposed:
            tag.decompose()


def _content_root(soup: BeautifulSoup) -> Tag:
    mains = soup.find_all(lambda tag: tag.name == "main" or tag.get("role") == "main")
    if len(mains) == 1:
        return mains[0]
    body = soup.find("body")
    return body if isinstance(body, Tag) else soup


class _Walker:
    """Iterative document walk (deeply nested markup must not blow the recursion limit)."""

    def __init__(self) -> None:
        self.builder = SectionBuilder()
        self.inline: list[str] = []

    def run(self, root: Tag) -> list[Section]:
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self._flush_inline()
                continue
            if isinstance(node, NavigableString):
                if not isinstance(node, _SKIPPED_STRINGS):
                    self.inline.append(str(node))
                continue
            if not isinstance(node, Tag) or self._handled(node):
                continue
            if node.name in _BLOCK_TAGS:
                self._flush_inline()
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
        self._flush_inline()
        return self.builder.build()

    def _handled(self, tag: Tag) -> bool:
        """Handle tags whose whole subtree is rendered at once; False means descend into it."""
        name = tag.name
        heading = _HEADING.match(name)
        if heading:
            self._flush_inline()
            self.builder.heading(int(heading.group(1)), tag.get_text(" "))
            return True
        if name == "br":
            self.inline.append("\n")
            return True
        if name in {"ul", "ol", "menu"}:
            self._flush_inline()
            items = tag.find_all("li", recursive=False) or [tag]
            self.builder.lines(["- " + item.get_text(" ") for item in items])
            return True
        if name == "table":
            self._flush_inline()
            if _is_question_table(tag):
                return False  # a FAQ: its rows are walked one by one (below)
            self.builder.lines(_table_lines(tag))
            return True
        if name == "tr" and _QA_ROW_LEVELS.keys() & set(_words(tag.get("class"))):
            # A FAQ's group title and question head the answer that follows, so every answer is
            # a section of its own under its question (DocBook's qandaset table rows).
            self._flush_inline()
            (level,) = {_QA_ROW_LEVELS[w] for w in _words(tag.get("class")) if w in _QA_ROW_LEVELS}
            self.builder.heading(level, tag.get_text(" "))
            return True
        if name == "pre":
            self._flush_inline()
            self.builder.paragraph(tag.get_text(), preformatted=True)
            return True
        if name == "tr" and "answer" in _words(tag.get("class")):
            return False  # an answer's paragraphs and lists stay as they are written
        if name in {"li", "tr"}:  # stray items outside a list/table still get their own line
            self._flush_inline()
            self.builder.lines([tag.get_text(" ")])
            return True
        return False

    def _flush_inline(self) -> None:
        if not self.inline:
            return
        lines = [clean_inline(line) for line in "".join(self.inline).split("\n")]
        self.inline = []
        lines = [line for line in lines if line]
        if len(lines) == 1:
            self.builder.paragraph(lines[0])
        elif lines:
            self.builder.lines(lines)


def _is_question_table(table: Tag) -> bool:
    return any(
        "question" in _words(row.get("class"))
        for row in table.find_all("tr")
        if row.find_parent("table") is table
    )


def _table_lines(table: Tag) -> list[str]:
    lines = []
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:  # nested tables are rendered with their cell
            continue
        cells = [
            clean_inline(cell.get_text(" ")) for cell in row.find_all(["td", "th"], recursive=False)
        ]
        if any(cells):
            lines.append(" | ".join(cells))
    caption = table.find("caption")
    if isinstance(caption, Tag) and caption.get_text(strip=True):
        lines.insert(0, clean_inline(caption.get_text(" ")))
    return lines
