"""SSRF defences of fetch_url, against a real HTTP server on 127.0.0.1 (no outside network).

Public-looking hosts are simulated with an injected resolver; where a test needs a "public"
address to answer, an httpx.MockTransport plays the server so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from chatwell.ingestion.fetch import FetchError, blocked_reason, check_url, fetch_url

from .helpers import Route, SiteServer


def resolver_for(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


async def _refused(url: str, code: str, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch_url(url, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code, caught.value
    return caught.value


# --- address rules (pure) ---------------------------------------------------------------------

BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.10.10",
    "100.64.0.1",
    "100.127.255.254",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::a00:1",
    "2002:7f00:1::1",
    "2001:db8::1",
]
METADATA = [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "168.63.129.16",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_private_and_special_addresses_are_blocked(address: str) -> None:
    assert blocked_reason(address) is not None
    if address not in METADATA:
        assert blocked_reason(address, allow_private=True) is None


@pytest.mark.parametrize("address", METADATA)
def test_cloud_metadata_is_blocked_even_with_allow_private(address: str) -> None:
    assert "metadata" in (blocked_reason(address) or "")
    assert "metadata" in (blocked_reason(address, allow_private=True) or "")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(address) is None


@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "METADATA.google.internal.", "metadata.goog"]
)
async def test_metadata_hostnames_are_refused_before_resolving(host: str) -> None:
    calls: list[str] = []
    with pytest.raises(FetchError) as caught:
        await check_url(
            f"http://{host}/computeMetadata/v1/",
            allow_private=True,
            resolver=resolver_for({}, calls),
        )
    assert caught.value.code == "blocked_address" and calls == []


async def test_one_bad_answer_refuses_the_host() -> None:
    resolve = resolver_for({"mixed.test": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(FetchError) as caught:
        await check_url("https://mixed.test/", resolver=resolve)
    assert caught.value.code == "blocked_address" and caught.value.reason == "a private address"
    # Regression (issue 19 item 11): the message named what the internal host resolves to.
    assert caught.value.message == "address not allowed" and "10.0.0.1" not in str(caught.value)


@pytest.mark.parametrize(
    "answers", [["10.1.2.3"], ["127.0.0.1"], ["169.254.169.254"], ["100.64.0.7"], ["::1"]]
)
async def test_a_refusal_says_address_not_allowed_only(answers: list[str]) -> None:
    resolve = resolver_for({"db.corp.internal": answers})
    with pytest.raises(FetchError) as caught:
        await check_url("http://db.corp.internal:5432/", resolver=resolve)
    assert caught.value.code == "blocked_address"
    assert caught.value.message == "address not allowed" == str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://example.com/x",
        "data:text/html,hi",
        "dict://x:11211/",
    ],
)
async def test_non_http_schemes_are_refused(url: str) -> None:
    await _refused(url, "unsupported_scheme", allow_private=True)


async def test_unresolvable_host_fails_cleanly() -> None:
    await _refused("http://nowhere.test/", "fetch_failed", resolver=resolver_for({}))


# --- against a real server on loopback --------------------------------------------------------


async def test_loopback_is_refused_by_default_and_nothing_is_sent(site: SiteServer) -> None:
    site.page("/", "<html>internal admin</html>")
    await _refused(site.url("/"), "blocked_address")
    await _refused(f"http://localhost:{site.port}/", "blocked_address")
    assert site.requests == []


async def test_loopback_is_allowed_with_allow_private(site: SiteServer) -> None:
    site.page("/", "<html>intranet docs</html>")
    page = await fetch_url(site.url("/"), allow_private=True)
    assert (page.status, page.media_type, page.body) == (
        200,
        "text/html",
        b"<html>intranet docs</html>",
    )
    assert page.final_url == site.url("/")


async def test_name_resolving_to_loopback_is_refused(site: SiteServer) -> None:
    site.page("/", "<html>secret</html>")
    resolve = resolver_for({"innocent.test": ["127.0.0.1"]})
    await _refused(f"http://innocent.test:{site.port}/", "blocked_address", resolver=resolve)
    assert site.requests == []


async def test_connection_is_pinned_to_the_checked_address(site: SiteServer) -> None:
    """The name resolves once; the request goes to that IP with the name in the Host header.

    ``docs.intranet.test`` does not exist in real DNS, so reaching the server proves no second
    lookup happened between the check and the connection.
    """
    site.page("/guide", "<html>guide</html>")
    calls: list[str] = []
    resolve = resolver_for({"docs.intranet.test": ["127.0.0.1"]}, calls)
    page = await fetch_url(
        f"http://docs.intranet.test:{site.port}/guide", allow_private=True, resolver=resolve
    )
    assert page.body == b"<html>guide</html>"
    assert page.final_url == f"http://docs.intranet.test:{site.port}/guide"
    assert calls == ["docs.intranet.test"]
    assert [(seen.path, seen.host) for seen in site.requests] == [
        ("/guide", f"docs.intranet.test:{site.port}")
    ]


async def test_every_redirect_hop_is_checked(site: SiteServer) -> None:
    site.routes["/go"] = Route(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    site.routes["/go-name"] = Route(301, headers={"Location": "http://metadata.google.internal/"})
    err = await _refused(site.url("/go"), "blocked_address", allow_private=True)
    assert err.reason == "a cloud metadata endpoint" and "169.254" not in err.message
    await _refused(site.url("/go-name"), "blocked_address", allow_private=True)
    assert site.paths() == ["/go", "/go-name"]


async def test_relative_redirects_are_followed(site: SiteServer) -> None:
    site.routes["/old"] = Route(308, headers={"Location": "/new?x=1"})
    site.page("/new?x=1", "<html>moved</html>")
    page = await fetch_url(site.url("/old"), allow_private=True)
    assert (page.url, page.final_url, page.body) == (
        site.url("/old"),
        site.url("/new?x=1"),
        b"<html>moved</html>",
    )


async def test_redirect_loop_stops(site: SiteServer) -> None:
    site.routes["/loop"] = Route(302, headers={"Location": "/loop"})
    await _refused(site.url("/loop"), "too_many_redirects", allow_private=True, max_redirects=3)
    assert site.paths() == ["/loop"] * 4


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
async def test_oversized_body_is_cut(site: SiteServer, send_length: bool) -> None:
    site.routes["/big"] = Route(body=b"a" * 200_000, send_length=send_length)
    await _refused(site.url("/big"), "response_too_large", allow_private=True, max_bytes=10_000)
    site.routes["/small"] = Route(body=b"a" * 10_000, send_length=send_length)
    assert (
        len((await fetch_url(site.url("/small"), allow_private=True, max_bytes=10_000)).body)
        == 10_000
    )


async def test_http_errors_carry_the_status(site: SiteServer) -> None:
    err = await _refused(site.url("/missing"), "http_error", allow_private=True)
    assert err.status == 404


async def test_total_timeout(site: SiteServer) -> None:
    site.routes["/slow"] = Route(body=b"late", delay=5)
    started = asyncio.get_running_loop().time()
    await _refused(site.url("/slow"), "fetch_timeout", allow_private=True, timeout=0.3)
    assert asyncio.get_running_loop().time() - started < 3


# --- "public" hosts, played by a mock transport --------------------------------------------------


async def test_public_host_redirecting_to_a_private_name_is_refused_at_the_second_hop() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://internal.test/admin"})

    resolve = resolver_for({"public.test": ["93.184.216.34"], "internal.test": ["10.0.0.7"]})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        err = await _refused(
            "http://public.test/start", "blocked_address", client=client, resolver=resolve
        )
    assert err.reason == "a private address" and "10.0.0.7" not in err.message
    assert [(r.url.host, r.headers["host"]) for r in seen] == [("93.184.216.34", "public.test")]


async def test_https_keeps_the_name_for_sni_and_host_while_connecting_to_the_ip() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, headers={"Content-Type": "text/html"}, content=b"<html>ok</html>"
        )

    resolve = resolver_for({"shop.example.test": ["2606:2800:220:1::1", "93.184.216.34"]})
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), follow_redirects=True
    ) as client:
        page = await fetch_url("https://shop.example.test/faq#top", client=client, resolver=resolve)
    request = seen[0]
    assert str(request.url) == "https://93.184.216.34/faq"  # IPv4 first, fragment never sent
    assert request.headers["host"] == "shop.example.test"
    assert request.extensions["sni_hostname"] == "shop.example.test"
    assert page.final_url == "https://shop.example.test/faq"


# --- TLS: connect to the checked IP, verify the certificate against the name --------------------


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[SiteServer, ssl.SSLContext]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=secure.test",
            "-addext",
            "subjectAltName=DNS:secure.test",
        ],
        check=True,
        capture_output=True,
    )
    server = SiteServer()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server.httpd.socket = server_context.wrap_socket(server.httpd.socket, server_side=True)
    server.start()
    try:
        yield server, ssl.create_default_context(cafile=str(cert))
    finally:
        server.stop()


async def test_tls_certificate_is_checked_against_the_name_not_the_ip(
    tls_site: tuple[SiteServer, ssl.SSLContext],
) -> None:
    site, trust = tls_site
    site.page("/", "<html>over tls</html>")
    resolve = resolver_for({"secure.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]})
    async with httpx.AsyncClient(verify=trust) as client:
        page = await fetch_url(
            f"https://secure.test:{site.port}/", client=client, allow_private=True, resolver=resolve
        )
        assert page.body == b"<html>over tls</html>"
        # Same IP, but the certificate is not for this name: the handshake must fail.
        err = await _refused(
            f"https://impostor.test:{site.port}/",
            "fetch_failed",
            client=client,
            allow_private=True,
            resolver=resolve,
        )
        assert "certificate" in err.message.lower()
    assert [seen.host for seen in site.requests] == [f"secure.test:{site.port}"]
