"""The reference deployment on this machine: nginx in front of 3 API processes and 2 ingestion
workers, on a real PostgreSQL (pgvector) and a real Redis.

- a conversation continues whichever process answers;
- a rate limit is exact across processes (Redis);
- a revoked key fails on every process at the next request;
- an ingestion queued through one process is done by a worker (procrastinate);
- a worker killed (-9) mid-job loses nothing: the source is taken over and ends whole;
- SSE streams through the proxy unbuffered.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import wait_ready
from tests.services import free_port, service_unavailable

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  upstream chatwell {{ {servers} }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 25m;
    client_body_buffer_size 25m;
    location / {{
      proxy_pass http://chatwell;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Request-ID $request_id;
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }}
  }}
}}
"""
BIG_TEXT = "\n\n".join(
    f"Section {i}. The warehouse in district {i} stores {i * 3} pallets of item {i} and ships on weekday {i % 5}."
    for i in range(1500)
)
pytestmark = pytest.mark.slow


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        service_unavailable("nginx not found (apt-get install nginx-light)")
    return found


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        chatwell = str(Path(sys.executable).parent / "chatwell")
        with open(
            self.log_dir / f"worker-{len(self.procs)}.log", "wb"
        ) as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [chatwell, "worker", "--concurrency", "2"],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def deployment(
    live_server: Any, postgres_url: str, redis_url: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    env = {
        "CHATWELL_DATABASE_URL": postgres_url,
        "CHATWELL_REDIS_URL": redis_url,
        "CHATWELL_QUEUE": "procrastinate",
        "CHATWELL_ADMIN_KEY": ADMIN_KEY,
        "CHATWELL_DATA_DIR": str(tmp_path / "data"),
        "CHATWELL_INGESTION_LEASE_SECONDS": "5",
        "CHATWELL_ENVIRONMENT": "production",
    }
    chatwell = str(Path(sys.executable).parent / "chatwell")
    args = [chatwell, "serve", "--host", "127.0.0.1", "--port", "{port}"]
    apis = [live_server.start_process(args, env, timeout=120) for _ in range(3)]
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    servers = " ".join(f"server {api.removeprefix('http://')};" for api in apis)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, servers=servers, port=port))
    proxy = live_server.start_process(
        [nginx_binary(), "-c", str(conf), "-p", str(prefix)], port=port
    )
    workers = Workers(env, tmp_path)
    try:
        yield {"proxy": proxy, "apis": apis, "workers": workers, "env": env}
    finally:
        workers.stop()


def test_nginx_three_apis_two_workers_postgres_redis(deployment: dict[str, Any]) -> None:
    proxy, apis, workers = deployment["proxy"], deployment["apis"], deployment["workers"]
    workers.start()
    workers.start()
    admin = httpx.Client(
        base_url=proxy, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    )
    bot = admin.post("/v1/bots", json={"name": "Support", "slug": "support", "public": True}).json()
    # Ingestion queued through the proxy (some API process), done by a worker.
    added = admin.post(
        "/v1/bots/support/sources",
        json={
            "type": "text",
            "title": "Hours",
            "text": "Business hours: Monday through Friday, 9 to 5.",
        },
    )
    assert added.status_code == 202
    wait_ready(admin, "support", timeout=120)

    # A conversation continues whichever process answers (round robin: 3 turns, 3 processes).
    first = admin.post(
        "/v1/bots/support/chat", json={"message": "When are you open?", "stream": False}
    ).json()
    cid = first["conversation_id"]
    for question in ("And on Fridays?", "Thanks, and on Mondays?"):
        turn = admin.post(
            "/v1/bots/support/chat",
            json={"message": question, "conversation_id": cid, "stream": False},
        )
        assert turn.status_code == 200 and turn.json()["conversation_id"] == cid
    transcript = httpx.get(
        f"{apis[2]}/v1/conversations/{cid}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ).json()
    assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"] * 3

    # SSE through the proxy: events arrive as a stream, in order.
    with admin.stream(
        "POST", "/v1/bots/support/chat", json={"message": "When are you open?"}
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in stream.iter_lines() if line.startswith("event: ")]
    assert names[0] == "status" and names[-1] == "done"

    # A rate limit is exact across processes: 100 concurrent public requests, 15/minute.
    async def burst() -> Counter[int]:
        async with httpx.AsyncClient(
            base_url=proxy, timeout=120, limits=httpx.Limits(max_connections=100)
        ) as client:
            replies = await asyncio.gather(
                *(
                    client.post(
                        "/v1/public/chat/stream",
                        json={
                            "bot_id": bot["id"],
                            "message": "When are you open?",
                            "session_id": f"s{i}",
                        },
                    )
                    for i in range(100)
                )
            )
        return Counter(r.status_code for r in replies)

    assert asyncio.run(burst()) == Counter({200: 15, 429: 85})

    # A revoked key fails on every process at its next request.
    key = admin.post("/v1/keys", json={"label": "temp"}).json()
    for api in apis:
        assert (
            httpx.get(
                f"{api}/v1/bots", headers={"Authorization": f"Bearer {key['key']}"}
            ).status_code
            == 200
        )
    assert admin.delete(f"/v1/keys/{key['id']}").status_code == 204
    for api in apis:
        assert (
            httpx.get(
                f"{api}/v1/bots", headers={"Authorization": f"Bearer {key['key']}"}
            ).status_code
            == 401
        )

    # A worker killed mid-job loses nothing.
    big = admin.post(
        "/v1/bots/support/sources", json={"type": "text", "title": "Warehouses", "text": BIG_TEXT}
    ).json()
    deadline = time.monotonic() + 60
    while admin.get(f"/v1/bots/support/sources/{big['id']}").json()["status"] != "processing":
        assert time.monotonic() < deadline, "the big source was never picked up"
        time.sleep(0.05)
    for proc in workers.procs:
        os.killpg(proc.pid, signal.SIGKILL)  # both: whichever holds it dies
    for proc in workers.procs:
        proc.wait(10)
    assert admin.get(f"/v1/bots/support/sources/{big['id']}").json()["status"] == "processing"
    time.sleep(6)  # the dead worker's lease (5 s) runs out
    workers.start()  # a fresh worker sweeps at start... and the periodic sweep would, within a minute
    admin.post(
        "/v1/bots/support/sources",
        json={"type": "text", "title": "Nudge", "text": "Parking is free."},
    )
    wait_ready(admin, "support", timeout=240)
    done = admin.get(f"/v1/bots/support/sources/{big['id']}").json()
    assert done["status"] == "ready" and done["chunk_count"] > 10
    admin.close()
    # Whole, and only once: every section is in exactly one chunk position, no position twice.
    positions, texts = asyncio.run(
        _chunks_of(deployment["env"]["CHATWELL_DATABASE_URL"], big["id"])
    )
    assert len(positions) == done["chunk_count"] == len(set(positions))
    assert all(f"Section {i}." in texts for i in range(1500))


async def _chunks_of(database_url: str, source_id: str) -> tuple[list[int], str]:
    import uuid

    from sqlalchemy import select

    from chatwell.storage.database import Database
    from chatwell.storage.tables import Chunk

    db = Database(database_url)
    try:
        async with db.read() as session:
            rows = (
                await session.execute(
                    select(Chunk.position, Chunk.text).where(
                        Chunk.source_id == uuid.UUID(source_id)
                    )
                )
            ).all()
    finally:
        await db.dispose()
    return [r.position for r in rows], "\n".join(r.text for r in rows)
