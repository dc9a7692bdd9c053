"""Document loaders and their registry: bytes in, :class:`LoadedDocument` out.

The type is sniffed from the content, never trusted from the name: binary formats are claimed by
their ``sniff`` (magic bytes), then text is decoded and offered to ``sniff_text`` (HTML markers);
only then do the file extension or declared MIME type pick between text kinds (plain, Markdown,
CSV). Anything else is refused with ``unsupported_type``. Built-in loaders register through the
same :func:`register_loader` a plugin would use. Loaders do no I/O beyond parsing the given bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from chatwell.domain.documents import LoadedDocument, LoaderError
from chatwell.ingestion.loaders import csv as _csv
from chatwell.ingestion.loaders import docx as _docx
from chatwell.ingestion.loaders import html as _html
from chatwell.ingestion.loaders import markdown as _markdown
from chatwell.ingestion.loaders import pdf as _pdf
from chatwell.ingestion.loaders import text as _text
from chatwell.ingestion.loaders._text import decode_text, looks_binary

__all__ = [
    "BUILTIN_LOADERS",
    "DEFAULT_MAX_BYTES",
    "LoaderFn",
    "LoaderSpec",
    "detect_loader",
    "load_document",
    "register_loader",
    "registered_loaders",
    "unregister_loader",
]

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
FALLBACK_LOADER = "text"
# MIME types that say nothing about the format; they never pick a loader.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "text/plain"})
_TEXT_SNIFF_CHARS = 4096

LoaderFn = Callable[[bytes, str | None], LoadedDocument]
"""A loader: ``(data, filename) -> LoadedDocument``; raises LoaderError on bad input."""


@dataclass(frozen=True, slots=True)
class LoaderSpec:
    """A registered document type.

    ``sniff`` claims binary content by its bytes; ``sniff_text`` claims decoded text by its
    opening. A spec with neither is a text kind, chosen only by ``extensions``/``mime_types``.
    """

    name: str
    mime_type: str
    load: LoaderFn
    sniff: Callable[[bytes], bool] | None = None
    sniff_text: Callable[[str], bool] | None = None
    extensions: tuple[str, ...] = ()
    mime_types: tuple[str, ...] = ()


_registry: dict[str, LoaderSpec] = {}


def register_loader(
    name: str,
    load: LoaderFn,
    *,
    mime_type: str,
    sniff: Callable[[bytes], bool] | None = None,
    sniff_text: Callable[[str], bool] | None = None,
    extensions: tuple[str, ...] = (),
    mime_types: tuple[str, ...] = (),
    replace_existing: bool = False,
) -> LoaderSpec:
    """Register a loader; sniffers run in registration order. Returns the stored spec."""
    if name in _registry and not replace_existing:
        raise ValueError(f"a loader named {name!r} is already registered")
    spec = LoaderSpec(
        name=name,
        mime_type=mime_type,
        load=load,
        sniff=sniff,
        sniff_text=sniff_text,
        extensions=tuple("." + ext.lower().lstrip(".") for ext in extensions),
        mime_types=tuple(m.lower() for m in (mime_types or (mime_type,))),
    )
    _registry[name] = spec
    return spec


def unregister_loader(name: str) -> None:
    """Remove a loader (plugins and tests); unknown names are ignored."""
    _registry.pop(name, None)


def registered_loaders() -> tuple[LoaderSpec, ...]:
    return tuple(_registry.values())


def detect_loader(
    data: bytes, *, filename: str | None = None, declared_type: str | None = None
) -> LoaderSpec:
    """The loader for ``data``, judged by content first; raises LoaderError(unsupported_type)."""
    specs = registered_loaders()
    for spec in specs:
        if spec.sniff is not None and spec.sniff(data):
            return spec
    if looks_binary(data) or data.startswith(b"PK\x03\x04"):
        raise LoaderError("unsupported_type", _unsupported_message(filename))
    head = decode_text(data)[:_TEXT_SNIFF_CHARS]  # raises unsupported_type for non-text bytes
    for spec in specs:
        if spec.sniff_text is not None and spec.sniff_text(head):
            return spec
    text_kinds = [spec for spec in specs if spec.sniff is None]
    extension = _extension(filename)
    if extension:
        for spec in text_kinds:
            if extension in spec.extensions:
                return spec
    media_type = _media_type(declared_type)
    if media_type not in _GENERIC_TYPES:
        for spec in text_kinds:
            if media_type in spec.mime_types:
                return spec
    fallback = _registry.get(FALLBACK_LOADER)
    if fallback is None:
        raise LoaderError("unsupported_type", _unsupported_message(filename))
    return fallback


def load_document(
    data: bytes,
    *,
    filename: str | None = None,
    declared_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    url: str | None = None,
) -> LoadedDocument:
    """Sniff, check size, load. Every failure is a LoaderError with a stable code.

    ``declared_type`` (an upload's or response's Content-Type) and ``filename`` only choose
    between text kinds; they never make the loader trust binary content.
    """
    if len(data) > max_bytes:
        raise LoaderError(
            "file_too_large", f"The file is {len(data)} bytes; the limit is {max_bytes} bytes."
        )
    if not data.strip():
        raise LoaderError("empty_document", "The file is empty.")
    spec = detect_loader(data, filename=filename, declared_type=declared_type)
    try:
        document = spec.load(data, filename)
    except LoaderError:
        raise
    except Exception as exc:  # a loader bug or parser crash must not escape as a random type
        raise LoaderError("malformed_file", f"The {spec.name} file could not be read.") from exc
    if not any(section.text.strip() for section in document.sections):
        raise LoaderError("empty_document", "The document contains no readable text.")
    changes: dict[str, object] = {}
    if url is not None:
        changes["url"] = url
    if not document.mime_type:
        changes["mime_type"] = spec.mime_type
    document.metadata.setdefault("loader", spec.name)
    return replace(document, **changes) if changes else document


def _extension(filename: str | None) -> str:
    if not filename:
        return ""
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def _media_type(declared_type: str | None) -> str:
    return (declared_type or "").split(";", 1)[0].strip().lower()


def _unsupported_message(filename: str | None) -> str:
    what = f"{filename!r} is" if filename else "The file is"
    return f"{what} not a supported type (PDF, DOCX, HTML, Markdown, CSV or plain text)."


def _register_builtins() -> None:
    register_loader("pdf", _pdf.load, mime_type=_pdf.MIME_TYPE, sniff=_pdf.sniff)
    register_loader("docx", _docx.load, mime_type=_docx.MIME_TYPE, sniff=_docx.sniff)
    register_loader(
        "html",
        _html.load,
        mime_type=_html.MIME_TYPE,
        sniff_text=_html.sniff_text,
        extensions=(".html", ".htm", ".xhtml"),
        mime_types=("text/html", "application/xhtml+xml"),
    )
    register_loader(
        "markdown",
        _markdown.load,
        mime_type=_markdown.MIME_TYPE,
        extensions=_markdown.EXTENSIONS,
        mime_types=_markdown.MIME_TYPES,
    )
    register_loader(
        "csv",
        _csv.load,
        mime_type=_csv.MIME_TYPE,
        extensions=_csv.EXTENSIONS,
        mime_types=_csv.MIME_TYPES,
    )
    register_loader(
        "text",
        _text.load,
        mime_type=_text.MIME_TYPE,
        extensions=_text.EXTENSIONS,
        mime_types=_text.MIME_TYPES,
    )


_register_builtins()
# The built-in loaders by name: any process that imports this module has them (the extraction
# processes included); a loader registered at run time exists only in its own process.
BUILTIN_LOADERS: dict[str, LoaderFn] = {spec.name: spec.load for spec in registered_loaders()}
