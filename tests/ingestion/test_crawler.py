"""Crawler behaviour against a real site served on 127.0.0.1 (allow_private=True for loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip

import pytest

from chatwell.ingestion.crawler import CrawledPage, crawl, normalize_url, parse_sitemap
from chatwell.ingestion.fetch import FetchedPage, FetchError, fetch_url

from .helpers import Route, SiteServer, html_page


def build_site(site: SiteServer, *, robots: str = "User-agent: *\nDisallow: /private\n") -> None:
    site.routes["/robots.txt"] = Route(body=robots.encode(), content_type="text/plain")
    site.page(
        "/",
        html_page(
            "Home",
            links=(
                "/a",
                "/b",
                "/a#section",
                "a",
                "/b?x=1",
                "/private/secret",
                "/doc.pdf",
                "/data",
                "http://other-host.test/x",
                f"http://127.0.0.1:{site.port + 1}/elsewhere",
                "mailto:hi@example.com",
                "javascript:void(0)",
            ),
        ),
    )
    site.page("/a", html_page("A", links=("/a/deeper", "/")))
    site.page("/a/deeper", html_page("Deeper", links=("/a/deeper/deepest",)))
    site.page("/a/deeper/deepest", html_page("Deepest"))
    site.page("/b", html_page("B"))
    site.page("/b?x=1", html_page("B with query"))
    site.page("/private/secret", html_page("Secret"))
    site.routes["/doc.pdf"] = Route(body=b"%PDF-1.4", content_type="application/pdf")
    site.routes["/data"] = Route(
        body=b'{"html": "<a href=/b>no</a>"}', content_type="application/json"
    )


async def collect(start: str, **kwargs: object) -> list[CrawledPage]:
    kwargs.setdefault("allow_private", True)
    return [page async for page in crawl(start, **kwargs)]  # type: ignore[arg-type]


def paths(pages: list[CrawledPage], site: SiteServer) -> set[str]:
    return {page.url.removeprefix(site.origin) for page in pages}


async def test_follows_links_on_the_same_host_and_respects_robots(site: SiteServer) -> None:
    build_site(site)
    pages = await collect(site.url("/"), max_pages=50, max_depth=5)
    assert paths(pages, site) == {"/", "/a", "/b", "/b?x=1", "/a/deeper", "/a/deeper/deepest"}
    requested = site.paths()
    assert not any(path.startswith("/private") for path in requested)
    assert "/doc.pdf" not in requested  # non-HTML by extension: not even requested
    assert "/data" in requested  # non-HTML by Content-Type: fetched, not yielded
    assert len(requested) == len(set(requested))  # each URL fetched once (fragments, "a" vs "/a")
    assert all(seen.host == f"127.0.0.1:{site.port}" for seen in site.requests)
    home = next(page for page in pages if page.url == site.url("/"))
    assert home.depth == 0 and home.status == 200 and b"<title>Home</title>" in home.body


async def test_never_leaves_the_host() -> None:
    requested: list[str] = []

    async def fetcher(url: str, **_: object) -> FetchedPage:
        requested.append(url)
        if url.endswith("/robots.txt") or url.endswith("/sitemap.xml"):
            raise FetchError("http_error", "missing", status=404)
        body = html_page(
            "Page",
            links=("https://www.acme.test/about", "https://evil.test/", "https://sub.acme.test/"),
        )
        return FetchedPage(url, url, 200, "text/html", body.encode())

    pages = [page async for page in crawl("https://acme.test/", fetcher=fetcher, max_depth=3)]
    assert {page.url for page in pages} == {"https://acme.test/", "https://www.acme.test/about"}
    assert not any("evil.test" in url or "sub.acme.test" in url for url in requested)


async def test_max_depth(site: SiteServer) -> None:
    build_site(site)
    assert paths(await collect(site.url("/"), max_depth=0), site) == {"/"}
    assert paths(await collect(site.url("/"), max_depth=1), site) == {"/", "/a", "/b", "/b?x=1"}


async def test_max_pages(site: SiteServer) -> None:
    build_site(site)
    pages = await collect(site.url("/"), max_pages=2, max_depth=5, concurrency=1)
    assert len(pages) == 2
    html_fetches = [p for p in site.paths() if p not in {"/robots.txt", "/sitemap.xml"}]
    assert len(html_fetches) <= 3  # the budget stops fetching, not just yielding


async def test_stopping_early_cancels_the_workers(site: SiteServer) -> None:
    build_site(site)
    async with contextlib.aclosing(crawl(site.url("/"), allow_private=True, max_pages=50)) as pages:
        async for _page in pages:
            break
    before = len(site.requests)
    await asyncio.sleep(0.2)
    assert len(site.requests) == before


async def test_robots_disallow_all_yields_nothing(site: SiteServer) -> None:
    build_site(site, robots="User-agent: chatwell\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    assert await collect(site.url("/")) == []
    assert site.paths() == ["/robots.txt"]


async def test_robots_server_error_means_stay_out(site: SiteServer) -> None:
    build_site(site)
    site.routes["/robots.txt"] = Route(503, b"down", "text/plain")
    assert await collect(site.url("/")) == []


async def test_robots_crawl_delay_spaces_requests(site: SiteServer) -> None:
    build_site(site, robots="User-agent: *\nCrawl-delay: 1\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    pages = await collect(site.url("/"), max_pages=2, concurrency=4)
    assert len(pages) == 2
    assert loop.time() - started >= 0.9


async def test_sitemap_seeds_the_crawl_instead_of_links(site: SiteServer) -> None:
    build_site(site)
    sitemap = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{site.url("/orphan")}</loc></url>
  <url><loc>{site.url("/b?x=1&amp;y=2")}</loc></url>
  <url><loc>{site.url("/private/secret")}</loc></url>
  <url><loc>http://other-host.test/page</loc></url>
</urlset>"""
    site.routes["/sitemap.xml"] = Route(body=sitemap.encode(), content_type="application/xml")
    site.page("/orphan", html_page("Orphan", links=("/a",)))
    site.page("/b?x=1&y=2", html_page("B two"))
    pages = await collect(site.url("/"), max_depth=3)
    assert paths(pages, site) == {"/", "/orphan", "/b?x=1&y=2"}
    assert "/a" not in site.paths()  # with a sitemap, links are not followed


async def test_sitemap_index_from_robots_and_gzip(site: SiteServer) -> None:
    build_site(
        site, robots=f"User-agent: *\nDisallow: /private\nSitemap: {site.url('/maps/index.xml')}\n"
    )
    site.routes["/maps/index.xml"] = Route(
        body=f"<sitemapindex><sitemap><loc>{site.url('/maps/pages.xml.gz')}</loc></sitemap></sitemapindex>".encode(),
        content_type="application/xml",
    )
    pages_xml = f"<urlset><url><loc>{site.url('/b')}</loc></url></urlset>".encode()
    site.routes["/maps/pages.xml.gz"] = Route(
        body=gzip.compress(pages_xml), content_type="application/gzip"
    )
    pages = await collect(site.url("/"))
    assert paths(pages, site) == {"/", "/b"}
    assert "/sitemap.xml" not in site.paths()


async def test_meta_robots_noindex_and_nofollow(site: SiteServer) -> None:
    site.routes["/robots.txt"] = Route(404, b"", "text/plain")
    head = '<html><head><meta name="{}" content="{}"></head>'
    site.page("/", head.format("robots", "noindex") + '<body><a href="/x">x</a></body></html>')
    site.page("/x", head.format("ROBOTS", "nofollow") + '<body><a href="/y">y</a></body></html>')
    site.page("/y", html_page("Y"))
    assert paths(await collect(site.url("/")), site) == {"/x"}
    assert "/y" not in site.paths()


async def test_loopback_site_is_refused_without_allow_private(site: SiteServer) -> None:
    build_site(site)
    with pytest.raises(FetchError) as caught:
        await collect(site.url("/"), allow_private=False)
    assert caught.value.code == "blocked_address"
    assert site.requests == []


async def test_concurrency_is_bounded() -> None:
    in_flight = peak = 0

    async def fetcher(url: str, **_: object) -> FetchedPage:
        nonlocal in_flight, peak
        if url.endswith(("/robots.txt", "/sitemap.xml")):
            raise FetchError("http_error", "missing", status=404)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        number = int(url.rsplit("/", 1)[1] or 0)
        links = tuple(f"/{number * 10 + i}" for i in range(1, 10))
        return FetchedPage(
            url, url, 200, "text/html", html_page(f"P{number}", links=links).encode()
        )

    pages = [
        page
        async for page in crawl(
            "https://big.test/", fetcher=fetcher, max_pages=40, max_depth=3, concurrency=3
        )
    ]
    assert len(pages) == 40
    assert peak == 3


async def test_custom_fetch_options_via_partial(site: SiteServer) -> None:
    build_site(site)
    site.page("/b", html_page("B", body="x" * 5_000))
    fetcher = functools.partial(fetch_url, max_bytes=2_000)
    pages = await collect(site.url("/"), fetcher=fetcher, max_depth=1)
    assert "/b" not in paths(pages, site) and "/a" in paths(pages, site)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM:80/a/../b#frag", "http://example.com/b"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x?q=1", "https://example.com:8443/x?q=1"),
        ("mailto:someone@example.com", None),
        ("javascript:alert(1)", None),
        ("ftp://example.com/", None),
    ],
)
def test_normalize_url(raw: str, expected: str | None) -> None:
    assert normalize_url(raw) == expected


def test_parse_sitemap_never_expands_entities() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>
<urlset><url><loc>https://x.test/&b;</loc></url></urlset>"""
    assert parse_sitemap(bomb) == (["https://x.test/&b;"], False)


def test_links_are_read_the_way_a_browser_tokenises_the_page() -> None:
    from chatwell.ingestion.crawler import _read_links

    body = (
        b'<html><head><meta name="ROBOTS" content="NoFollow"><base href="/docs/"></head><body>'
        b'<a href="a.html" rel="ugc nofollow">skipped</a><a href="b.html">b</a>'
        b'<a title="x > y" href="c.html?x=1&amp;y=2#part">c</a><A HREF="D.html">d</A>'
        b'<!-- <a href="commented.html"> --><script>var s = "<a href=\'script.html\'>";</script>'
        b'<a href="b.html">again</a><a name="no-href">anchor</a>'
        b'<base href="/ignored/"><meta name="robots" content="noarchive"></body></html>'
    )
    page = FetchedPage(
        url="https://example.com/x",
        final_url="https://example.com/x",
        status=200,
        content_type="text/html",
        body=body,
    )
    index, follow, links = _read_links(page)
    assert (index, follow) == (
        True,
        False,
    )  # "NoFollow" read case-blind; the second meta adds to it
    assert links == [
        "https://example.com/docs/b.html",
        "https://example.com/docs/c.html?x=1&y=2",
        "https://example.com/docs/D.html",
    ]


def test_path_filter_globs_prefixes_and_exclusions() -> None:
    from chatwell.ingestion.crawler import PathFilter

    docs = PathFilter(include=("/docs/*", "/help"), exclude=("/docs/old", "*?page=*"))
    assert docs.allows("https://s.example/docs/install")
    assert docs.allows("https://s.example/help") and docs.allows("https://s.example/help/faq")
    assert not docs.allows("https://s.example/blog/post")
    assert not docs.allows("https://s.example/docs/old/v1")  # exclude wins
    assert not docs.allows("https://s.example/docs/list?page=2")  # the query counts
    assert PathFilter().allows("https://s.example/anything")
