"""PDF loader: the text layer of each page (via pypdf) as one Section per 1-based page.

No OCR: a scanned PDF without a text layer is reported as ``empty_document``. Password-protected
files are refused (``encrypted_pdf``); files that merely carry an owner password (printing or
copy restrictions, empty user password) open normally, as any PDF viewer would.
"""

from __future__ import annotations

import io
import itertools
import re

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.ingestion.loaders._text import clean_block, pick_title, title_from_filename

MIME_TYPE = "application/pdf"

_HYPHEN_BREAK = re.compile(r"(\w)-\n(?=[a-z])")
_LIST_START = re.compile(r"^(?:[-•*–▪◦]|\d{1,3}[.)]|[a-z][.)])\s")


def sniff(data: bytes) -> bool:
    # The PDF spec allows junk before the header; readers accept it within the first 1 KiB.
    return b"%PDF-" in data[:1024]


def load(data: bytes, filename: str | None) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises many unrelated types on broken input
        raise LoaderError("malformed_file", "The PDF file is damaged and cannot be read.") from exc

    if encrypted:
        try:
            opened = reader.decrypt("")
        except (DependencyError, NotImplementedError, PdfReadError) as exc:
            raise LoaderError("encrypted_pdf", "The PDF is encrypted and cannot be read.") from exc
        if not opened:
            raise LoaderError(
                "encrypted_pdf", "The PDF is password-protected; upload an unprotected copy."
            )

    sections: list[Section] = []
    try:
        page_count = len(reader.pages)
        for number, page in enumerate(reader.pages, start=1):
            text = _tidy_page(page.extract_text() or "")
            if text:
                sections.append(Section(text, (), number))
        title = _metadata_title(reader)
    except FileNotDecryptedError as exc:
        raise LoaderError("encrypted_pdf", "The PDF is encrypted and cannot be read.") from exc
    except Exception as exc:
        raise LoaderError("malformed_file", "The PDF file is damaged and cannot be read.") from exc

    if not sections:
        raise LoaderError(
            "empty_document",
            "The PDF has no extractable text (it may be a scan; OCR is not supported).",
        )
    first_line = sections[0].text.split("\n", 1)[0]
    return LoadedDocument(
        title=pick_title(title, title_from_filename(filename), first_line[:80]),
        sections=sections,
        mime_type=MIME_TYPE,
        metadata={"page_count": page_count, "encrypted": encrypted},
    )


def _metadata_title(reader: object) -> str | None:
    try:
        info = reader.metadata  # type: ignore[attr-defined]
        title = info.title if info is not None else None
    except Exception:  # a broken info dictionary should not lose the whole document
        return None
    return str(title) if title else None


def _tidy_page(raw: str) -> str:
    """Rejoin hard-wrapped lines into paragraphs; keep list items and short lines apart."""
    text = _HYPHEN_BREAK.sub(r"\1", clean_block(raw))
    paragraphs: list[str] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if not lines:
            continue
        width = max(len(line) for line in lines)
        current = lines[0]
        for previous, line in itertools.pairwise(lines):
            # A short line ending a sentence, or a bullet/numbered line, starts a new paragraph.
            ends_paragraph = previous.endswith((".", "!", "?", ":")) and len(previous) < 0.7 * width
            if ends_paragraph or _LIST_START.match(line):
                paragraphs.append(current)
                current = line
            else:
                current = f"{current} {line}"
        paragraphs.append(current)
    return "\n\n".join(paragraphs)
