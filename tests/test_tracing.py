"""OpenTelemetry tracing against a real OTLP/HTTP receiver: spans per request and per chat
phase, an incoming ``traceparent`` continued, no secrets or message text in spans, no SDK
loaded when off."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from chatwell.settings import Settings
from tests.chat.test_chat_api import HOURS, bot_with_knowledge, parse_sse
from tests.conftest import ADMIN_KEY
from tests.helpers import bearer, build_app, make_key

QUESTION = "When is the support team available during the week?"
CHAT_ROUTE = "/v1/bots/{bot_id}/chat"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@dataclass
class Collector:
    """A real OTLP/HTTP traces receiver on loopback, keeping every request body it got."""

    url: str
    bodies: list[bytes] = field(default_factory=list)

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every received span with its resource's attributes."""
        found = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    found += [(resource, s) for s in scope.spans]
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    bodies: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                bodies.append(body)
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Collector(f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_chat_turns_are_traced_with_their_phases(
    make_settings: Callable[..., Settings], collector: Collector, announcements: list[str]
) -> None:
    app = build_app(
        make_settings(otel_endpoint=collector.url, otel_service_name="chatwell-test"),
        announce=announcements.append,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=bearer(ADMIN_KEY)
        ) as client:
            bot = await bot_with_knowledge(client, app)
            secret = (await make_key(client))["key"]
            streamed = await client.post(
                f"/v1/bots/{bot['id']}/chat",
                json={"message": QUESTION},
                headers={**bearer(secret), "X-Request-ID": "rid-streamed"},
            )
            assert [name for name, _ in parse_sse(streamed.text)][-1] == "done"
            continued = await client.post(
                f"/v1/bots/{bot['id']}/chat",
                json={"message": QUESTION, "stream": False},
                headers={**bearer(secret), "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
            )
            assert "Monday to Friday" in continued.json()["answer"]
    # The lifespan's shutdown flushed the batch: no explicit flush needed.

    spans = collector.spans()
    assert spans and all(resource["service.name"] == "chatwell-test" for resource, _ in spans)
    servers = [
        s for _, s in spans if s.kind == Span.SPAN_KIND_SERVER and s.name == f"POST {CHAT_ROUTE}"
    ]
    assert len(servers) == 2
    for server in servers:
        attributes = _attributes(server.attributes)
        assert attributes["http.method"] == "POST" and attributes["http.route"] == CHAT_ROUTE
        assert attributes["http.status_code"] == 200 and attributes["chatwell.request_id"]
        children = {
            s.name: s
            for _, s in spans
            if s.trace_id == server.trace_id and s.parent_span_id == server.span_id
        }
        assert set(children) == {"chatwell.retrieval", "chatwell.generation"}
        retrieval = _attributes(children["chatwell.retrieval"].attributes)
        assert retrieval["chatwell.bot_id"] == bot["id"] and retrieval["chatwell.passages"] >= 1
        assert retrieval["chatwell.relevant"] is True
        generation = _attributes(children["chatwell.generation"].attributes)
        assert generation["chatwell.model"] == "chatwell-offline"
        assert generation["chatwell.channel"] == "native"
        assert generation["chatwell.completion_tokens"] > 0
        retrieved, generated = children["chatwell.retrieval"], children["chatwell.generation"]
        assert retrieved.end_time_unix_nano <= generated.start_time_unix_nano
    streamed_span, continued_span = sorted(servers, key=lambda s: s.start_time_unix_nano)
    assert _attributes(streamed_span.attributes)["chatwell.request_id"] == "rid-streamed"
    assert streamed_span.parent_span_id == b"" and streamed_span.trace_id.hex() != TRACE_ID
    assert continued_span.trace_id.hex() == TRACE_ID
    assert continued_span.parent_span_id.hex() == PARENT_ID

    upload = next(s for _, s in spans if s.name == "POST /v1/bots/{bot_id}/sources")
    assert _attributes(upload.attributes)["http.status_code"] == 202
    # Neither the keys nor the question nor the source text went anywhere near the collector.
    for leak in (secret, secret[10:], ADMIN_KEY, QUESTION, "support team", HOURS[:30]):
        assert all(leak.encode() not in body for body in collector.bodies), leak
    for _, s in spans:
        values = [s.name, *map(str, _attributes(s.attributes).values())]
        leaks = (secret, ADMIN_KEY, QUESTION, "Bearer")
        assert not any(leak in value for value in values for leak in leaks)


def test_tracing_off_loads_no_opentelemetry_sdk(tmp_path: Any) -> None:
    code = f"""
import asyncio, sys
import httpx
from tests.helpers import build_app
from chatwell.observability.tracing import span
from chatwell.settings import Settings

async def main():
    settings = Settings(data_dir={str(tmp_path)!r}, admin_key={ADMIN_KEY!r})
    app = build_app(settings, announce=lambda _: None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code == 200
        with span("chatwell.retrieval", bot_id=1) as traced:
            traced.set(passages=3)
    assert app.state.runtime.tracing is None

asyncio.run(main())
# FastAPI itself imports the OpenTelemetry API; the SDK, the exporter and protobuf stay out.
loaded = sorted(m for m in sys.modules
                if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter",
                                 "opentelemetry.proto", "google.protobuf")))
assert not loaded, loaded
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATWELL_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr


def _attributes(pairs: Any) -> dict[str, Any]:
    """OTLP key/value pairs as a dict of plain values."""
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values
