"""Text helpers shared by the loaders: decoding bytes, tidying whitespace, building sections.

Internal to ``chatwell.ingestion.loaders``; no I/O and no format-specific parsing here.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from contextvars import ContextVar
from pathlib import PurePosixPath

from chatwell.domain.documents import LoaderError, Section


def too_much_text(chars: int, limit: int) -> LoaderError:
    return LoaderError(
        "source_too_large",
        f"The document holds more than {limit:,} characters of text "
        f"({chars:,} so far; CHATWELL_INGESTION_MAX_TEXT_CHARS).",
    )


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_WINDOW = 8192
# C0 controls other than tab, newline, form feed and carriage return: rare in real text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_MANY_NEWLINES = re.compile(r"\n{3,}")
# Most text the current extraction accepts (``chatwell.ingestion.extraction`` sets it): a loader
# that can count its text while streaming (DOCX) refuses a larger file before parsing it whole.
text_budget: ContextVar[int | None] = ContextVar("text_budget", default=None)


def bom_encoding(data: bytes) -> str | None:
    """The encoding announced by a byte-order mark, if any."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def looks_binary(data: bytes) -> bool:
    """True when the start of ``data`` cannot be text (NUL bytes without a UTF-16/32 BOM)."""
    return bom_encoding(data) is None and b"\x00" in data[:_SNIFF_WINDOW]


def decode_text(data: bytes) -> str:
    """Decode text bytes: BOM if present, else strict UTF-8, else Windows-1252 if it reads as text.

    Raises ``LoaderError("unsupported_type")`` for content that is not text.
    """
    encoding = bom_encoding(data)
    if encoding is not None:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise LoaderError("malformed_file", f"The file is not valid {encoding} text.") from exc
    if looks_binary(data):
        raise LoaderError("unsupported_type", "The file is binary, not a supported document type.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Legacy single-byte text is common (old exports); random binary is full of control bytes.
    text = data.decode("cp1252", errors="replace")
    sample = text[:_SNIFF_WINDOW]
    if len(_CONTROL.findall(sample)) > len(sample) // 100:
        raise LoaderError("unsupported_type", "The file is not UTF-8 text or a supported document.")
    return text


def clean_inline(text: str) -> str:
    """One line of text: zero-width characters dropped, whitespace runs collapsed to one space."""
    text = _ZERO_WIDTH.sub("", text)
    return " ".join(text.split())


def clean_block(text: str) -> str:
    """Multi-line text: lines tidied, at most one blank line between paragraphs."""
    lines = [_SPACES.sub(" ", line).strip() for line in _normalise(text).split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def clean_preformatted(text: str) -> str:
    """Code or preformatted text: indentation kept, blank lines dropped (one paragraph)."""
    lines = [line.rstrip() for line in _normalise(text).expandtabs(4).split("\n")]
    return "\n".join(line for line in lines if line.strip())


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", _ZERO_WIDTH.sub("", text))


def title_from_filename(filename: str | None) -> str | None:
    """A readable title from a file name: ``"pricing_faq-2024.pdf"`` -> ``"pricing faq 2024"``."""
    if not filename:
        return None
    stem = PurePosixPath(filename.replace("\\", "/")).name
    if "." in stem.strip("."):
        stem = stem.rsplit(".", 1)[0]
    title = clean_inline(re.sub(r"[_\-]+", " ", stem))
    return title or None


def title_from_text(text: str, limit: int = 80) -> str | None:
    """The first non-empty line of ``text``, cut to ``limit`` characters on a word boundary."""
    for line in text.split("\n"):
        line = clean_inline(line)
        if line:
            if len(line) <= limit:
                return line
            return line[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return None


# Titles that tools write into a file's metadata by default; they name nothing (a PDF "untitled"
# was listed and cited as "untitled (page 1)"): the next candidate, e.g. the file name, wins.
PLACEHOLDER_TITLE = re.compile(
    r"^(untitled|untitled document|document|title|no title|none|null|unknown|anonymous|new document|"
    r"microsoft word - .*|presentation|slide \d+|page \d+)([\s_-]*\d+)?$",
    re.IGNORECASE,
)


def pick_title(*candidates: str | None) -> str:
    """The first candidate that names something (not blank, not a placeholder such as
    "untitled"), or ``"Untitled"``."""
    for candidate in candidates:
        if (
            candidate
            and candidate.strip()
            and not PLACEHOLDER_TITLE.fullmatch(clean_inline(candidate))
        ):
            return clean_inline(candidate)
    return "Untitled"


class SectionBuilder:
    """Collects headings and paragraphs in reading order and cuts them into Sections.

    A heading of level N closes the current section and replaces every open heading of level
    N or deeper, so ``heading_path`` always reads outermost-first.
    """

    def __init__(self, page: int | None = None):
        self._page = page
        self._stack: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []
        self._sections: list[Section] = []

    @property
    def headings(self) -> list[str]:
        return [text for _, text in self._stack]

    def heading(self, level: int, text: str) -> None:
        text = clean_inline(text)
        if not text:
            return
        self.flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def paragraph(self, text: str, *, preformatted: bool = False) -> None:
        text = clean_preformatted(text) if preformatted else clean_inline(text)
        if text:
            self._paragraphs.append(text)

    def lines(self, lines: list[str]) -> None:
        """A list or table: one paragraph whose items stay on their own lines."""
        kept = [line for line in (clean_inline(line) for line in lines) if line]
        if kept:
            self._paragraphs.append("\n".join(kept))

    def flush(self) -> None:
        if self._paragraphs:
            path = tuple(self.headings)
            self._sections.append(Section("\n\n".join(self._paragraphs), path, self._page))
            self._paragraphs = []

    def build(self) -> list[Section]:
        self.flush()
        return list(self._sections)
