"""CSV loader: each row becomes a paragraph of "column: value" lines under the header names.

The delimiter is sniffed (comma, semicolon, tab, pipe). A header that looks like
question/answer is noted in ``metadata["qa_columns"]`` so callers may import rows as Q&A pairs;
this loader itself never creates Q&A records.
"""

from __future__ import annotations

import csv
import io
import re

from chatwell.domain.documents import LoadedDocument, LoaderError, Section
from chatwell.ingestion.loaders._text import (
    clean_inline,
    decode_text,
    pick_title,
    title_from_filename,
)

MIME_TYPE = "text/csv"
EXTENSIONS = (".csv", ".tsv")
MIME_TYPES = ("text/csv", "application/csv", "text/tab-separated-values")

_QUESTION = re.compile(r"^(q|question|questions|query|prompt|faq question)$")
_ANSWER = re.compile(r"^(a|answer|answers|response|reply|faq answer)$")


def load(data: bytes, filename: str | None) -> LoadedDocument:
    text = decode_text(data).lstrip("\ufeff")
    if not text.strip():
        raise LoaderError("empty_document", "The CSV file is empty.")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), _dialect(text, filename))
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise LoaderError("malformed_file", f"The CSV file could not be parsed: {exc}") from exc
    if len(rows) < 2:
        raise LoaderError("empty_document", "The CSV file has a header but no data rows.")
    header = [clean_inline(name) or f"column {i + 1}" for i, name in enumerate(rows[0])]
    paragraphs = []
    for row in rows[1:]:
        lines = []
        for index, value in enumerate(row):
            value = clean_inline(value)
            if value:
                name = header[index] if index < len(header) else f"column {index + 1}"
                lines.append(f"{name}: {value}")
        if lines:
            paragraphs.append("\n".join(lines))
    if not paragraphs:
        raise LoaderError("empty_document", "The CSV file has no values.")
    metadata: dict[str, object] = {"columns": header, "row_count": len(paragraphs)}
    qa = _qa_columns(header)
    if qa is not None:
        metadata["qa_columns"] = {"question": qa[0], "answer": qa[1]}
    return LoadedDocument(
        title=pick_title(title_from_filename(filename), "Table"),
        sections=[Section("\n\n".join(paragraphs))],
        mime_type=MIME_TYPE,
        metadata=metadata,
    )


def _dialect(text: str, filename: str | None) -> type[csv.Dialect] | csv.Dialect:
    if filename and filename.lower().endswith(".tsv"):
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(text[:16384], delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to tell: plain comma CSV
        return csv.excel


def _qa_columns(header: list[str]) -> tuple[str, str] | None:
    lowered = [name.lower().strip(" ?:") for name in header]
    question = next((header[i] for i, name in enumerate(lowered) if _QUESTION.match(name)), None)
    answer = next((header[i] for i, name in enumerate(lowered) if _ANSWER.match(name)), None)
    return (question, answer) if question and answer else None
