"""Redis going down (limits fail closed or open, as configured) and one client IP opening
thousands of chat streams at once (each past the per-client cap gets a 429 at once, the server
stays responsive to everyone else)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import World, seed_bot, start_world  # noqa: F401 - a fixture used here
from tests.helpers import build_app
from tests.services import start_redis
from tests.upstream import scripted_upstream

on_sqlite = pytest.mark.parametrize("backend", ["sqlite"])
ANSWER = "Our business hours are Monday through Friday, nine to five [1]."
QUESTION = "What are your business hours on weekdays?"


@on_sqlite
@pytest.mark.parametrize(("mode", "expected"), [("closed", 503), ("open", 200)])
def test_redis_down_refuses_or_admits_chat_as_configured(
    mode: str, expected: int, start_world: Callable[..., World]
) -> None:
    with start_redis() as redis:
        world = start_world(
            redis_url=redis.url(0), rate_limit_failure_mode=mode, api_rate_limits="2/minute"
        )
        with world.client(world.bot_key) as client:
            body = {"message": QUESTION, "bot_slug": "support-bot", "stream": False}
            assert client.post("/api/chat", json=body).status_code == 200  # Redis up: counted there
            redis.stop()  # Redis goes away
            refused_or_served = [client.post("/api/chat", json=body) for _ in range(3)]
    for response in refused_or_served:
        assert response.status_code == expected, response.text
    if mode == "closed":
        assert refused_or_served[0].json()["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"
    else:  # open: served past the 2/minute limit, since nothing counts while Redis is away
        assert all(r.json()["response"] for r in refused_or_served)


def _live_world(live_server: Any, tmp_path: Path, **extra: Any) -> tuple[str, dict[str, Any]]:
    upstream = live_server.start(scripted_upstream(ANSWER, tokens_per_second=4))
    settings = Settings(
        data_dir=tmp_path / "d",
        admin_key=ADMIN_KEY,
        llm_base_url=upstream + "/v1",
        llm_model="scripted",
        api_rate_limits="100000/minute",
        **extra,
    )
    base = live_server.start(
        build_app(settings, announce=lambda _: None),
        proxy_headers=True,
        forwarded_allow_ips="*",
        backlog=4096,
    )
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as admin:
        bot = seed_bot(admin)
    return base, bot


def test_streams_past_the_per_client_cap_get_429_and_end_when_the_streams_do(
    live_server: Any, tmp_path: Path
) -> None:
    base, _ = _live_world(live_server, tmp_path, max_concurrent_requests_per_client=3)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Forwarded-For": "203.0.113.9"}
    started = threading.Barrier(4)
    finished: list[str] = []

    def open_stream() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            with client.stream(
                "POST", "/v1/bots/support-bot/chat", json={"message": QUESTION}
            ) as stream:
                lines = stream.iter_lines()
                for line in lines:
                    if line == "event: delta":
                        started.wait(30)
                        break
                finished.append([line for line in lines if line.startswith("event: ")][-1])

    threads = [threading.Thread(target=open_stream) for _ in range(3)]
    for thread in threads:
        thread.start()
    started.wait(30)  # three streams are open and answering
    with httpx.Client(base_url=base, timeout=30) as client:
        fourth = client.post(
            "/v1/bots/support-bot/chat", headers=headers, json={"message": QUESTION}
        )
        chatiq = client.post(
            "/api/chat", headers=headers, json={"message": QUESTION, "bot_slug": "support-bot"}
        )
        other = client.post(
            "/v1/bots/support-bot/chat",
            json={"message": QUESTION, "stream": False},
            headers={"Authorization": f"Bearer {ADMIN_KEY}", "X-Forwarded-For": "198.51.100.1"},
        )
        health = client.get("/healthz", headers=headers)
    assert fourth.status_code == 429 and fourth.headers["retry-after"] == "1"
    assert fourth.json()["error"]["code"] == "too_many_requests"
    assert (
        chatiq.status_code == 429 and chatiq.json()["error"]["code"] == "TOO_MANY_REQUESTS"
    )  # its own shape
    assert other.status_code == 200, other.text  # another client is not affected
    assert health.status_code == 200  # probes are never capped
    for thread in threads:
        thread.join(60)
    assert finished == ["event: done"] * 3  # the admitted streams were not disturbed
    with httpx.Client(base_url=base, timeout=30) as client:  # their slots are free again
        again = client.post(
            "/v1/bots/support-bot/chat",
            headers=headers,
            json={"message": QUESTION, "stream": False},
        )
    assert again.status_code == 200, again.text


def test_a_thousand_simultaneous_streams_from_one_ip_are_bounded_and_others_are_served(
    live_server: Any, tmp_path: Path
) -> None:
    base, _ = _live_world(live_server, tmp_path, max_concurrent_requests_per_client=20)

    async def flood() -> tuple[list[int], int, float]:
        limits = httpx.Limits(max_connections=1100, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as attacker,
            httpx.AsyncClient(base_url=base, timeout=60) as neighbour,
        ):

            async def stream() -> int:
                async with attacker.stream(
                    "POST",
                    "/v1/bots/support-bot/chat",
                    json={"message": QUESTION},
                    headers={
                        "Authorization": f"Bearer {ADMIN_KEY}",
                        "X-Forwarded-For": "203.0.113.7",
                    },
                ) as response:
                    async for _ in response.aiter_bytes():
                        pass
                    return response.status_code

            flood = [asyncio.create_task(stream()) for _ in range(1000)]
            await asyncio.sleep(1.0)  # the flood is on
            asked = time.monotonic()
            served = await neighbour.get(
                "/v1/bots/support-bot",
                headers={"Authorization": f"Bearer {ADMIN_KEY}", "X-Forwarded-For": "198.51.100.2"},
            )
            waited = time.monotonic() - asked
            return list(await asyncio.gather(*flood)), served.status_code, waited

    statuses, neighbour, waited = asyncio.run(flood())
    admitted = statuses.count(200)
    assert 20 <= admitted < 1000 and statuses.count(429) == 1000 - admitted, sorted(set(statuses))
    assert neighbour == 200
    print(
        f"1000 streams from one IP: {admitted} admitted, {1000 - admitted} refused; "
        f"another client answered in {waited * 1000:.0f} ms"
    )
