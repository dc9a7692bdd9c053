"""Prometheus metrics, served at ``/metrics``.

Each server process keeps its own registry (behind a proxy, scrape every process — or run one
process per container, the usual Kubernetes shape). What is counted: HTTP requests and their
latency by route template (never by raw path, so ids do not explode the label space), chat time
to first token and tokens by channel and model, rate-limit rejections by scope, and — computed at
scrape time from the database — the ingestion queue depth by status.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("chatwell_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("chatwell_http_request_duration_seconds",
                                 "Time to the response's first byte.", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("chatwell_chat_time_to_first_token_seconds",
                              "From the start of a chat turn to its first answer text.", ["channel"],
                              buckets=LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter("chatwell_chat_tokens", "Model tokens of chat turns.",
                              ["channel", "model", "kind"], registry=self.registry)
        self.turns = Counter("chatwell_chat_turns", "Chat turns by outcome.", ["channel", "outcome"],
                             registry=self.registry)
        self.rate_limited = Counter("chatwell_rate_limit_rejections", "Requests refused by a rate limit or quota.",
                                    ["scope"], registry=self.registry)
        self.queue_depth = Gauge("chatwell_ingestion_sources", "Sources by ingestion status (at scrape time).",
                                 ["status"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
