"""Ingestion on procrastinate over a real PostgreSQL: the API only queues, `chatwell worker`
processes (any number of them) ingest with the same task function, nothing is done twice, and a
dead worker's source is taken over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from chatwell.ingestion.queue import ProcrastinateQueue, libpq_url
from chatwell.settings import Settings
from chatwell.storage.database import Database
from chatwell.storage.tables import Source, utcnow
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

TEXTS = [
    f"Topic {i}: the answer to question {i} is {i * 7} apples, stored on shelf {i}."
    for i in range(6)
]
on_postgres = pytest.mark.parametrize("backend", ["postgres"])


def worker_process(database_url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CHATWELL_QUEUE": "procrastinate",
        "CHATWELL_DATABASE_URL": database_url,
        "CHATWELL_DATA_DIR": str(data_dir),
    }
    chatwell = str(Path(sys.executable).parent / "chatwell")
    return subprocess.Popen(
        [chatwell, "worker", "--burst", "--concurrency", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def sources_of(database_url: str) -> list[Source]:
    db = Database(database_url)
    try:
        async with db.read() as session:
            return list((await session.scalars(select(Source).order_by(Source.id))).all())
    finally:
        await db.dispose()


async def add_sources(settings: Settings, texts: list[str]) -> str:
    """Through a server process that only queues; returns the bot id."""
    app = build_app(settings, announce=lambda _: None)
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.runtime.ingestion, ProcrastinateQueue)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            bot = (await client.post("/v1/bots", json={"name": "Queue"})).json()
            for i, text in enumerate(texts):
                added = await client.post(
                    f"/v1/bots/{bot['id']}/sources",
                    json={"type": "text", "title": f"T{i}", "text": text},
                )
                assert added.status_code == 202
            await asyncio.sleep(0.2)  # let the deferred sweeps reach the queue
            listed = (await client.get(f"/v1/bots/{bot['id']}/sources")).json()["data"]
            assert {s["status"] for s in listed} == {"pending"}  # nobody here ingests
    return bot["id"]


@on_postgres
async def test_the_api_queues_and_two_worker_processes_ingest_each_source_once(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(queue="procrastinate")
    bot_id = await add_sources(settings, TEXTS)
    workers = [worker_process(database_url, tmp_path / f"w{i}") for i in range(2)]
    outputs = [w.communicate(timeout=240)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    found = await sources_of(database_url)
    assert len(found) == len(TEXTS)
    assert {s.status for s in found} == {"ready"} and all(s.chunk_count >= 1 for s in found)
    assert {s.attempts for s in found} == {1}  # claimed once each, never twice
    # The knowledge is searchable through a server again.
    app = build_app(settings, announce=lambda _: None)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            hits = (
                await client.post(f"/v1/bots/{bot_id}/search", json={"query": "question 4 apples"})
            ).json()
    assert "28 apples" in hits["data"][0]["text"]


@on_postgres
async def test_a_dead_workers_source_is_taken_over(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(queue="procrastinate")
    await add_sources(settings, TEXTS[:2])
    db = Database(database_url)
    try:
        async with db.write() as session:  # a worker claimed it, then died (its lease ran out)
            first = await session.scalar(select(Source.id).order_by(Source.id).limit(1))
            await session.execute(
                update(Source)
                .where(Source.id == first)
                .values(
                    status="processing",
                    locked_by="worker-dead",
                    locked_at=utcnow() - timedelta(hours=1),
                    attempts=1,
                )
            )
    finally:
        await db.dispose()
    worker = worker_process(database_url, tmp_path / "w")
    output = worker.communicate(timeout=240)[0].decode()
    assert worker.returncode == 0, output
    found = {s.id: s for s in await sources_of(database_url)}
    assert (
        found[first].status == "ready"
        and found[first].attempts == 2
        and found[first].locked_by != "worker-dead"
    )
    assert {s.status for s in found.values()} == {"ready"}


@on_postgres
async def test_in_process_worker_runs_the_same_task_function(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """A worker inside the test process (procrastinate's own run loop, wait=False)."""
    settings = make_settings(queue="procrastinate")
    await add_sources(settings, TEXTS[:3])
    from chatwell.knowledge import build_knowledge

    db = Database(database_url)
    queue = ProcrastinateQueue(database_url, build_knowledge(db, settings).ingestor)
    await queue.open()
    try:
        await queue.burst(concurrency=2)
        await asyncio.wait_for(queue.idle(), 30)
    finally:
        await queue.close()
        await db.dispose()
    assert {s.status for s in await sources_of(database_url)} == {"ready"}


def test_the_queue_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, queue="procrastinate")
    assert libpq_url("postgresql+asyncpg://u:p@h:5/db") == "postgresql://u:p@h:5/db"


def test_worker_refuses_without_the_queue(tmp_path: Path) -> None:
    chatwell = str(Path(sys.executable).parent / "chatwell")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATWELL_")}
    done = subprocess.run(
        [chatwell, "worker", "--data-dir", str(tmp_path)], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2 and b"CHATWELL_QUEUE=procrastinate" in done.stderr
