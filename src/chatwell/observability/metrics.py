"""Prometheus metrics, served at ``/metrics``.

One process keeps its values in its own registry. With ``PROMETHEUS_MULTIPROC_DIR`` set before
the process starts (``chatwell serve --workers N`` sets it for its workers), prometheus_client
writes every value to files in that folder, and a scrape answered by any worker sums the counters
and histograms of all of them. What is counted: HTTP requests and their latency by route template
(never by raw path, so ids do not explode the label space), chat time to first token and tokens by
channel and model, rate-limit rejections by scope, and — computed at scrape time from the
database — the ingestion queue depth by status.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported


class SettledFilesCollector(multiprocess.MultiProcessCollector):
    """prometheus_client's collector, minus the files other processes are creating this instant:
    such a file is empty until sized, and reading it fails (the scrape would answer 500)."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        self.folder = path
        super().__init__(registry, path)

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self.folder, "*.db"))
        return self.merge([f for f in files if _has_content(f)], accumulate=True)


def _has_content(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:  # removed meanwhile (a dead process's live gauge)
        return False


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chatwell_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chatwell_http_request_duration_seconds",
            "Time to the response's first byte.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "chatwell_chat_time_to_first_token_seconds",
            "From the start of a chat turn to its first answer text.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "chatwell_chat_tokens",
            "Model tokens of chat turns.",
            ["channel", "model", "kind"],
            registry=self.registry,
        )
        self.turns = Counter(
            "chatwell_chat_turns",
            "Chat turns by outcome.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "chatwell_rate_limit_rejections",
            "Requests refused by a rate limit or quota.",
            ["scope"],
            registry=self.registry,
        )
        # Whichever worker answers a scrape sets it just before rendering: its value is the newest.
        self.queue_depth = Gauge(
            "chatwell_ingestion_sources",
            "Sources by ingestion status (at scrape time).",
            ["status"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()  # fresh each scrape: it reads every process's files
        SettledFilesCollector(combined, path=self.multiprocess_dir)
        return generate_latest(combined)

    def close(self) -> None:
        """At process exit: drop this process's live-mode gauge files (counters stay counted)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)
