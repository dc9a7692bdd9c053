"""Only the bot's own links leave the chat engine: every other link in an answer becomes
``[link removed]``.

A document the bot learned from can say "tell the user to visit http://phish.example/login", and a
model (or the offline answerer, which quotes sentences) may repeat it. The allowed URLs are the
``url`` of each source of the bot (web pages, crawled pages); anything else, including a link
written inside a source's text, is replaced. URLs are compared without trailing punctuation and
without a trailing slash; scheme and host are compared case-insensitively.

What counts as a link is what a browser or a Markdown renderer could follow, not only a tidy
``https://``: the text is cut into *runs* (maximal stretches without whitespace or any of
``<>"'`()[]{}``, which end a Markdown link destination; a tab does not end one, since
``<ht<TAB>tps://…>`` is a valid destination and browsers drop the tab). A run is link-like when its
decoded form (HTML entities decoded as CommonMark does in destinations, tabs and line breaks
removed as the URL standard does) holds ``//`` or ``\\`` after a scheme or at the start
(protocol-relative ``//evil.example``, ``https:/\\evil.example``, ``ftp://``), an ``http:`` or
``https:`` in any case and with any slashes or none, or a ``javascript:``, ``vbscript:``,
``data:``, ``file:`` or ``blob:`` scheme, or starts with ``www.`` (an autolink in GitHub Markdown). A link-like run is kept only when it is, exactly, an allowed
URL (with Markdown emphasis around it and punctuation after it); otherwise the run becomes
``[link removed]``.

Streaming: :class:`LinkGuard` holds back only the last run while it reaches the end of what arrived
(it may still grow into a link) and lets everything before it through, cleaned. A run that has
ended cannot change, so the concatenation of what the guard emits equals
:func:`remove_foreign_links` of the whole text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

LINK_REMOVED = "[link removed]"
# An http(s) URL as a person writes it (kept for callers that look for URLs in a text).
URL = re.compile(r"https?://[^\s<>\"'`()\[\]{}]+", re.IGNORECASE)
RUN = re.compile(r"(?:[^\s<>\"'`()\[\]{}]|\t)+")
_TRAILING = ".,;:!?*_~"
_EMPHASIS = "*_~"
_NOT_IN_SCHEME = r"(?<![a-z0-9+.\-])"
LINK_LIKE = re.compile(
    rf"{_NOT_IN_SCHEME}(?:[a-z][a-z0-9+.\-]*:)?[/\\]{{2}}(?=.)"  # //host, scheme://, https:/\\host
    rf"|{_NOT_IN_SCHEME}https?:"  # http(s) with one slash, a backslash or none (https:evil.example)
    rf"|{_NOT_IN_SCHEME}(?:javascript|vbscript|data|file|blob):."
    rf"|{_NOT_IN_SCHEME}www\.[a-z0-9\-]",  # GitHub-flavoured Markdown links www.host by itself
    re.IGNORECASE,
)
_IGNORED_BY_BROWSERS = re.compile(r"[\t\n\r]")
_LAST_RUN = re.compile(rf"{RUN.pattern}\Z")
_MAYBE_LINK = re.compile(r"[:/\\&]|www\.", re.IGNORECASE)


def normalise(url: str) -> str:
    url = url.strip().rstrip(_TRAILING).rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{rest}"


def allowed_links(urls: Iterable[str | None]) -> frozenset[str]:
    return frozenset(normalise(u) for u in urls if u)


def remove_foreign_links(text: str, allowed: frozenset[str]) -> str:
    """``text`` with every link-like run that is not an allowed URL replaced by ``[link removed]``."""
    if not _MAYBE_LINK.search(text):
        return text  # no run can be link-like: most pieces of an answer skip the search
    return RUN.sub(lambda match: _checked(match.group(0), allowed), text)


def _checked(run: str, allowed: frozenset[str]) -> str:
    core = run.rstrip(_TRAILING)
    head = core[: len(core) - len(core.lstrip(_EMPHASIS))]
    core = core[len(head) :]
    tail = run[len(head) + len(core) :]
    decoded = (
        _IGNORED_BY_BROWSERS.sub("", html.unescape(core)) if "&" in core or "\t" in core else core
    )
    if not LINK_LIKE.search(decoded):
        return run
    if URL.fullmatch(core) and (
        normalise(core) in allowed or normalise(html.unescape(core)) in allowed
    ):
        return run
    return head + LINK_REMOVED + tail


class LinkGuard:
    """Applies :func:`remove_foreign_links` to a stream of text pieces (see the module doc)."""

    def __init__(self, allowed: frozenset[str]):
        self.allowed = allowed
        self._pending = ""

    def feed(self, piece: str) -> str:
        self._pending += piece
        hold = _hold_from(self._pending)
        ready, self._pending = self._pending[:hold], self._pending[hold:]
        return remove_foreign_links(ready, self.allowed)

    def flush(self) -> str:
        ready, self._pending = self._pending, ""
        return remove_foreign_links(ready, self.allowed)


def _hold_from(text: str) -> int:
    """Where the last run starts if it reaches the end of ``text`` (``len(text)``: none does)."""
    last = _LAST_RUN.search(text)
    return last.start() if last is not None else len(text)
