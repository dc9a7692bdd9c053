"""One ordinary-looking heavy file against a running server: its memory, its CPU, the API's latency.

What it does
------------
1. Generates a Word file whose paragraphs expand far beyond its size (``--text-mib`` of text,
   default 170 MiB, ~185 MiB of XML in a ~11 MB DOCX, within the zip-bomb limits; cached under the temp
   dir) with ``tests/heavy_files.py``.
2. Starts ``chatwell serve`` (the interpreter running this script, so ``PYTHONPATH=src`` picks the
   code under test) on a fresh SQLite data dir, measures ``GET /healthz`` and ``GET /v1/bots``
   latency while idle (``--requests`` each).
3. Uploads the file to a bot and, until the source is ``ready`` or ``failed`` (but at least
   ``--min-window`` s) or ``--window`` s passed, samples every 0.2 s the server process's RSS and
   CPU time and those of its extraction processes (children of its forkserver), and times the
   same requests back to back.
4. Deletes the source and watches ``--after-delete`` seconds more: whether the server keeps
   burning CPU and whether an extraction process is still alive.
5. Prints a table and one JSON line. Not a test: nothing is asserted. Example::

       PYTHONPATH=src .venv/bin/python bench/heavy_file.py --window 300
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import json_line, loadavg, percentile  # noqa: E402
from tests.heavy_files import cpu_seconds, extraction_processes, heavy_docx, rss_bytes  # noqa: E402
from tests.services import LiveServers  # noqa: E402

KEY = "bench-heavy-file-admin-key-0123456789"
MIB = 1024 * 1024


def heavy_file(text_mib: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"chatwell-heavy-{text_mib}mib.docx"
    if not path.exists():
        path.write_bytes(heavy_docx(text_mib * MIB))
    return path


class Sampler(threading.Thread):
    """Peak RSS and CPU of the server and of its extraction processes, every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = rss_bytes(pid)
        self.peak_extraction_rss = 0
        self.extraction_cpu: dict[int, float] = {}
        self.seen_extractions: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))
            for child in extraction_processes(self.pid):
                self.seen_extractions.add(child)
                self.peak_extraction_rss = max(self.peak_extraction_rss, rss_bytes(child))
                self.extraction_cpu[child] = max(
                    self.extraction_cpu.get(child, 0.0), cpu_seconds(child)
                )
            self.stop.wait(self.interval)


def latencies(client: httpx.Client, path: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        client.get(path).raise_for_status()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    file = heavy_file(args.text_mib)
    servers = LiveServers()
    data = Path(tempfile.mkdtemp(prefix="chatwell-heavy-"))
    chatwell = str(Path(sys.executable).parent / "chatwell")
    try:
        base = servers.start_process(
            [
                sys.executable,
                "-c",
                "from chatwell.cli import main; main()",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--data-dir",
                str(data),
            ]
            if not os.path.exists(chatwell) or args.module
            else [
                chatwell,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--data-dir",
                str(data),
            ],
            env={"CHATWELL_ADMIN_KEY": KEY},
            timeout=180,
        )
        pid = servers.processes[base].pid
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
        ) as client:
            bot = client.post("/v1/bots", json={"name": "Heavy"}).json()
            idle = {
                path: latencies(client, path, args.requests) for path in ("/healthz", "/v1/bots")
            }
            rss_idle = rss_bytes(pid)
            cpu_start = cpu_seconds(pid)
            sampler = Sampler(pid)
            sampler.start()
            started = time.monotonic()
            source = client.post(
                f"/v1/bots/{bot['id']}/sources",
                files={
                    "file": (
                        "report.docx",
                        file.read_bytes(),
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    )
                },
            ).json()
            busy: dict[str, list[float]] = {"/healthz": [], "/v1/bots": []}
            status: dict[str, Any] = source
            ingest_seconds = None
            while time.monotonic() - started < args.window:
                for path in busy:
                    busy[path].extend(latencies(client, path, 5))
                if ingest_seconds is None:
                    status = client.get(f"/v1/bots/{bot['id']}/sources/{source['id']}").json()
                    if status["status"] in ("ready", "failed"):
                        ingest_seconds = time.monotonic() - started
                if ingest_seconds is not None and time.monotonic() - started >= args.min_window:
                    break
            window = time.monotonic() - started
            cpu_ingest = cpu_seconds(pid) - cpu_start
            client.delete(f"/v1/bots/{bot['id']}/sources/{source['id']}")
            deleted_at = time.monotonic()
            cpu_at_delete = cpu_seconds(pid)
            gone_after = None
            while time.monotonic() - deleted_at < args.after_delete:
                if gone_after is None and not extraction_processes(pid):
                    gone_after = time.monotonic() - deleted_at
                time.sleep(0.2)
            cpu_after_delete = cpu_seconds(pid) - cpu_at_delete
            sampler.stop.set()
            sampler.join()
            chunks = sum(
                s["chunk_count"] or 0
                for s in client.get(f"/v1/bots/{bot['id']}/sources").json()["data"]
            )
    finally:
        servers.close()
    return {
        "benchmark": "heavy_file",
        "file_mb": round(file.stat().st_size / 1e6, 2),
        "text_mib": args.text_mib,
        "status": status["status"],
        "error_code": status.get("error_code"),
        "error": status.get("error"),
        "seconds_until_status": None if ingest_seconds is None else round(ingest_seconds, 1),
        "measured_s": round(window, 1),
        "server_rss_idle_mb": round(rss_idle / MIB, 1),
        "server_rss_peak_mb": round(sampler.peak_rss / MIB, 1),
        "server_cpu_s": round(cpu_ingest, 1),
        "extraction_processes": len(sampler.seen_extractions),
        "extraction_rss_peak_mb": round(sampler.peak_extraction_rss / MIB, 1),
        "extraction_cpu_s": round(sum(sampler.extraction_cpu.values()), 1),
        "server_cpu_in_s_after_delete": round(cpu_after_delete, 1),
        "after_delete_s": args.after_delete,
        "extraction_gone_after_delete_s": None if gone_after is None else round(gone_after, 1),
        "chunks_left": chunks,
        **{
            f"idle_p50_ms{path.replace('/', '_')}": round(percentile(v, 50), 2)
            for path, v in idle.items()
        },
        **{
            f"busy_p50_ms{path.replace('/', '_')}": round(percentile(v, 50), 2)
            for path, v in busy.items()
        },
        **{f"busy_requests{path.replace('/', '_')}": len(v) for path, v in busy.items()},
        "loadavg_1m_at_end": loadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--text-mib",
        type=int,
        default=170,
        help="paragraph text in the DOCX (default 170: ~185 MiB of XML)",
    )
    parser.add_argument(
        "--window", type=float, default=300, help="longest wait for ready/failed, s"
    )
    parser.add_argument(
        "--min-window",
        type=float,
        default=60,
        help="shortest measuring window (latency, CPU), even when the source ended sooner, s",
    )
    parser.add_argument(
        "--after-delete", type=float, default=15, help="watching after the delete, s"
    )
    parser.add_argument("--requests", type=int, default=200, help="idle requests per path")
    parser.add_argument(
        "--module", action="store_true", help="start the server with this interpreter"
    )
    result = run(parser.parse_args(argv))
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    print(json_line(result))


if __name__ == "__main__":
    main()
