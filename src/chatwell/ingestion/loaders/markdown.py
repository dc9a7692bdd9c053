"""Markdown loader: headings become heading_path, markup is stripped to readable text.

Parsed with markdown-it-py (CommonMark plus tables); a leading YAML/TOML front matter block is
read for a title and otherwise dropped. Raw HTML inside Markdown is reduced to its text. Nothing
is rendered or fetched (links and images keep only their text).
"""

from __future__ import annotations

import html
import re
from typing import Any

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.ingestion.loaders._text import (
    SectionBuilder,
    clean_inline,
    decode_text,
    pick_title,
    title_from_filename,
    title_from_text,
)

MIME_TYPE = "text/markdown"
EXTENSIONS = (".md", ".markdown", ".mdown", ".mkd", ".mdx")
MIME_TYPES = ("text/markdown", "text/x-markdown")

_FRONT_MATTER = re.compile(
    r"\A(?:---|\+\+\+)[ \t]*\n(.*?)\n(?:---|\+\+\+|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL
)
_FRONT_TITLE = re.compile(r"^title\s*[:=]\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def load(data: bytes, filename: str | None) -> LoadedDocument:
    text = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
    front_title = None
    match = _FRONT_MATTER.match(text)
    if match:
        title_match = _FRONT_TITLE.search(match.group(1))
        front_title = title_match.group(1).strip("\"' ") if title_match else None
        text = text[match.end() :]
    try:
        sections, first_h1 = _render(text)
    except Exception as exc:  # markdown-it accepts any text; this guards pathological input
        raise LoaderError("malformed_file", "The Markdown file could not be parsed.") from exc
    if not sections:
        raise LoaderError("empty_document", "The Markdown file contains no text.")
    return LoadedDocument(
        title=pick_title(
            front_title, first_h1, title_from_filename(filename), title_from_text(text)
        ),
        sections=sections,
        mime_type=MIME_TYPE,
    )


def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _render(text: str) -> tuple[list[Section], str | None]:
    tokens = _parser().parse(text)
    builder = SectionBuilder()
    first_h1: str | None = None
    list_depth = 0
    items: list[str] = []  # lines of the outermost open list
    rows: list[str] = []  # lines of the open table
    cells: list[str] | None = None
    in_table = False
    heading_level: int | None = None
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading_level = int(token.tag[1])
        elif kind == "heading_close":
            heading_level = None
        elif kind in {"bullet_list_open", "ordered_list_open"}:
            list_depth += 1
        elif kind in {"bullet_list_close", "ordered_list_close"}:
            list_depth -= 1
            if list_depth == 0:
                builder.lines(items)
                items = []
        elif kind == "list_item_open":
            marker = f"{token.info}." if token.info else "-"
            items.append(f"{marker} ")
        elif kind == "table_open":
            in_table = True
        elif kind == "table_close":
            in_table = False
            builder.lines(rows)
            rows = []
        elif kind == "tr_open":
            cells = []
        elif kind == "tr_close" and cells is not None:
            if any(cells):
                rows.append(" | ".join(cells))
            cells = None
        elif kind in {"fence", "code_block"}:
            _add_block(builder, items, list_depth, token.content, preformatted=True)
        elif kind == "html_block":
            _add_block(builder, items, list_depth, html.unescape(_TAG.sub(" ", token.content)))
        elif kind == "inline":
            line = _inline_text(token)
            if heading_level is not None:
                builder.heading(heading_level, line)
                if heading_level == 1 and first_h1 is None:
                    first_h1 = clean_inline(line)
            elif in_table and cells is not None:
                cells.append(clean_inline(line))
            else:
                _add_block(builder, items, list_depth, line)
    builder.lines(items)
    return builder.build(), first_h1


def _add_block(
    builder: SectionBuilder,
    items: list[str],
    list_depth: int,
    text: str,
    *,
    preformatted: bool = False,
) -> None:
    if list_depth and items:  # paragraphs inside a list item stay on the item's line
        items[-1] = f"{items[-1]} {clean_inline(text)}".rstrip()
    elif "\n" in text and not preformatted:  # hard line breaks inside a paragraph
        builder.lines(text.split("\n"))
    else:
        builder.paragraph(text, preformatted=preformatted)


def _inline_text(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or []:
        kind = child.type
        if kind in {"text", "text_special", "code_inline"}:
            parts.append(child.content)
        elif kind == "image":
            parts.append(child.content)  # the alt text
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
    return "".join(parts)
