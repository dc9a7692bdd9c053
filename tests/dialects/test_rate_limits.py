"""100 concurrent public chat requests against the 15/minute limit admit exactly 15: on one
server with in-memory counters, and on two server processes sharing Redis."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import World, seed_bot

REQUESTS = 100


async def burst(bases: list[str], bot_id: str) -> Counter[int]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(i: int) -> int:
            body = {
                "bot_id": bot_id,
                "message": "What are your business hours?",
                "session_id": f"s{i}",
            }
            response = await client.post(
                bases[i % len(bases)] + "/v1/public/chat/stream", json=body
            )
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
            return response.status_code

        return Counter(await asyncio.gather(*(one(i) for i in range(REQUESTS))))


def test_one_server_in_memory(world: World) -> None:
    assert asyncio.run(burst([world.base], world.bot_id)) == Counter({200: 15, 429: 85})


def test_two_processes_share_redis(
    live_server: Any, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    chatwell = str(Path(sys.executable).parent / "chatwell")
    env = {
        "CHATWELL_ADMIN_KEY": ADMIN_KEY,
        "CHATWELL_REDIS_URL": redis_url,
        "CHATWELL_DATABASE_URL": database_url,
    }
    args = [
        chatwell,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    first = live_server.start_process(args, env)
    second = live_server.start_process(args, env)
    with httpx.Client(
        base_url=first, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as admin:
        bot = seed_bot(admin, public=True)
    statuses = asyncio.run(burst([first, second], bot["id"]))
    assert statuses == Counter({200: 15, 429: 85})
