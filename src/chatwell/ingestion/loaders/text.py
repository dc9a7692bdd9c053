"""Plain-text loader: paragraphs separated by blank lines, one untitled section.

The fallback for any UTF-8 (or legacy single-byte) text that no other loader claims.
"""

from __future__ import annotations

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.ingestion.loaders._text import (
    clean_block,
    decode_text,
    pick_title,
    title_from_filename,
    title_from_text,
)

MIME_TYPE = "text/plain"
EXTENSIONS = (".txt", ".text", ".log", ".rst")
MIME_TYPES = ("text/plain",)


def load(data: bytes, filename: str | None) -> LoadedDocument:
    text = clean_block(decode_text(data))
    if not text:
        raise LoaderError("empty_document", "The text file is empty.")
    return LoadedDocument(
        title=pick_title(title_from_filename(filename), title_from_text(text)),
        sections=[Section(text)],
        mime_type=MIME_TYPE,
    )
