"""``kill -9`` of a ``chatwell serve`` process mid-answer and mid-ingestion, then a restart on the
same SQLite data: nothing is stuck in ``processing``, no chunk is duplicated or lost, every
conversation is readable and every stored turn is whole."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import seed_bot
from tests.upstream import scripted_upstream

ANSWER = "Our business hours are Monday through Friday, from nine in the morning to five in the evening [1]."
LONG_TEXT = "\n\n".join(
    f"Section {i}. The warehouse in district {i} ships parcel type {i % 17} on weekday {i % 5}; "
    f"its manager {i} answers questions about invoices numbered {i * 7} to {i * 7 + 6}. " * 6
    for i in range(200)
)


def _serve(live_server: Any, data: Path, env: dict[str, str]) -> str:
    chatwell = str(Path(sys.executable).parent / "chatwell")
    return live_server.start_process(
        [chatwell, "serve", "--host", "127.0.0.1", "--port", "{port}", "--data-dir", str(data)],
        env={"CHATWELL_ADMIN_KEY": ADMIN_KEY, **env},
        timeout=120,
    )


def _kill9(live_server: Any, base: str) -> None:
    process = live_server.processes[base]
    os.killpg(process.pid, signal.SIGKILL)  # the server and anything it started, no goodbye
    process.wait(10)


def _admin(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)


def test_kill_9_mid_answer_leaves_every_conversation_readable_and_every_turn_whole(
    live_server: Any, tmp_path: Path
) -> None:
    upstream = live_server.start(scripted_upstream(ANSWER, tokens_per_second=8))
    env = {"CHATWELL_LLM_BASE_URL": upstream + "/v1", "CHATWELL_LLM_MODEL": "scripted"}
    data = tmp_path / "d"
    base = _serve(live_server, data, env)
    with _admin(base) as client:
        seed_bot(client)
        finished = client.post(
            "/v1/bots/support-bot/chat",
            json={"message": "What are your business hours?", "stream": False},
        )
        assert finished.status_code == 200
        deltas = 0
        try:
            with client.stream(
                "POST",
                "/v1/bots/support-bot/chat",
                json={"message": "What are the business hours on weekdays?"},
            ) as stream:
                for line in stream.iter_lines():
                    deltas += line == "event: delta"
                    if deltas == 3:
                        _kill9(live_server, base)
                        break
        except httpx.HTTPError:
            pass  # the connection died with the server
        assert deltas == 3

    base = _serve(live_server, data, env)  # restarted on the same data
    with _admin(base) as client:
        conversations = client.get("/v1/conversations").json()["data"]
        assert len(conversations) == 2
        for conversation in conversations:
            full = client.get(f"/v1/conversations/{conversation['id']}")
            assert full.status_code == 200, full.text
            messages = full.json()["messages"]
            assert messages[0]["role"] == "user" and messages[0]["content"].startswith("What are")
            for message in messages[1:]:  # an answer is stored whole or not at all
                assert message["role"] == "assistant" and message["content"] == ANSWER, message
        lengths = sorted(
            len(client.get(f"/v1/conversations/{c['id']}").json()["messages"])
            for c in conversations
        )
        assert lengths == [1, 2]  # the killed turn kept its question; the finished one both turns
        again = client.post(
            "/v1/bots/support-bot/chat",
            json={"message": "What are your business hours?", "stream": False},
        )
        assert again.status_code == 200 and again.json()["answer"] == ANSWER


def test_kill_9_mid_ingestion_resumes_after_restart_with_each_chunk_once(
    live_server: Any, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    env = {"CHATWELL_INGESTION_LEASE_SECONDS": "5"}
    base = _serve(live_server, data, env)
    with _admin(base) as client:
        seed_bot(client, texts=())
        added = client.post(
            "/v1/bots/support-bot/sources",
            json={"type": "text", "title": "Warehouses", "text": LONG_TEXT},
        )
        source = added.json()["id"]
        deadline = time.monotonic() + 120
        while client.get(f"/v1/bots/support-bot/sources/{source}").json()["progress"] <= 0.1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _kill9(live_server, base)  # mid-embedding: the source is "processing" under a dead lease

    base = _serve(live_server, data, env)
    with _admin(base) as client:
        deadline = time.monotonic() + 180
        while (found := client.get(f"/v1/bots/support-bot/sources/{source}").json())[
            "status"
        ] != "ready":
            assert found["status"] in ("processing", "pending"), found
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        chunk_count = found["chunk_count"]
        hits = client.post(
            "/v1/bots/support-bot/search", json={"query": "warehouse district 7 manager", "k": 20}
        )
        assert hits.status_code == 200 and hits.json()["data"], hits.text

    import asyncio

    from sqlalchemy import select

    from chatwell.storage.database import Database
    from chatwell.storage.tables import Chunk, Source

    async def stored() -> tuple[list[int], list[str]]:
        db = Database(f"sqlite+aiosqlite:///{data / 'chatwell.db'}")
        try:
            async with db.read() as session:
                positions = list(
                    (await session.scalars(select(Chunk.position).order_by(Chunk.position))).all()
                )
                statuses = list((await session.scalars(select(Source.status))).all())
                return positions, statuses
        finally:
            await db.dispose()

    positions, statuses = asyncio.run(stored())
    assert positions == list(range(chunk_count)) and chunk_count > 64  # each chunk once, none lost
    assert statuses == ["ready"]  # nothing stuck in processing
