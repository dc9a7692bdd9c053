"""Database faults during chat and ingestion: SQLite locked by another process, PostgreSQL
connections cut and the server down and back.

What must hold: a request that cannot write gets ``503`` with ``Retry-After`` in its door's error
shape and leaves nothing half-written; an answer already streaming is saved once the database is
back (retried, never twice); a source being ingested is taken up again and ends ``ready`` with
each chunk exactly once; once the fault passes, everything works without a restart.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from chatwell.storage.database import Database
from tests.dialects.conftest import World, start_world  # noqa: F401 - a fixture used here
from tests.services import PostgresServer, start_postgres
from tests.upstream import scripted_upstream

on_sqlite = pytest.mark.parametrize("backend", ["sqlite"])
# Tests on this module's own PostgreSQL (``outage_server``); the session's server is not touched.
on_own_postgres = pytest.mark.parametrize("backend", ["own-postgres"])
ANSWER = "Support answers Monday to Friday from nine to five, by mail and chat [1]."
QUESTION = (
    "What are your business hours on weekdays?"  # relevant to the seeded bot: the model answers
)
# ~300 chunks: embedding them takes seconds on this CPU, long enough to strike in the middle.
LONG_TEXT = "\n\n".join(
    f"Section {i}. The warehouse in district {i} ships parcel type {i % 17} on weekday {i % 5}; "
    f"its manager {i} answers questions about invoices numbered {i * 7} to {i * 7 + 6}. " * 6
    for i in range(300)
)


def _rows(database_url: str) -> dict[str, Any]:
    """Messages, chunks and sources as stored, read from outside the server."""
    from chatwell.storage.tables import Chunk, Message, Source

    async def read() -> dict[str, Any]:
        db = Database(database_url)
        try:
            async with db.read() as session:
                messages = (
                    await session.execute(
                        select(Message.role, Message.content, Message.error_code).order_by(
                            Message.created_at
                        )
                    )
                ).all()
                positions = (await session.execute(select(Chunk.source_id, Chunk.position))).all()
                sources = (
                    await session.execute(
                        select(Source.id, Source.status, Source.chunk_count, Source.attempts)
                    )
                ).all()
                return {"messages": messages, "positions": positions, "sources": sources}
        finally:
            await db.dispose()

    return asyncio.run(read())


def _chunks_exactly_once(rows: dict[str, Any]) -> None:
    for source_id, status, chunk_count, _ in rows["sources"]:
        mine = sorted(p for s, p in rows["positions"] if s == source_id)
        assert status == "ready", rows["sources"]
        assert mine == list(range(chunk_count)), f"chunks of {source_id} not each exactly once"


def _stream(
    client: httpx.Client,
    path: str,
    body: dict[str, Any],
    on_event: Callable[[str, int], None] | None = None,
) -> list[tuple[str, str]]:
    """(event, data) of a native chat stream; ``on_event(name, deltas so far)`` after each."""
    events: list[tuple[str, str]] = []
    name = ""
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, line[6:]))
                if on_event is not None:
                    on_event(name, sum(1 for n, _ in events if n == "delta"))
    return events


class _SqliteLock:
    """Another process's write lock on the database file (``BEGIN IMMEDIATE`` held open)."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.held = False

    def take(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.conn.execute("ROLLBACK")
            self.held = False

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer

    def close(self) -> None:
        self.release()
        self.conn.close()


def _db_path(world: World) -> Path:
    return Path(world.app.state.runtime.settings.resolved_database_url.split("///", 1)[1])


def _chat_doors(
    world: World,
) -> list[tuple[str | None, str, dict[str, Any], Callable[[dict[str, Any]], str]]]:
    """(key, path, body, the error code read the door's own way) for five chat doors."""
    return [
        (
            world.admin_key,
            "/v1/bots/support-bot/chat",
            {"message": "Open?", "stream": False},
            lambda b: b["error"]["code"],
        ),
        (
            world.bot_key,
            "/api/chat",
            {"message": "Open?", "bot_slug": "support-bot", "stream": False},
            lambda b: b["error"]["code"].lower(),
        ),
        (
            world.workspace_key,
            f"/api/v1/chatbots/{world.bot_id}/chat",
            {"message": "Open?"},
            lambda b: b["code"].lower() if b["success"] is False else "?",
        ),
        (
            world.workspace_key,
            "/v1/chat/completions",
            {"model": "support-bot", "messages": [{"role": "user", "content": "Open?"}]},
            lambda b: b["error"]["code"],
        ),
        (
            None,
            "/v1/public/chat/stream",
            {"bot_id": world.bot_id, "message": "Open?", "session_id": "visitor-1"},
            lambda b: b["error"],
        ),
        (
            world.admin_key,
            "/v1/bots/support-bot/chat",
            {"message": "Open?", "stream": True},
            lambda b: b["error"]["code"],
        ),
    ]


def _assert_refused(world: World, code: str, retry_after: str, limit: float) -> None:
    for key, path, body, code_of in _chat_doors(world):
        with world.client(key) as client:
            started = time.monotonic()
            response = client.post(path, json=body)
            assert time.monotonic() - started < limit, (
                f"{path}: a database fault must not hang the request"
            )
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == retry_after, path
            assert code_of(response.json()) == code, (path, response.text)


# ------------------------------------------------------------------------------------- SQLite


@on_sqlite
def test_a_locked_sqlite_database_refuses_chat_with_503_on_every_door_and_writes_nothing(
    start_world: Callable[..., World],
) -> None:
    world = start_world(sqlite_busy_timeout_ms=300)
    lock = _SqliteLock(_db_path(world))
    before = _rows(world.app.state.runtime.settings.resolved_database_url)["messages"]
    try:
        lock.take()
        _assert_refused(world, "database_busy", "1", 5)
        with world.admin() as client:  # WAL: reads go on while another process writes
            assert client.get("/v1/bots/support-bot").status_code == 200
            assert client.get("/readyz").status_code == 200
        assert _rows(world.app.state.runtime.settings.resolved_database_url)["messages"] == before
    finally:
        lock.close()
    with world.admin() as client:  # the lock is gone: everything works again, no restart
        answered = client.post(
            "/v1/bots/support-bot/chat", json={"message": "When are you open?", "stream": False}
        )
        assert answered.status_code == 200, answered.text
    assert (
        len(_rows(world.app.state.runtime.settings.resolved_database_url)["messages"])
        == len(before) + 2
    )


def _answer_under_lock(
    start_world: Callable[..., World],
    live_server: Any,
    *,
    tokens_per_second: float,
    busy_timeout_ms: int,
    strike: Callable[[_SqliteLock, str, int], None],
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Stream an answer while ``strike(lock, event, deltas so far)`` takes and releases another
    process's write lock; the events, and the rows stored once the stream has ended."""
    upstream = live_server.start(scripted_upstream(ANSWER, tokens_per_second=tokens_per_second))
    world = start_world(
        sqlite_busy_timeout_ms=busy_timeout_ms, llm_base_url=upstream + "/v1", llm_model="scripted"
    )
    lock = _SqliteLock(_db_path(world))
    try:
        with world.admin() as client:
            events = _stream(
                client,
                "/v1/bots/support-bot/chat",
                {"message": QUESTION},
                lambda name, deltas: strike(lock, name, deltas),
            )
    finally:
        lock.close()
    return events, _rows(world.app.state.runtime.settings.resolved_database_url)


@on_sqlite
def test_an_answer_streaming_while_sqlite_is_locked_is_saved_once_the_lock_goes(
    start_world: Callable[..., World], live_server: Any
) -> None:
    def strike(lock: _SqliteLock, name: str, deltas: int) -> None:
        if name == "delta" and deltas == 1:
            lock.take()  # the user's turn is stored; the answer's save will find the file locked
            lock.release_after(
                1.5
            )  # ... for 1.5 s: longer than busy_timeout, shorter than the retries

    events, rows = _answer_under_lock(
        start_world, live_server, tokens_per_second=20, busy_timeout_ms=300, strike=strike
    )
    names = [n for n, _ in events]
    assert names[-1] == "done" and "error" not in names, events
    assistant = [m for m in rows["messages"] if m.role == "assistant"]
    assert len(assistant) == 1, "saved exactly once"
    assert assistant[0].content == "".join(json.loads(d)["text"] for n, d in events if n == "delta")
    assert assistant[0].error_code is None


@on_sqlite
def test_a_lock_that_outlasts_the_retries_ends_the_stream_with_an_error_not_a_done(
    start_world: Callable[..., World], live_server: Any
) -> None:
    def strike(lock: _SqliteLock, name: str, deltas: int) -> None:
        if name == "delta" and deltas == 1:
            lock.take()
        if name == "error":
            lock.release()  # now the error turn itself can be recorded

    events, rows = _answer_under_lock(
        start_world, live_server, tokens_per_second=40, busy_timeout_ms=200, strike=strike
    )
    names = [n for n, _ in events]
    assert "done" not in names and names[-1] == "error", events
    assert '"database_busy"' in events[-1][1]
    # The conversation is readable and each stored turn is whole: the answer, with its error.
    roles = [m.role for m in rows["messages"]]
    assert roles == ["user", "assistant"], rows["messages"]
    assert rows["messages"][1].error_code == "database_busy"
    assert rows["messages"][1].content.startswith("Support answers Monday")


@on_sqlite
def test_ingestion_interrupted_by_a_locked_database_resumes_and_stores_each_chunk_once(
    start_world: Callable[..., World],
) -> None:
    world = start_world(sqlite_busy_timeout_ms=200, ingestion_lease_seconds=5)
    lock = _SqliteLock(_db_path(world))
    with world.admin() as client:
        added = client.post(
            "/v1/bots/support-bot/sources",
            json={"type": "text", "title": "Warehouses", "text": LONG_TEXT},
        )
        assert added.status_code == 202
        source = added.json()["id"]
        slice_seconds = _progress_interval(client, source)
        lock.take()
        time.sleep(2 * slice_seconds + 1)  # a progress report (at least) fails meanwhile
        lock.release()
        _wait(
            lambda: (
                client.get(f"/v1/bots/support-bot/sources/{source}").json()["status"]
                in ("ready", "failed")
            ),
            180,
        )
        final = client.get(f"/v1/bots/support-bot/sources/{source}").json()
    lock.close()
    assert final["status"] == "ready", final
    rows = _rows(world.app.state.runtime.settings.resolved_database_url)
    _chunks_exactly_once(rows)
    assert max(a for *_, a in rows["sources"]) >= 2, "the interrupted source was taken up again"


def _progress_interval(client: httpx.Client, source: str) -> float:
    """Seconds between two progress reports of a source being embedded (a slice of chunks)."""

    def progress() -> float:
        return client.get(f"/v1/bots/support-bot/sources/{source}").json()["progress"]

    _wait(lambda: progress() > 0.1, 120)
    first = progress()
    started = time.monotonic()
    _wait(lambda: progress() > first, 120)
    return time.monotonic() - started


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def outage_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: it is cut off and stopped, which no other test may see."""
    with start_postgres() as server:
        yield server


@pytest.fixture
def outage_world(
    outage_server: PostgresServer, start_world: Callable[..., World], live_server: Any
) -> Iterator[tuple[World, PostgresServer, str]]:
    name = outage_server.create_database()
    url = outage_server.url(name)
    upstream = live_server.start(scripted_upstream(ANSWER, tokens_per_second=20))
    world = start_world(database_url=url, llm_base_url=upstream + "/v1", llm_model="scripted")
    try:
        yield world, outage_server, url
    finally:
        if outage_server.pid is None:
            outage_server.resume()


def _terminate_connections(server: PostgresServer, database: str) -> int:
    status = server.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        " AND pid <> pg_backend_pid()"
    )
    return int(status.split()[-1])


@on_own_postgres
def test_postgres_connections_cut_between_requests_cost_nothing(outage_world: Any) -> None:
    world, server, url = outage_world
    with world.admin() as client:
        assert (
            client.post(
                "/v1/bots/support-bot/chat", json={"message": "When are you open?", "stream": False}
            ).status_code
            == 200
        )
        assert _terminate_connections(server, url.rsplit("/", 1)[1]) >= 1
        answered = client.post(
            "/v1/bots/support-bot/chat", json={"message": "When are you open?", "stream": False}
        )
        assert answered.status_code == 200, answered.text  # the pool noticed and reconnected
    assert [m.role for m in _rows(url)["messages"]] == ["user", "assistant"] * 2


@on_own_postgres
def test_postgres_down_gives_503_on_every_door_and_recovers_without_a_restart(
    outage_world: Any,
) -> None:
    world, server, url = outage_world
    before = _rows(url)["messages"]
    server.halt()
    try:
        _assert_refused(world, "database_unavailable", "5", 15)
        with world.admin() as client:  # writes that are not chat too
            added = client.post(
                "/v1/bots/support-bot/sources", json={"type": "text", "title": "t", "text": "x y"}
            )
            assert (
                added.status_code == 503 and added.json()["error"]["code"] == "database_unavailable"
            )
        with world.client() as client:
            assert client.get("/readyz").status_code == 503
            assert (
                client.get("/healthz").status_code == 200
            )  # alive: do not restart it, it recovers
    finally:
        server.resume()
    with world.admin() as client:
        answered = client.post(
            "/v1/bots/support-bot/chat", json={"message": "When are you open?", "stream": False}
        )
        assert answered.status_code == 200, answered.text
        assert client.get("/readyz").status_code == 200
    assert len(_rows(url)["messages"]) == len(before) + 2


@on_own_postgres
def test_postgres_restarting_mid_answer_still_saves_the_answer_once(outage_world: Any) -> None:
    world, server, url = outage_world
    restarted = threading.Event()

    def strike(name: str, deltas: int) -> None:
        if name == "delta" and deltas == 1:

            def bounce() -> None:
                server.halt()
                time.sleep(0.5)
                server.resume()
                restarted.set()

            threading.Thread(target=bounce).start()

    with world.admin() as client:
        events = _stream(client, "/v1/bots/support-bot/chat", {"message": QUESTION}, strike)
    assert restarted.wait(30)
    names = [n for n, _ in events]
    assert names[-1] == "done", events
    messages = _rows(url)["messages"]
    assert [m.role for m in messages] == ["user", "assistant"]
    assert (
        messages[1].content.startswith("Support answers Monday") and messages[1].error_code is None
    )


@on_own_postgres
def test_ingestion_survives_postgres_going_away_and_stores_each_chunk_once(
    outage_server: PostgresServer, start_world: Callable[..., World]
) -> None:
    url = outage_server.url(outage_server.create_database())
    world = start_world(database_url=url, ingestion_lease_seconds=5)
    try:
        with world.admin() as client:
            added = client.post(
                "/v1/bots/support-bot/sources",
                json={"type": "text", "title": "Warehouses", "text": LONG_TEXT},
            )
            source = added.json()["id"]
            slice_seconds = _progress_interval(client, source)
            outage_server.halt()
            time.sleep(2 * slice_seconds + 1)  # a progress report (at least) fails meanwhile
            outage_server.resume()
            _wait(
                lambda: (
                    client.get(f"/v1/bots/support-bot/sources/{source}").json()["status"]
                    in ("ready", "failed")
                ),
                180,
            )
    finally:
        if outage_server.pid is None:
            outage_server.resume()
    rows = _rows(url)
    _chunks_exactly_once(rows)
    assert max(a for *_, a in rows["sources"]) >= 2, "the interrupted source was taken up again"
