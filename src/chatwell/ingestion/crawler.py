"""Walk one website politely and yield its HTML pages: :func:`crawl`.

Stays on the start host (``www.`` and the start page's redirect target count as the same site),
obeys robots.txt (fetched once per host, parsed with ``urllib.robotparser``, including
Crawl-delay and ``<meta name="robots">`` noindex/nofollow), seeds from the sitemap when there is
one (and then does not follow links), otherwise follows links breadth-first up to ``max_depth``.
Include / exclude path patterns (:class:`PathFilter`) keep the crawl to part of a site; a page that
could not be fetched is reported to ``on_failed`` (the crawl goes on without it).
URLs are normalised (fragments dropped) and deduplicated; non-HTML responses are skipped. All
network access goes through the injected ``fetcher`` (default :func:`fetch_url`, SSRF-safe).
This module neither parses pages into documents nor stores anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import html
import logging
import re
import time
import urllib.robotparser
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from bs4.dammit import UnicodeDammit

from chatwell.ingestion.fetch import DEFAULT_USER_AGENT, FetchedPage, FetchError, fetch_url

__all__ = [
    "CrawledPage",
    "Fetcher",
    "PathFilter",
    "crawl",
    "normalize_url",
    "parse_sitemap",
    "same_site",
]

log = logging.getLogger(__name__)

Fetcher = Callable[..., Awaitable[FetchedPage]]
"""Called as ``fetcher(url, allow_private=..., user_agent=...)``; bind the rest with partial."""

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MAX_CRAWL_DELAY = 10.0  # seconds; a larger robots.txt Crawl-delay would stall ingestion for hours
MAX_SITEMAPS = 20
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit for one uncompressed file
# Extensions that are never HTML: skipped without spending a request on them.
_SKIP_EXTENSIONS = frozenset(
    ".pdf .doc .docx .xls .xlsx .ppt .pptx .zip .gz .tgz .rar .7z .tar .png .jpg .jpeg .gif .webp "
    ".svg .ico .bmp .tif .tiff .mp3 .mp4 .m4a .wav .avi .mov .webm .ogg .css .js .json .xml .rss "
    ".atom .woff .woff2 .ttf .eot .exe .dmg .apk .iso .csv .txt".split()
)
_LOC = re.compile(r"<loc>\s*(.*?)\s*</loc>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class CrawledPage:
    url: str  # the normalised URL that was queued
    final_url: str  # where the fetch ended up after redirects
    depth: int  # 0 for the start page; sitemap entries count as depth 1
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PathFilter:
    """Which pages of a site a crawl takes, by URL path (with its query).

    A pattern is a glob (``*`` matches anything, ``/`` included) matched against the whole path,
    e.g. ``/docs/*`` or ``*.html``; a pattern with no ``*`` or ``?`` matches the paths it starts
    (``/blog`` takes ``/blog`` and ``/blog/2024/post``). No include pattern takes every path; an
    exclude pattern wins over an include one.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        if any(_path_matches(pattern, path) for pattern in self.exclude):
            return False
        return not self.include or any(_path_matches(pattern, path) for pattern in self.include)


def _path_matches(pattern: str, path: str) -> bool:
    if not any(sign in pattern for sign in "*?["):
        return path.startswith(pattern)
    return fnmatch.fnmatchcase(path, pattern)


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute http(s) URL with lowercase scheme/host, no default port, no fragment; else None."""
    try:
        joined = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(urldefrag(joined)[0])
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    path = parts.path or "/"
    if "/." in path and not path.startswith("//"):
        path = urlsplit(urljoin("http://h/", path)).path  # resolve "." and ".." segments
    return urlunsplit((scheme, host, path, parts.query, ""))


def _site_key(url: str) -> str:
    """``host[:port]`` without a leading ``www.``; default ports dropped so http/https match."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    host = host[4:] if host.startswith("www.") else host
    try:
        port = parts.port
    except ValueError:
        return host
    return f"{host}:{port}" if port and port not in (80, 443) else host


def same_site(url: str, hosts: set[str]) -> bool:
    """True when ``url``'s host and port (ignoring a leading ``www.``) are one of ``hosts``."""
    return _site_key(url) in hosts


def parse_sitemap(body: bytes) -> tuple[list[str], bool]:
    """``(<loc> URLs, is_index)`` from a sitemap or sitemap index, gzip or plain.

    A regex, not an XML parser: sitemaps are flat, and this cannot be made to expand entities.
    """
    if body[:2] == b"\x1f\x8b":
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body = decompressor.decompress(body, MAX_SITEMAP_BYTES)
        except zlib.error:
            return [], False
    text = body.decode("utf-8", errors="replace")
    locs = [html.unescape(match) for match in _LOC.findall(text)]
    return locs, "<sitemapindex" in text[:2048].lower()


class _Robots:
    """robots.txt rules per host, fetched lazily and at most once."""

    def __init__(self, fetch: Callable[[str], Awaitable[FetchedPage]], agent: str):
        self._fetch = fetch
        self._agent = agent
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._lock = asyncio.Lock()

    async def parser_for(self, url: str) -> urllib.robotparser.RobotFileParser:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        async with self._lock:
            if origin not in self._parsers:
                self._parsers[origin] = await self._load(origin)
            return self._parsers[origin]

    async def _load(self, origin: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
        try:
            page = await self._fetch(f"{origin}/robots.txt")
            lines = page.body.decode("utf-8", errors="replace").splitlines()
            parser.parse(lines)
        except FetchError as exc:
            if exc.code in {"blocked_address", "unsupported_scheme", "invalid_url"}:
                raise  # the site itself is off limits; no point pretending otherwise
            if exc.code == "http_error" and exc.status is not None and 400 <= exc.status < 500:
                parser.allow_all = True  # RFC 9309: no robots.txt means no restrictions
            else:
                parser.disallow_all = True  # RFC 9309: unreachable robots.txt means stay out
            parser.last_checked = time.time()
        return parser

    async def allowed(self, url: str) -> bool:
        return (await self.parser_for(url)).can_fetch(self._agent, url)

    async def delay(self, url: str) -> float:
        parser = await self.parser_for(url)
        value = parser.crawl_delay(self._agent)
        return min(float(value), MAX_CRAWL_DELAY) if value else 0.0

    async def sitemaps(self, url: str) -> list[str]:
        return list((await self.parser_for(url)).site_maps() or [])


async def crawl(
    start_url: str,
    *,
    max_pages: int = 50,
    max_depth: int = 3,
    concurrency: int = 4,
    allow_private: bool = False,
    fetcher: Fetcher = fetch_url,
    user_agent: str = DEFAULT_USER_AGENT,
    respect_robots: bool = True,
    use_sitemap: bool = True,
    paths: PathFilter = PathFilter(),
    on_failed: Callable[[str, FetchError], None] | None = None,
) -> AsyncIterator[CrawledPage]:
    """Yield up to ``max_pages`` HTML pages of the site at ``start_url`` (order not guaranteed).

    Raises FetchError only when the site as a whole is refused (bad scheme, blocked address);
    a page that fails to fetch is logged, reported as ``on_failed(url, error)`` and skipped.
    Pages outside ``paths`` are not fetched, except the start page, which is read for its links
    (and yielded only when ``paths`` allows it).
    """
    if max_pages < 1 or max_depth < 0 or concurrency < 1:
        raise ValueError("max_pages and concurrency must be >= 1 and max_depth >= 0")
    start = normalize_url(start_url)
    if start is None:
        raise FetchError("unsupported_scheme", f"Cannot crawl {start_url!r}: not an http(s) URL.")

    async def fetch(url: str) -> FetchedPage:
        return await fetcher(url, allow_private=allow_private, user_agent=user_agent)

    crawler = _Crawl(fetch, start, max_pages, max_depth, concurrency, user_agent, respect_robots)
    crawler.paths = paths
    crawler.on_failed = on_failed
    # aclosing: a consumer that stops early must still cancel the crawl's worker tasks.
    async with contextlib.aclosing(crawler.run(use_sitemap)) as pages:
        async for page in pages:
            yield page


class _Crawl:
    def __init__(
        self,
        fetch: Callable[[str], Awaitable[FetchedPage]],
        start: str,
        max_pages: int,
        max_depth: int,
        concurrency: int,
        user_agent: str,
        respect_robots: bool,
    ):
        self.fetch = fetch
        self.start = start
        self.max_pages = max_pages
        self.max_depth = max_depth
        self.semaphore = asyncio.Semaphore(concurrency)
        self.robots = _Robots(fetch, user_agent.split("/", 1)[0]) if respect_robots else None
        self.hosts = {_site_key(start)}
        self.seen: set[str] = set()
        # Bounds work on sites full of failing or non-HTML links, and the frontier's memory.
        self.max_attempts = max_pages * 3 + 10
        self.max_seen = max_pages * 20 + 100
        self.attempts = 0
        self.reserved = 0  # pages yielded or being fetched; never exceeds max_pages
        self.budget = asyncio.Condition()  # wakes tasks waiting for a reservation to be released
        self.follow_links = True
        self.results: asyncio.Queue[CrawledPage | None] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.outstanding = 0
        self.delay_lock = asyncio.Lock()
        self.last_request = 0.0
        self.paths = PathFilter()
        self.on_failed: Callable[[str, FetchError], None] | None = None

    async def run(self, use_sitemap: bool) -> AsyncIterator[CrawledPage]:
        if self.robots is not None:
            await self.robots.parser_for(self.start)  # raises if the whole site is refused
        sitemap_urls = await self._sitemap_urls() if use_sitemap and self.max_depth >= 1 else []
        self.follow_links = not sitemap_urls
        await self._schedule(self.start, 0)
        for url in sitemap_urls:
            await self._schedule(url, 1)
        yielded = 0
        try:
            while self.outstanding and yielded < self.max_pages:
                page = await self.results.get()
                self.outstanding -= 1
                if page is not None:
                    yielded += 1
                    yield page
        finally:
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _sitemap_urls(self) -> list[str]:
        """Page URLs from the site's sitemaps (robots.txt ``Sitemap:`` lines, else /sitemap.xml)."""
        candidates = await self.robots.sitemaps(self.start) if self.robots else []
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.start))
        listed = candidates or [f"{origin}/sitemap.xml"]
        queue = [url for url in (normalize_url(c) for c in listed) if url]
        pages: list[str] = []
        fetched = 0
        while queue and fetched < MAX_SITEMAPS and len(pages) < self.max_seen:
            sitemap = queue.pop(0)
            if not same_site(sitemap, self.hosts):
                continue
            if self.robots is not None and not await self.robots.allowed(sitemap):
                continue
            fetched += 1
            try:
                body = (await self.fetch(sitemap)).body
            except FetchError as exc:
                log.info("sitemap %s not used: %s", sitemap, exc.message)
                continue
            locs, is_index = parse_sitemap(body)
            for loc in locs:
                url = normalize_url(loc)
                if url is not None and same_site(url, self.hosts):
                    (queue if is_index else pages).append(url)
        return list(dict.fromkeys(pages))

    async def _schedule(self, url: str, depth: int) -> None:
        if url in self.seen or len(self.seen) >= self.max_seen or depth > self.max_depth:
            return
        if not same_site(url, self.hosts) or _skippable(url):
            return
        if depth > 0 and not self.paths.allows(url):
            return
        self.seen.add(url)
        if self.robots is not None and not await self.robots.allowed(url):
            log.info("robots.txt disallows %s", url)
            return
        self.outstanding += 1
        task = asyncio.create_task(self._visit(url, depth))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _visit(self, url: str, depth: int) -> None:
        page: CrawledPage | None = None
        try:
            # Reserve a page slot first: a failed fetch hands its slot to a waiting URL.
            async with self.budget:
                await self.budget.wait_for(lambda: self.reserved < self.max_pages)
                if self.attempts >= self.max_attempts:
                    return
                self.reserved += 1
                self.attempts += 1
            links: list[str] = []
            try:
                async with self.semaphore:
                    page, links = await self._fetch_page(url, depth)
            finally:
                if page is None:
                    async with self.budget:
                        self.reserved -= 1
                        self.budget.notify()
            for link in links:
                await self._schedule(link, depth + 1)
        except Exception:  # one page must never take the crawl down
            log.exception("crawling %s failed", url)
        finally:
            self.results.put_nowait(page)

    async def _fetch_page(self, url: str, depth: int) -> tuple[CrawledPage | None, list[str]]:
        await self._polite_pause(url)
        try:
            fetched = await self.fetch(url)
        except FetchError as exc:
            log.info("skipping %s: %s", url, exc.message)
            if self.on_failed is not None:
                self.on_failed(url, exc)
            return None, []
        if depth == 0:
            # The site may live where the start page redirects to (e.g. another domain).
            self.hosts.add(_site_key(fetched.final_url))
        if not _is_html(fetched) or not same_site(fetched.final_url, self.hosts):
            return None, []
        if self.robots is not None and not await self.robots.allowed(fetched.final_url):
            return None, []
        index, follow, links = _read_links(fetched)
        page = CrawledPage(
            url, fetched.final_url, depth, fetched.status, fetched.content_type, fetched.body
        )
        wanted = links if follow and self.follow_links and depth < self.max_depth else []
        taken = index and (depth > 0 or self.paths.allows(fetched.final_url))
        return (page if taken else None), wanted

    async def _polite_pause(self, url: str) -> None:
        delay = await self.robots.delay(url) if self.robots is not None else 0.0
        if not delay:
            return
        async with self.delay_lock:  # Crawl-delay spaces requests out across all workers
            wait = self.last_request + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.last_request = time.monotonic()


def _is_html(page: FetchedPage) -> bool:
    if page.media_type:
        return page.media_type in HTML_TYPES
    head = page.body[:1024].lstrip().lower()  # no Content-Type at all: judge by the opening
    return head.startswith((b"<!doctype html", b"<html"))


def _skippable(url: str) -> bool:
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return dot > path.rfind("/") and path[dot:] in _SKIP_EXTENSIONS


def _read_links(page: FetchedPage) -> tuple[bool, bool, list[str]]:
    """``(index, follow, links)`` from a page, honouring ``<meta name="robots">`` and ``<base>``."""
    markup = UnicodeDammit(page.body, is_html=True).unicode_markup or ""
    with contextlib.suppress(Exception):  # unparseable HTML: no links, still indexable
        reader = _LinkReader()
        reader.feed(markup)
        reader.close()
        robots = " ".join(reader.robots).lower()
        index = "noindex" not in robots and "none" not in robots
        follow = "nofollow" not in robots and "none" not in robots
        base = urljoin(page.final_url, reader.base) if reader.base is not None else page.final_url
        links = []
        for href in reader.hrefs:
            url = normalize_url(href, base)
            if url is not None:
                links.append(url)
        return index, follow, list(dict.fromkeys(links))
    return True, False, []


class _LinkReader(HTMLParser):
    """The tags a crawler follows, read by the tokenizer BeautifulSoup's ``html.parser`` uses,
    without building a tree (a page's links cost a quarter of the parse; the crawl reads them on
    the event loop): ``<a href>`` without ``rel=nofollow``, the first ``<base href>``, and the
    content of every ``<meta name="robots">``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None
        self.robots: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("a", "base", "meta"):
            return
        values = {name: value or "" for name, value in attrs}  # a repeated attribute: the last one
        if tag == "a":
            if "href" in values and "nofollow" not in values.get("rel", "").split():
                self.hrefs.append(values["href"])
        elif tag == "base":
            if self.base is None and "href" in values:
                self.base = values["href"]
        elif values.get("name", "").lower() == "robots":
            self.robots.append(values.get("content", ""))
