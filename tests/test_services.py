"""The real-service fixtures of tests/services.py do what they promise."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import pytest
import redis
import redis.asyncio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pgvector.asyncpg import register_vector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.services import (
    LiveServers,
    PostgresServer,
    RedisServer,
    _scratch_base,
    _sweep_stale_scratch,
    free_port,
    service_unavailable,
    start_redis,
    wait_for_port,
)

REPO = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def test_free_port_is_bindable_and_wait_for_port_sees_a_listener() -> None:
    port = free_port()
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        wait_for_port("127.0.0.1", port, timeout=5)


def test_wait_for_port_gives_up_when_the_process_died() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(RuntimeError, match="exited with 0"):
        wait_for_port("127.0.0.1", free_port(), timeout=30, process=proc)


def test_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        service_unavailable("no frobnicator")


def test_missing_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no frobnicator"):
        service_unavailable("no frobnicator")


def test_missing_redis_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr("tests.services._redis_binary", lambda: None)
    server = RedisServer()
    with pytest.raises(pytest.fail.Exception, match="redis-server not found"):
        server.start()
    server.stop()


# --------------------------------------------------------------------------------------------
# PostgreSQL + pgvector
# --------------------------------------------------------------------------------------------

_databases_seen: list[str] = []


async def test_pgvector_nearest_neighbours_with_sqlalchemy(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://chatwell:")
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE items (id serial PRIMARY KEY, label text, embedding vector(3))")
            )
            await conn.execute(
                text("INSERT INTO items (label, embedding) VALUES (:label, CAST(:vec AS vector))"),
                [
                    {"label": "x", "vec": "[1, 0, 0]"},
                    {"label": "y", "vec": "[0, 1, 0]"},
                    {"label": "z", "vec": "[0, 0, 1]"},
                    {"label": "xy", "vec": "[0.7, 0.7, 0]"},
                ],
            )
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT label FROM items ORDER BY embedding <-> CAST(:q AS vector) LIMIT 3"),
                {"q": "[0.9, 0.2, 0]"},
            )
            assert [r.label for r in rows] == ["x", "xy", "y"]
    finally:
        await engine.dispose()


async def test_pgvector_codec_with_asyncpg(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(postgres_server.dsn(database))
    try:
        await register_vector(conn)
        await conn.execute("CREATE TABLE docs (id int PRIMARY KEY, embedding vector(3))")
        await conn.executemany(
            "INSERT INTO docs VALUES ($1, $2)",
            [(1, np.array([1.0, 1.0, 1.0])), (2, np.array([5.0, 5.0, 5.0])), (3, np.full(3, 2.0))],
        )
        rows = await conn.fetch(
            "SELECT id, embedding FROM docs ORDER BY embedding <-> $1 LIMIT 2",
            np.array([2.1, 2.0, 2.0]),
        )
        assert [r["id"] for r in rows] == [3, 1]
        assert np.allclose(rows[0]["embedding"].to_numpy(), [2.0, 2.0, 2.0])
    finally:
        await conn.close()


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_every_test_gets_its_own_empty_database(postgres_url: str, turn: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    assert database not in _databases_seen
    _databases_seen.append(database)
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            tables = await conn.scalar(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
            assert tables == 0, "a previous test's table leaked into this database"
            extensions = (await conn.execute(text("SELECT extname FROM pg_extension"))).scalars()
            assert "vector" in set(extensions)
            await conn.execute(text(f"CREATE TABLE left_by_{turn} (id int)"))
    finally:
        await engine.dispose()


async def test_databases_of_earlier_tests_were_dropped(postgres_server: PostgresServer) -> None:
    # Tests of this worker that ran before this one left names in _databases_seen.
    conn = await asyncpg.connect(postgres_server.dsn())
    try:
        names = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()
    assert postgres_server.template in names
    assert not names & set(_databases_seen)
    assert not {n for n in names if n.startswith("t_")}, names


def test_drop_database_even_with_open_connections(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()

    async def scenario() -> None:
        leaked = await asyncpg.connect(postgres_server.dsn(name))  # never closed by the "test"
        assert await leaked.fetchval("SELECT current_database()") == name
        assert await leaked.fetchval("SELECT extname FROM pg_extension WHERE extname='vector'")
        postgres_server.drop_database(name)  # WITH (FORCE) terminates `leaked`
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await leaked.fetchval("SELECT 1")
        leaked.terminate()
        check = await asyncpg.connect(postgres_server.dsn())
        try:
            count = "SELECT count(*) FROM pg_database WHERE datname = $1"
            assert await check.fetchval(count, name) == 0
        finally:
            await check.close()

    asyncio.run(scenario())


def test_database_without_vector_can_be_requested(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database(with_vector=False)
    try:

        async def extensions() -> list[str]:
            conn = await asyncpg.connect(postgres_server.dsn(name))
            try:
                return [r[0] for r in await conn.fetch("SELECT extname FROM pg_extension")]
            finally:
                await conn.close()

        assert "vector" not in asyncio.run(extensions())
    finally:
        postgres_server.drop_database(name)


async def test_postgres_server_facts_and_password_auth(postgres_server: PostgresServer) -> None:
    assert postgres_server.host == "127.0.0.1"
    assert postgres_server.version.startswith("18")
    assert postgres_server.pgvector_version
    assert postgres_server.url("x") == (
        f"postgresql+asyncpg://chatwell:chatwell-test@127.0.0.1:{postgres_server.port}/x"
    )
    assert postgres_server.url("x", driver=None).startswith("postgresql://")
    # The postmaster never runs as root.
    uid_line = next(
        line
        for line in Path(f"/proc/{postgres_server.pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert uid_line.split()[1] != "0"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            f"postgresql://chatwell:wrong@127.0.0.1:{postgres_server.port}/postgres", ssl=False
        )


def test_postgres_server_lifecycle_leaves_nothing_behind() -> None:
    server = PostgresServer()
    server.start()
    try:
        pid, data_dir, port = server.pid, server.data_dir, server.port
        assert pid is not None and data_dir is not None and alive(pid)
        wait_for_port("127.0.0.1", port, timeout=1)
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not alive(pid)
    assert not data_dir.exists()


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


async def test_redis_set_and_get(redis_url: str) -> None:
    client = redis.asyncio.from_url(redis_url)
    try:
        await client.set("greeting", "hello")
        assert await client.get("greeting") == b"hello"
    finally:
        await client.aclose()


@pytest.mark.parametrize("turn", ["first", "second"])
def test_redis_is_empty_for_every_test(redis_url: str, turn: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0, "keys of an earlier test leaked"
        client.set("left-behind", turn)
        with redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/5") as other:
            assert other.dbsize() == 0
            other.set("left-behind-in-db5", turn)


def test_redis_server_facts(redis_server: RedisServer) -> None:
    assert redis_server.url() == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.url(3).endswith("/3")
    assert redis_server.version
    with redis_server.client() as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_redis_stop_kills_the_server() -> None:
    with start_redis() as server:
        pid = server.pid
        assert pid is not None and alive(pid)
    assert wait_gone(pid)


# --------------------------------------------------------------------------------------------
# Children die with a SIGKILLed pytest process, and its scratch dirs are swept
# --------------------------------------------------------------------------------------------

_ORPHAN_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tests.services import PostgresServer, RedisServer
pg, rd = PostgresServer(), RedisServer()
pg.start(); rd.start()
dirs = [str(pg._scratch.path), str(rd._scratch.path)]
print(json.dumps({"pids": [pg.pid, rd.pid], "dirs": dirs}), flush=True)
time.sleep(120)
"""


def test_servers_die_with_a_killed_owner_and_scratch_is_swept() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(REPO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, owner.stderr.read() if owner.stderr else ""
        facts = json.loads(line)
        assert all(alive(pid) for pid in facts["pids"])
    finally:
        owner.kill()  # SIGKILL: no atexit, no finally
        owner.communicate()
    for pid in facts["pids"]:
        assert wait_gone(pid), f"server {pid} outlived its killed owner"
    assert all(Path(d).exists() for d in facts["dirs"])
    _sweep_stale_scratch(_scratch_base())
    assert not any(Path(d).exists() for d in facts["dirs"])


# --------------------------------------------------------------------------------------------
# Live servers
# --------------------------------------------------------------------------------------------


def sse_app(produced_second: threading.Event, may_continue: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "data: first\n\n"
            deadline = time.monotonic() + 10
            while not may_continue.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            produced_second.set()
            yield "data: second\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


async def test_live_server_streams_sse_incrementally(live_server: LiveServers) -> None:
    produced_second, may_continue = threading.Event(), threading.Event()
    base_url = live_server.start(sse_app(produced_second, may_continue))
    assert base_url.startswith("http://127.0.0.1:")
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", "/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == "data: first"
        # The first event reached us while the server was still waiting to produce more.
        assert not produced_second.is_set()
        may_continue.set()
        rest = [line async for line in lines if line]
    assert rest == ["data: second"]
    assert produced_second.is_set()


def test_live_server_runs_lifespan_and_stops_cleanly() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    with LiveServers() as servers:
        base_url = servers.start(app)
        assert events == ["startup"]
        assert httpx.get(base_url + "/ping").json() == {"pong": "yes"}
        port = int(base_url.rsplit(":", 1)[1])
    assert events == ["startup", "shutdown"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/ping")


def test_live_server_reports_a_failing_startup() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("boom at startup")
        yield

    with LiveServers() as servers, pytest.raises(RuntimeError, match="did not start"):
        servers.start(FastAPI(lifespan=lifespan))


_HEALTH_APP = """
import os, sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def healthz():
    return {"ok": True, "flavour": os.environ["FLAVOUR"]}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def test_live_server_start_process(live_server: LiveServers) -> None:
    base_url = live_server.start_process(
        [sys.executable, "-c", _HEALTH_APP, "{port}"], {"FLAVOUR": "on {host}:{port}"}
    )
    port = base_url.rsplit(":", 1)[1]
    health = httpx.get(base_url + "/healthz").json()
    assert health == {"ok": True, "flavour": f"on 127.0.0.1:{port}"}


def test_start_process_stops_the_process_and_reports_crashes() -> None:
    with LiveServers() as servers:
        command = [sys.executable, "-c", _HEALTH_APP, "{port}"]
        base_url = servers.start_process(command, {"FLAVOUR": "x"})
        port = int(base_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="(?s)exited with 3.*it broke"):
            servers.start_process(
                [sys.executable, "-c", "import sys; print('it broke'); sys.exit(3)"], timeout=10
            )
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.3)


def test_start_process_kills_a_server_that_ignores_sigterm() -> None:
    stubborn = (
        "import signal, sys, http.server\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    servers = LiveServers()
    base_url = servers.start_process([sys.executable, "-c", stubborn, "{port}"], stop_timeout=0.5)
    proc = servers.processes[base_url]
    started = time.monotonic()
    servers.close()
    assert time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL
