"""``chatwell serve --workers 2``: ``/metrics`` adds up every worker, whichever one answers the
scrape, and the metric files' folder is made at start and removed at exit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.conftest import ADMIN_KEY

READY_COUNT = re.compile(
    r'^chatwell_http_requests_total\{method="GET",route="/readyz",status="200"\} (\S+)$', re.M
)


def _get(url: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:  # a connection of its own, so any worker may take it
        return client.get(url)


def _ready_by_worker(metrics_dir: Path) -> dict[str, float]:
    """``/readyz`` answers counted in each worker's own counter file (keyed by its pid)."""
    counts: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "chatwell_http_requests_total" and labels["route"] == "/readyz":
                counts[path.stem.removeprefix("counter_")] = value
    return counts


@pytest.mark.slow
def test_metrics_add_up_every_worker(live_server: Any, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    chatwell = str(Path(sys.executable).parent / "chatwell")
    env = {"CHATWELL_ADMIN_KEY": ADMIN_KEY, "TMPDIR": str(temp)}
    data = str(tmp_path / "d")
    # Migrate first, as the README's deployment does: two workers migrating a new SQLite file race.
    subprocess.run(
        [chatwell, "migrate", "--data-dir", data],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    base = live_server.start_process(
        [chatwell, "serve", "--port", "{port}", "--data-dir", data, "--workers", "2"],
        env=env,
        timeout=120,
    )
    process = live_server.processes[base]
    (metrics_dir,) = temp.glob("chatwell-metrics-*")

    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Concurrent requests on separate connections until both workers have served some.
        while sent < 40 or (len(_ready_by_worker(metrics_dir)) < 2 and sent < 400):
            statuses = [r.status_code for r in pool.map(_get, [base + "/readyz"] * 20)]
            assert statuses == [200] * 20
            sent += 20
        by_worker = _ready_by_worker(metrics_dir)
        assert len(by_worker) == 2 and sum(by_worker.values()) == sent, by_worker
        scrapes = list(pool.map(_get, [base + "/metrics"] * 12))
    for scrape in scrapes:
        assert scrape.status_code == 200
        assert READY_COUNT.findall(scrape.text) == [f"{float(sent)}"]
        assert "chatwell_ingestion_sources{" in scrape.text and "pid=" not in scrape.text

    process.send_signal(signal.SIGTERM)
    assert process.wait(60) in (0, -signal.SIGTERM)
    assert not metrics_dir.exists()


def test_a_scrape_skips_the_file_a_worker_is_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatwell.observability.metrics import MULTIPROC_ENV, Metrics

    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = mmap_key(
        "chatwell_http_requests",
        "chatwell_http_requests_total",
        ["method", "route", "status"],
        ["GET", "/readyz", "200"],
        "HTTP requests answered.",
    )
    written.write_value(key, 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").touch()  # opened by another worker, not yet sized
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    body = Metrics().render().decode()
    assert READY_COUNT.findall(body) == ["3.0"]
