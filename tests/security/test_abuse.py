"""Abuse of the chat doors: enormous histories, enormous and slow bodies, request floods.

- 10,000 history turns to ChatIQ (``history``, at most 100) and to the OpenAI door (``messages``,
  at most ``MAX_MESSAGES`` = 200) are refused with a 400 in the door's shape, and the server answers
  the next normal request at once; a history inside the bounds is trimmed to the engine's
  ``MAX_CLIENT_HISTORY`` without error.
- A 10 MB body gets 413: a declared ``Content-Length`` is refused before a byte of the body is sent
  (raw socket to a live uvicorn); a chunked one is cut off just past the 1 MiB limit, not buffered.
- A slow body (a few bytes every 0.5 s over a raw socket) does not block other clients. Neither
  uvicorn nor chatwell times a slow body out (the connection stays open while bytes trickle in):
  documented in SECURITY.md, left to the reverse proxy.
- 200 concurrent public chat requests from one client IP (``X-Forwarded-For`` through a live uvicorn
  trusting the proxy header) against ``15/minute`` admit exactly 15; another IP is unaffected.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.api.openai.routes import MAX_MESSAGES
from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app, make_bot

GENEROUS = "100000/minute"
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(api_rate_limits=GENEROUS, public_rate_limits=GENEROUS)


def turns(n: int, content: str = "hi") -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{content} {i}"}
        for i in range(n)
    ]


async def test_ten_thousand_history_turns_are_refused_and_the_server_stays_responsive(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    history = turns(10_000)
    started = time.monotonic()
    chatiq = await client.post(
        "/api/chat",
        json={"bot_slug": bot["slug"], "message": "hello", "stream": False, "history": history},
    )
    assert chatiq.status_code == 400, chatiq.text
    assert "history" in chatiq.text
    openai = await client.post(
        "/v1/chat/completions",
        json={"model": bot["slug"], "messages": [*history, {"role": "user", "content": "hello"}]},
    )
    assert openai.status_code == 400, openai.text
    assert openai.json()["error"]["type"] == "invalid_request_error" and "messages" in openai.text
    assert time.monotonic() - started < 10
    # Within the bounds: answered, the history trimmed by the engine, nothing stored from it.
    fits = await client.post(
        "/v1/chat/completions",
        json={
            "model": bot["slug"],
            "messages": [
                *turns(MAX_MESSAGES - 1, "x" * 2000),
                {"role": "user", "content": "hello"},
            ],
        },
    )
    assert fits.status_code == 200, fits.text
    normal = await client.post(
        "/api/chat",
        json={"bot_slug": bot["slug"], "message": "hello", "stream": False, "history": turns(100)},
    )
    assert normal.status_code == 200, normal.text


class Counting:
    """Counts the request body bytes the app pulled from the server (what it could buffer)."""

    def __init__(self, app: Any):
        self.app = app
        self.received = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


def _live(live_server: Any, tmp_path: Path, app: Any = None, **extra: Any) -> tuple[str, int]:
    settings = Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY, **extra)
    base = live_server.start(
        app or build_app(settings, announce=lambda _: None),
        proxy_headers=True,
        forwarded_allow_ips="*",
    )
    return base, int(base.rsplit(":", 1)[1])


def _raw(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head)
    return sock


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_ten_megabyte_body_gets_413_before_it_is_sent_or_buffered(
    live_server: Any, tmp_path: Path
) -> None:
    counting = Counting(
        build_app(Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY), announce=lambda _: None)
    )
    base, port = _live(live_server, tmp_path, counting)
    # Declared: refused from the headers alone; not one byte of the body was sent.
    sock = _raw(
        port,
        (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {TEN_MB}\r\n\r\n"
        ).encode(),
    )
    try:
        assert _read_status(sock) == 413
    finally:
        sock.close()
    assert counting.received == 0
    # Chunked (no length): cut off just past the limit; the app never pulls the rest (what the
    # client manages to write meanwhile lands in socket buffers and is dropped with the connection).
    sent = 0

    def body() -> Any:
        nonlocal sent
        piece = b"[" + b" " * (64 * 1024 - 1)
        while sent < TEN_MB:
            sent += len(piece)
            yield piece

    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ) as http:
        try:
            response = http.post(
                "/v1/chat/completions", content=body(), headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 413, response.text
        except (httpx.RemoteProtocolError, httpx.WriteError):
            pass  # the server answered 413 and closed while we were still writing
        assert counting.received <= 2 * 1_048_576, counting.received  # the 1 MiB limit + one read
        assert http.get("/healthz").status_code == 200


def test_a_slow_body_does_not_block_other_clients(live_server: Any, tmp_path: Path) -> None:
    base, port = _live(live_server, tmp_path)
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5
    ) as http:
        bot = http.post("/v1/bots", json={"name": "Slow"}).json()
        body = ('{"message": "hello there, slowly"' + " " * 40 + "}").encode()
        slow = _raw(
            port,
            (
                f"POST /v1/bots/{bot['id']}/chat HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode(),
        )
        try:
            answered = []
            for i in range(8):  # 4 seconds of trickling, 3 bytes at a time
                slow.sendall(body[i * 3 : (i + 1) * 3])
                started = time.monotonic()
                assert http.get("/healthz").status_code == 200
                assert http.get(f"/v1/bots/{bot['id']}").status_code == 200
                answered.append(time.monotonic() - started)
                time.sleep(0.5)
            assert max(answered) < 2, answered
            # The slow client finishes and is served too.
            slow.sendall(body[24:])
            assert _read_status(slow) == 200, slow.recv(4096)
        finally:
            slow.close()


def test_a_flood_from_one_ip_admits_exactly_the_limit_and_spares_other_ips(
    live_server: Any, tmp_path: Path
) -> None:
    base, _ = _live(live_server, tmp_path, public_rate_limits="15/minute")
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    ) as http:
        bot = http.post("/v1/bots", json={"name": "Public", "public": True}).json()

    async def flood() -> tuple[list[int], list[int]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as visitor:

            async def chat(ip: str, n: int) -> int:
                response = await visitor.post(
                    "/v1/public/chat/stream",
                    headers={"X-Forwarded-For": ip},
                    json={"bot_id": bot["id"], "message": "hello", "session_id": f"s-{ip}-{n}"},
                )
                return response.status_code

            attacker = await asyncio.gather(*(chat("203.0.113.7", n) for n in range(200)))
            others = await asyncio.gather(*(chat(f"198.51.100.{n}", n) for n in range(1, 6)))
            return list(attacker), list(others)

    started = time.monotonic()
    attacker, others = asyncio.run(flood())
    assert attacker.count(200) == 15 and attacker.count(429) == 185, sorted(set(attacker))
    assert others == [200] * 5
    assert time.monotonic() - started < 20
