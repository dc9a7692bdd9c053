"""Map the ``[n]`` markers of an answer to citations of the passages they name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from chatwell.chat.links import remove_foreign_links
from chatwell.domain.events import Citation
from chatwell.retrieval.service import Passage

MARKER = re.compile(r"\[(\d{1,2})\]")
SNIPPET_CHARS = 240
FALLBACK_CITATIONS = 3


def citations_for(
    answer: str,
    passages: Sequence[Passage],
    *,
    include_links: bool = True,
    allowed_links: frozenset[str] | None = None,
) -> tuple[Citation, ...]:
    """Citations for the markers used in ``answer``, in order of first use. When the model used
    none, the best passages it was given are cited, since the answer was grounded in them.
    With ``allowed_links``, other URLs quoted in a snippet become ``[link removed]``."""
    used: list[int] = []
    for match in MARKER.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= len(passages) and n not in used:
            used.append(n)
    if not used:
        used = list(range(1, min(FALLBACK_CITATIONS, len(passages)) + 1))
    return tuple(_citation(n, passages[n - 1], include_links, allowed_links) for n in used)


def strip_unknown_markers(answer: str, count: int) -> str:
    """Remove markers that point past the passages (a model inventing sources)."""
    return MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= count else "", answer)


def _citation(
    n: int, passage: Passage, include_links: bool, allowed_links: frozenset[str] | None
) -> Citation:
    snippet = " ".join(passage.text.split())[:SNIPPET_CHARS]
    if allowed_links is not None:
        snippet = remove_foreign_links(snippet, allowed_links)
    return Citation(
        index=n,
        source_id=passage.source_id,
        title=passage.title,
        url=passage.url if include_links else None,
        page=passage.page,
        score=round(passage.score, 4),
        snippet=snippet,
    )


def citation_json(c: Citation) -> dict[str, Any]:
    """A citation as stored with its message and as the native API and most doors show it."""
    return {
        "index": c.index,
        "source_id": str(c.source_id),
        "title": c.title,
        "url": c.url,
        "page": c.page,
        "score": c.score,
        "snippet": c.snippet,
    }
