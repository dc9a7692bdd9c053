"""A real site, ingested end to end: the PostgreSQL 15 manual (1,173 HTML pages, Debian package
``postgresql-doc-15``) served from 127.0.0.1, added as one crawled URL source of a running
chatwell server, until every page is ``ready``.

Reported: pages, chunks, wall time from "add source" to the last page ready, pipeline chunks/s,
and the bare embedder's chunks/s on exactly the stored chunk texts (``heading + "\\n\\n" + text``,
batches of 64, as many at once as the model runs side by side) in the same run — the ratio is
the issue's "end to end vs the raw embedder".
The embedding cache lives in a fresh temp data dir, so every chunk is really embedded.

    apt-get install -y postgresql-doc-15
    .venv/bin/python bench/ingest_site.py                       # SQLite, in-process worker
    .venv/bin/python bench/ingest_site.py --max-pages 2000 --raw-sample 4000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import json_line, machine_info, table, temp_dir  # noqa: E402
from tests.services import free_port, wait_for_port  # noqa: E402

MANUAL = Path("/usr/share/doc/postgresql-doc-15/html")
ADMIN_KEY = "bench-admin-key-0123456789"


NGINX_CONF = """daemon off; pid {prefix}/nginx.pid; error_log {prefix}/error.log; worker_processes 1;
events {{ worker_connections 256; }}
http {{ access_log off; types {{ text/html html; text/css css; image/png png; image/svg+xml svg; }}
  client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
"""


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """The site on 127.0.0.1: nginx when installed (the site's server is not what is measured,
    and Python's http.server would take CPU from the pipeline on a small machine), else
    http.server in a thread."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
        return
    with temp_dir("chatwell-nginx-") as prefix:
        (prefix / "tmp").mkdir()
        port = free_port()
        (prefix / "nginx.conf").write_text(
            NGINX_CONF.format(prefix=prefix, port=port, root=root.resolve())
        )
        proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=10, process=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn

    from chatwell.app import create_app
    from chatwell.services.sources import count_by_status
    from chatwell.settings import Settings
    from chatwell.storage.database import Database

    with serve_directory(args.root) as site, temp_dir("chatwell-site-") as tmp:
        settings = Settings(
            data_dir=tmp,
            admin_key=ADMIN_KEY,
            crawl_allow_private=True,
            ingestion_concurrency=args.concurrency,
            log_level="warning",
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, announce=lambda _: None),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                log_config=None,
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as client:
            bot = (await client.post("/v1/bots", json={"name": "Postgres manual"})).json()
            started = time.perf_counter()
            root = await client.post(
                f"/v1/bots/{bot['id']}/sources",
                json={
                    "type": "url",
                    "url": f"{site}/index.html",
                    "crawl": True,
                    "max_pages": args.max_pages,
                    "max_depth": 10,
                },
            )
            assert root.status_code == 202, root.text
            last_report = started
            progress = Database(settings.resolved_database_url)
            while True:
                # Progress is one count by status (the service /metrics uses), not a thousand
                # sources paged through the API every half second: that polling loaded the server.
                counts = await count_by_status(progress)
                if sum(counts.values()) and not counts["pending"] and not counts["processing"]:
                    break
                if time.perf_counter() - last_report > 30:
                    last_report = time.perf_counter()
                    print(
                        f"  ... {counts.get('ready', 0)}/{sum(counts.values())} sources ready after"
                        f" {last_report - started:.0f}s",
                        flush=True,
                    )
                await asyncio.sleep(0.5)
            wall = time.perf_counter() - started
            await progress.dispose()
            sources = await _all_sources(client, bot["id"])
            failed = [s for s in sources if s["status"] == "failed"]
        server.should_exit = True
        await serving
        texts = await _chunk_texts(settings.resolved_database_url)
    # The bare model's rate on a uniform sample of the stored chunks (the same length mix), or on all.
    sample = (
        texts
        if not args.raw_sample or args.raw_sample >= len(texts)
        else random.Random(0).sample(texts, args.raw_sample)
    )
    raw_seconds = None if args.skip_raw else await _raw_embed(sample)
    pages = len([s for s in sources if s.get("parent_id")])
    result = {
        "pages": pages,
        "failed": len(failed),
        "chunks": len(texts),
        "wall_seconds": round(wall, 1),
        "pipeline_chunks_per_s": round(len(texts) / wall, 2),
        "concurrency": args.concurrency,
    }
    if raw_seconds is not None:
        result["raw_chunks_per_s"] = round(len(sample) / raw_seconds, 2)
        result["raw_sample"] = len(sample)
        result["ratio"] = round(result["pipeline_chunks_per_s"] / result["raw_chunks_per_s"], 3)
    return result


async def _all_sources(client: httpx.AsyncClient, bot_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/bots/{bot_id}/sources", params=params)).json()
        found += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


async def _chunk_texts(url: str) -> list[str]:
    from sqlalchemy import select

    from chatwell.ingestion.splitter import embedding_text
    from chatwell.storage.database import Database
    from chatwell.storage.tables import Chunk

    db = Database(url)
    try:
        async with db.read() as session:
            rows = (await session.execute(select(Chunk.heading, Chunk.text))).all()
    finally:
        await db.dispose()
    return [embedding_text(r.heading, r.text) for r in rows]


async def _raw_embed(texts: list[str]) -> float:
    from chatwell.embedders.minilm import MiniLMOnnxEmbedder

    model = MiniLMOnnxEmbedder()
    await model.embed(texts[:64])  # load and warm the model, not timed
    # The bare model at its best: batches of 64, as many at once as it runs side by side.
    batches = [texts[first : first + 64] for first in range(0, len(texts), 64)]

    async def lane() -> None:
        while batches:
            await model.embed(batches.pop(0))

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(model.parallel)))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=MANUAL, help="folder of the site to serve")
    parser.add_argument("--max-pages", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="CHATWELL_INGESTION_CONCURRENCY (the default)"
    )
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument(
        "--raw-sample",
        type=int,
        default=0,
        help="time the bare model on this many of the chunks, drawn at random (0: all)",
    )
    args = parser.parse_args(argv)
    if not (args.root / "index.html").exists():
        sys.exit(f"{args.root}/index.html not found: apt-get install -y postgresql-doc-15")
    result = asyncio.run(run(args))
    print(
        table(
            ["pages", "chunks", "wall s", "pipeline chunks/s", "raw chunks/s", "ratio"],
            [
                [
                    result["pages"],
                    result["chunks"],
                    result["wall_seconds"],
                    result["pipeline_chunks_per_s"],
                    result.get("raw_chunks_per_s", "-"),
                    result.get("ratio", "-"),
                ]
            ],
        )
    )
    print(json_line({"benchmark": "ingest_site", **result, "machine": machine_info()}))


if __name__ == "__main__":
    main()
