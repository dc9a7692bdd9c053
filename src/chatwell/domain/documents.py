"""Documents on their way to becoming chunks: what a loader yields and what the splitter drafts.

Plain dataclasses and one error type. This module does no I/O and imports nothing from the rest
of the project, so every layer (loaders, splitter, storage, API) can share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# Stable machine codes a LoaderError may carry; the API and the sources table store them as-is.
LOADER_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "unsupported_type",
        "encrypted_pdf",
        "malformed_file",
        "empty_document",
        "file_too_large",
        "zip_bomb",
        "source_too_large",  # more text, chunks or memory than the extraction limits allow
        "extraction_timeout",  # more CPU or wall-clock time than they allow
        "extraction_failed",  # the extraction process died otherwise
    }
)


class LoaderError(Exception):
    """A document could not be turned into text. ``code`` is stable; ``message`` is for humans."""

    def __init__(self, code: str, message: str):
        if code not in LOADER_ERROR_CODES:
            raise ValueError(f"unknown loader error code: {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"LoaderError(code={self.code!r}, message={self.message!r})"


@dataclass(frozen=True, slots=True)
class Section:
    """A run of body text under one heading path (outermost heading first), on one page if known.

    Paragraphs inside ``text`` are separated by blank lines; the splitter relies on that.
    """

    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None  # 1-based; None when the format has no pages


@dataclass(slots=True)
class LoadedDocument:
    """The readable content of one file or web page, in reading order."""

    title: str
    sections: list[Section]
    url: str | None = None
    mime_type: str = "text/plain"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All section text joined, for hashing or previews."""
        return "\n\n".join(section.text for section in self.sections if section.text)


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk ready to be embedded and stored; ``position`` is 0-based within its document.

    ``token_count`` counts the heading context plus ``text`` (the text that gets embedded), and
    ``content_hash`` is the sha256 hex digest of that same text, normalised.
    """

    text: str
    heading: str
    page: int | None
    position: int
    token_count: int
    content_hash: str
