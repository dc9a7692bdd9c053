"""One SSRF-safe HTTP GET for ingesting web pages: :func:`fetch_url`.

A URL given by a user must not become a way to reach the server's own network. So, for every
hop (the first request and each redirect): only http/https; the host is resolved once and every
address it resolves to is checked (loopback, private, link-local, CGNAT, multicast, reserved,
unspecified, IPv4 embedded in IPv6, cloud metadata); the connection then goes to that checked
address (the URL host is replaced by the IP, ``Host`` and TLS SNI/certificate checks still use
the name), so a DNS answer that changes between check and connect is never used. Redirects are
followed by hand, bodies are streamed and cut at ``max_bytes``, and one deadline covers it all.

A refused address is reported as "address not allowed" and nothing more (the internal reason
stays on the exception for the server's own use).

``allow_private=True`` (for intranet sites) lifts the private-address rules but never the cloud
metadata ones. This module parses nothing and stores nothing.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httpx

__all__ = [
    "DEFAULT_USER_AGENT",
    "FETCH_ERROR_CODES",
    "FetchError",
    "FetchedPage",
    "Resolver",
    "blocked_reason",
    "check_url",
    "fetch_url",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``; injectable so tests and callers control name resolution."""

DEFAULT_USER_AGENT = "chatwell/0.1 (+self-hosted knowledge-base crawler)"
FETCH_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "invalid_url",
        "unsupported_scheme",
        "blocked_address",
        "too_many_redirects",
        "response_too_large",
        "fetch_timeout",
        "fetch_failed",
        "http_error",
    }
)
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
ADDRESS_NOT_ALLOWED: Final = "address not allowed"
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
MAX_ADDRESSES_TRIED = 3

METADATA_HOSTNAMES: Final = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public-looking address)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class FetchError(Exception):
    """A fetch refused or failed; ``code`` is one of FETCH_ERROR_CODES."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        reason: str | None = None,
    ):
        if code not in FETCH_ERROR_CODES:
            raise ValueError(f"unknown fetch error code: {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.url = url
        self.reason = (
            reason  # why an address was refused: for the server's own decisions, never shown
        )


def _not_allowed(url: httpx.URL, reason: str) -> FetchError:
    # The caller learns only that the address is refused: naming what an internal host resolves
    # to (or what kind of address it is) would map the server's network for them.
    return FetchError("blocked_address", ADDRESS_NOT_ALLOWED, url=str(url), reason=reason)

    def __repr__(self) -> str:
        return f"FetchError(code={self.code!r}, message={self.message!r})"


@dataclass(frozen=True, slots=True)
class FetchedPage:
    url: str  # as requested
    final_url: str  # after redirects, with the host name (never the pinned IP)
    status: int
    content_type: str  # the raw Content-Type header ("" if absent)
    body: bytes

    @property
    def media_type(self) -> str:
        """``"text/html"`` from ``"text/html; charset=utf-8"``."""
        return self.content_type.split(";", 1)[0].strip().lower()


def blocked_reason(address: str | IPAddress, *, allow_private: bool = False) -> str | None:
    """Why connecting to ``address`` is refused, or None if it is allowed."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "not an IP address"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata endpoint"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:  # judged by the IPv4 address it really reaches
            reason = blocked_reason(embedded, allow_private=allow_private)
            return f"{reason} (IPv4 inside IPv6)" if reason else None
    if allow_private:
        return None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved, non-public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~50 ms; one shared verifying context serves every client.
    return httpx.create_ssl_context()


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the OS resolver, without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError("invalid_url", f"Not a valid URL: {url!s:.200}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        scheme = parsed.scheme or "none"
        raise FetchError(
            "unsupported_scheme", f"Only http and https URLs can be fetched, not {scheme!r}."
        )
    if not parsed.raw_host:
        raise FetchError("invalid_url", "The URL has no host.")
    return parsed


async def check_url(
    url: str | httpx.URL, *, allow_private: bool = False, resolver: Resolver | None = None
) -> list[str]:
    """Validate ``url`` and resolve its host once; returns the checked addresses (IPv4 first).

    Raises FetchError (invalid_url, unsupported_scheme, blocked_address, fetch_failed).
    """
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if host in METADATA_HOSTNAMES:
        raise _not_allowed(parsed, "a cloud metadata endpoint")
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise _not_allowed(parsed, "the local machine")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = list(await (resolver or system_resolver)(host, port))
        except (OSError, UnicodeError) as exc:
            message = f"Could not resolve {host}: {exc}"
            raise FetchError("fetch_failed", message, url=str(parsed)) from exc
    addresses = sorted(dict.fromkeys(a.split("%", 1)[0] for a in addresses), key=lambda a: ":" in a)
    if not addresses:
        raise FetchError("fetch_failed", f"{host} did not resolve to any address.", url=str(parsed))
    for address in addresses:  # one bad answer refuses the host: we will not pick around it
        reason = blocked_reason(address, allow_private=allow_private)
        if reason:
            raise _not_allowed(parsed, reason)
    return addresses


async def fetch_url(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    allow_private: bool = False,
    max_bytes: int = 10 * 1024 * 1024,
    timeout: float = 20.0,
    max_redirects: int = 5,
    user_agent: str = DEFAULT_USER_AGENT,
    resolver: Resolver | None = None,
) -> FetchedPage:
    """GET ``url`` safely (see the module docstring). Raises FetchError on any refusal or failure.

    ``client`` may be shared across calls (its own redirect setting is overridden); without one a
    private client is made that ignores proxy environment variables. HTTP >= 400 is ``http_error``.
    """
    requested = str(_parse(url))  # scheme errors before any client is built
    owned = client is None
    if client is None:
        client = httpx.AsyncClient(
            verify=_tls_context(), trust_env=False, follow_redirects=False, timeout=timeout
        )
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(
                requested,
                client,
                allow_private,
                max_bytes,
                timeout,
                max_redirects,
                user_agent,
                resolver,
            )
    except TimeoutError as exc:
        message = f"Fetching {requested} took longer than {timeout}s."
        raise FetchError("fetch_timeout", message, url=requested) from exc
    finally:
        if owned:
            await client.aclose()


async def _fetch(
    requested: str,
    client: httpx.AsyncClient,
    allow_private: bool,
    max_bytes: int,
    timeout: float,
    max_redirects: int,
    user_agent: str,
    resolver: Resolver | None,
) -> FetchedPage:
    current = _parse(requested)
    for _hop in range(max_redirects + 1):
        addresses = await check_url(current, allow_private=allow_private, resolver=resolver)
        outcome = await _request_pinned(current, addresses, client, max_bytes, timeout, user_agent)
        if isinstance(outcome, httpx.URL):  # a redirect: the next hop is checked from scratch
            current = _parse(current.join(outcome))
            continue
        status, content_type, body = outcome
        return FetchedPage(
            url=requested,
            final_url=str(current.copy_with(fragment=None)),
            status=status,
            content_type=content_type,
            body=body,
        )
    raise FetchError("too_many_redirects", f"More than {max_redirects} redirects.", url=requested)


async def _request_pinned(
    url: httpx.URL,
    addresses: list[str],
    client: httpx.AsyncClient,
    max_bytes: int,
    timeout: float,
    user_agent: str,
) -> httpx.URL | tuple[int, str, bytes]:
    """One request to a checked address; returns the redirect target or (status, type, body)."""
    host = url.raw_host.decode("ascii")
    headers = {
        "Host": url.netloc.decode("ascii"),  # the name (and non-default port) the server expects
        "User-Agent": user_agent,
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.5",
        # Uncompressed, so max_bytes bounds memory, not just the bytes on the wire.
        "Accept-Encoding": "identity",
    }
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    last_error: Exception | None = None
    for address in addresses[:MAX_ADDRESSES_TRIED]:
        pinned = url.copy_with(host=address, fragment=None)
        try:
            async with client.stream(
                "GET",
                pinned,
                headers=headers,
                extensions=extensions,
                follow_redirects=False,
                timeout=timeout,
            ) as response:
                return await _read(url, response, max_bytes)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            last_error = exc  # try the host's next checked address
        except httpx.TimeoutException as exc:
            raise FetchError("fetch_timeout", f"Timed out fetching {url}.", url=str(url)) from exc
        except httpx.HTTPError as exc:
            raise FetchError("fetch_failed", f"Fetching {url} failed: {exc}", url=str(url)) from exc
    raise FetchError("fetch_failed", f"Could not connect to {host}: {last_error}", url=str(url))


async def _read(
    url: httpx.URL, response: httpx.Response, max_bytes: int
) -> httpx.URL | tuple[int, str, bytes]:
    status = response.status_code
    location = response.headers.get("location")
    if status in REDIRECT_STATUSES and location:
        try:
            return httpx.URL(location)
        except httpx.InvalidURL as exc:
            message = f"Bad redirect target from {url}."
            raise FetchError("fetch_failed", message, url=str(url)) from exc
    if status >= 400:
        message = f"{url} answered HTTP {status}."
        raise FetchError("http_error", message, status=status, url=str(url))
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            "response_too_large",
            f"{url} is {declared} bytes, over the {max_bytes} limit.",
            url=str(url),
        )
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(
                "response_too_large", f"{url} sent more than {max_bytes} bytes.", url=str(url)
            )
    return status, response.headers.get("content-type", ""), bytes(body)
