"""DOCX loader: Word paragraphs, headings (as heading_path), lists and tables, in reading order.

The archive is vetted before python-docx sees it: too many entries, too much declared
uncompressed data or an implausible compression ratio is refused as ``zip_bomb``. zipfile never
inflates an entry past its declared size (it fails the CRC instead), so checking the declared
sizes bounds what parsing can allocate. Under a text budget (an extraction's cap) the body's
text is counted streaming first. Legacy ``.doc`` files are not supported.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from chatwell.domain.documents import LoadedDocument, LoaderError
from chatwell.ingestion.loaders._text import (
    SectionBuilder,
    clean_inline,
    pick_title,
    text_budget,
    title_from_filename,
    too_much_text,
)

MIME_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

MAX_ENTRIES = 5_000
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_COMPRESSION_RATIO = 100
# Small archives may compress extremely well (empty XML parts); only large ones are judged on ratio.
RATIO_CHECK_ABOVE_BYTES = 8 * 1024 * 1024

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_LIST_STYLE = re.compile(r"^list( bullet| number| paragraph)?\b", re.IGNORECASE)


def sniff(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(info.filename == "word/document.xml" for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def check_zip_bomb(
    data: bytes,
    *,
    max_entries: int = MAX_ENTRIES,
    max_uncompressed: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> None:
    """Refuse an archive whose central directory promises more than we are willing to inflate."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoaderError("malformed_file", "The DOCX file is not a readable zip archive.") from exc
    if len(infos) > max_entries:
        raise LoaderError("zip_bomb", f"The archive has too many entries ({len(infos)}).")
    total = sum(info.file_size for info in infos)
    if total > max_uncompressed:
        raise LoaderError(
            "zip_bomb",
            f"The archive would expand to {total} bytes, over the {max_uncompressed} limit.",
        )
    compressed = max(1, len(data))
    if total > RATIO_CHECK_ABOVE_BYTES and total / compressed > max_ratio:
        raise LoaderError(
            "zip_bomb", f"The archive expands {total // compressed}x, which looks like a zip bomb."
        )
    for info in infos:
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > RATIO_CHECK_ABOVE_BYTES and ratio > max_ratio:
            raise LoaderError("zip_bomb", f"The entry {info.filename!r} expands implausibly far.")


def check_text_budget(data: bytes) -> None:
    """Under a text budget, count the body's paragraph text streaming, one paragraph in memory
    at a time, and refuse a document over it before python-docx builds the whole tree (185 MiB
    of paragraphs fit in a 10 MB file under the zip-bomb limits)."""
    limit = text_budget.get()
    if limit is None:
        return
    from lxml import etree

    paragraph = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}p"
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("word/document.xml") as xml:
            for _, element in etree.iterparse(
                xml, events=("end",), tag=paragraph, resolve_entities=False
            ):
                total += sum(len(text) for text in element.itertext())
                if total > limit:
                    raise too_much_text(total, limit)
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del element.getparent()[0]
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError):
        return  # not this pass's business: python-docx reports a damaged file its own way


def load(data: bytes, filename: str | None) -> LoadedDocument:
    check_zip_bomb(data)
    check_text_budget(data)
    from docx import Document

    try:
        document = Document(io.BytesIO(data))
        builder = SectionBuilder()
        first_heading: str | None = None
        title_style_text: str | None = None
        list_items: list[str] = []  # consecutive list paragraphs become one block
        for block in document.iter_inner_content():
            is_table = hasattr(block, "rows")
            text = "" if is_table else block.text
            style = "" if is_table else _style_name(block)
            ends_list = is_table or (text.strip() and not _LIST_STYLE.match(style))
            if list_items and ends_list:
                builder.lines(list_items)
                list_items = []
            if is_table:
                builder.lines(_table_lines(block))
                continue
            if not text.strip():
                continue
            level = _heading_level(block)
            if style.lower() == "title":
                title_style_text = title_style_text or clean_inline(text)
                builder.paragraph(text)  # the title is not a heading level, but still content
            elif level is not None:
                first_heading = first_heading or clean_inline(text)
                builder.heading(level, text)
            elif _LIST_STYLE.match(style):
                list_items.append("- " + text)
            else:
                builder.paragraph(text)
        builder.lines(list_items)
        sections = builder.build()
        core_title = document.core_properties.title
    except LoaderError:
        raise
    except Exception as exc:  # python-docx/lxml raise many types on broken parts
        raise LoaderError("malformed_file", "The DOCX file is damaged and cannot be read.") from exc

    if not sections:
        raise LoaderError("empty_document", "The Word document contains no text.")
    return LoadedDocument(
        title=pick_title(
            core_title, title_style_text, first_heading, title_from_filename(filename)
        ),
        sections=sections,
        mime_type=MIME_TYPE,
        metadata=_metadata(document),
    )


def _style_name(paragraph: Any) -> str:
    style = paragraph.style
    return (style.name or "") if style is not None else ""


def _heading_level(paragraph: Any) -> int | None:
    """Heading level from the style or any style it is based on (custom heading styles)."""
    style = paragraph.style
    for _ in range(10):  # style inheritance chains are short; bound it against cycles
        if style is None:
            return None
        match = _HEADING_STYLE.match(style.name or "")
        if match:
            return int(match.group(1))
        style = style.base_style
    return None


def _table_lines(table: Any) -> list[str]:
    """One line per row, cells joined by " | "; merged cells repeat in python-docx, so dedupe."""
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a horizontally merged cell is yielded once per grid column
                continue
            previous = cell._tc
            cells.append(clean_inline(cell.text))
        if any(cells):
            lines.append(" | ".join(cells))
    return lines


def _metadata(document: Any) -> dict[str, Any]:
    props = document.core_properties
    metadata: dict[str, Any] = {}
    if props.author:
        metadata["author"] = props.author
    if props.language:
        metadata["language"] = props.language
    return metadata
