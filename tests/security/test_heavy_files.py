"""Heavy files against a running ``chatwell serve``: an ordinary-looking DOCX that expands to tens
of MiB of paragraphs must neither grow the server's memory nor run unbounded, it must end
``failed`` with a clear error, and deleting or re-syncing a source mid-extraction must stop its
work at once (issue 19, item 7).

What it found (fixed): the loaders ran inside the server process with no bound but the zip-bomb
limits; a 10 MB DOCX (185 MiB of paragraphs) took ~1 GB of server memory and more than ten
minutes of CPU, and deleting the source did not stop it. Extraction now runs in a limited
process of its own (``chatwell.ingestion.extraction``). The files are generated here
(``tests/heavy_files.py``); the figures of memory, CPU and API latency come from
``bench/heavy_file.py``.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.heavy_files import extraction_processes, heavy_docx, rss_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MIB = 1024 * 1024


def serve(live_server: Any, data: Path, env: dict[str, str]) -> tuple[str, int]:
    chatwell = str(Path(sys.executable).parent / "chatwell")
    base = live_server.start_process(
        [chatwell, "serve", "--host", "127.0.0.1", "--port", "{port}", "--data-dir", str(data)],
        env={"CHATWELL_ADMIN_KEY": ADMIN_KEY, **env},
        timeout=120,
    )
    return base, live_server.processes[base].pid


def admin(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)


def upload(client: httpx.Client, bot_id: str, name: str, data: bytes) -> dict[str, Any]:
    response = client.post(f"/v1/bots/{bot_id}/sources", files={"file": (name, data, DOCX)})
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.1)
    return found


def chunks_in(data: Path) -> int:
    with sqlite3.connect(data / "chatwell.db") as db:
        return int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])


def test_a_docx_that_expands_hugely_fails_clearly_and_the_server_memory_stays_flat(
    live_server: Any, tmp_path: Path
) -> None:
    heavy = heavy_docx(24 * MIB)  # ~2 MB on disk, 24 MiB of paragraphs
    data = tmp_path / "d"
    base, pid = serve(live_server, data, {"CHATWELL_INGESTION_MAX_TEXT_CHARS": "2000000"})
    with admin(base) as client:
        bot = client.post("/v1/bots", json={"name": "Heavy"}).json()
        small = upload(client, bot["id"], "small.docx", heavy_docx(40_000, seed=3))
        wait_for(
            lambda: (
                client.get(f"/v1/bots/{bot['id']}/sources/{small['id']}").json()["status"]
                == "ready"
            ),
            120,
            "ready small file",
        )  # the extraction path is warm (its forkserver started)
        idle = rss_bytes(pid)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(rss_bytes(pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            source = upload(client, bot["id"], "report.docx", heavy)
            final = wait_for(
                lambda: (
                    (s := client.get(f"/v1/bots/{bot['id']}/sources/{source['id']}").json())[
                        "status"
                    ]
                    in ("ready", "failed")
                    and s
                ),
                90,
                "final status",
            )
            assert client.get("/healthz").status_code == 200
        finally:
            stop.set()
            sampler.join()
        assert final["status"] == "failed" and final["error_code"] == "source_too_large", final
        assert (
            "2,000,000 characters" in final["error"]
            and "CHATWELL_INGESTION_MAX_TEXT_CHARS" in final["error"]
        )
        assert final["chunk_count"] in (0, None)
        # The upload itself is held a few times over (~2 MB); reading 24 MiB of text is not.
        assert max(peak) - idle < 48 * MIB, (idle / MIB, max(peak) / MIB)
        assert not extraction_processes(pid)


def test_deleting_or_resyncing_a_source_kills_its_extraction_and_writes_nothing(
    live_server: Any, tmp_path: Path
) -> None:
    heavy = heavy_docx(6 * MIB)  # python-docx needs minutes of CPU for it: ample time to interrupt
    data = tmp_path / "d"
    base, pid = serve(
        live_server,
        data,
        {
            "CHATWELL_INGESTION_MAX_TEXT_CHARS": "100000000",
            "CHATWELL_INGESTION_MAX_CHUNKS": "10000000",
        },
    )
    with admin(base) as client:
        bot = client.post("/v1/bots", json={"name": "Heavy"}).json()
        # Re-sync: the running extraction is killed, and the source is read again from the start.
        source = upload(client, bot["id"], "report.docx", heavy)
        first = wait_for(lambda: extraction_processes(pid), 120, "extraction process")
        assert client.post(f"/v1/bots/{bot['id']}/sources/{source['id']}/sync").status_code == 202
        second = wait_for(
            lambda: [p for p in extraction_processes(pid) if p not in first],
            30,
            "second extraction process",
        )
        wait_for(
            lambda: not set(first) & set(extraction_processes(pid)),
            5,
            "end of the first extraction",
        )
        # Delete: the extraction stops within a moment, and nothing of it is ever written.
        assert client.delete(f"/v1/bots/{bot['id']}/sources/{source['id']}").status_code == 204
        wait_for(lambda: not extraction_processes(pid), 5, "end of the extraction after the delete")
        assert not set(second) & set(extraction_processes(pid))
        time.sleep(3)
        assert client.get(f"/v1/bots/{bot['id']}/sources").json()["data"] == []
        assert chunks_in(data) == 0
        assert not extraction_processes(pid)
