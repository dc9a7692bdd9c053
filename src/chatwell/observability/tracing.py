"""Optional OpenTelemetry tracing, on when ``CHATWELL_OTEL_ENDPOINT`` is set (the ``otel`` extra).

A server span per HTTP request, named by route template and continuing an incoming W3C
``traceparent``; ``span()`` adds child spans around the phases of a chat turn (retrieval,
generation). Spans leave in batches over OTLP/HTTP; the app's lifespan starts and flushes them.

Off, neither the OpenTelemetry SDK nor its exporter is imported (FastAPI imports only the API)
and ``span()`` costs one context-variable lookup. The provider is the app's own, not the global
one, so FastAPI's native telemetry (which follows the global provider) does not trace twice.
Span attributes carry ids, routes, statuses, model names and counts — never headers, keys,
questions or answers.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwell import __version__
from chatwell.observability.logs import request_id
from chatwell.observability.middleware import route_template

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# The tracer of the app serving the current request: each app has its own provider (two apps in
# one process never mix their spans), and work outside a traced request records nothing.
active_tracer: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "chatwell_tracer", default=None
)
PROPAGATED_HEADERS = (b"traceparent", b"tracestate")


class Tracing:
    """The tracer provider of one app; ``start`` and ``shutdown`` belong to its lifespan."""

    def __init__(self, endpoint: str, *, service_name: str) -> None:
        self.endpoint = endpoint
        self.service_name = service_name
        self.tracer: Tracer | None = None
        self.propagator: TraceContextTextMapPropagator | None = None
        self._provider: TracerProvider | None = None

    def start(self) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            raise RuntimeError(
                "CHATWELL_OTEL_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
                "pip install 'chatwell[otel]'"
            ) from None

        # Not the global provider: the lifespan owns this one, so no exit hook is needed.
        provider = TracerProvider(
            resource=Resource.create({"service.name": self.service_name}), shutdown_on_exit=False
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint)))
        self._provider = provider
        self.propagator = TraceContextTextMapPropagator()
        self.tracer = provider.get_tracer("chatwell", __version__)

    async def shutdown(self) -> None:
        """Export what is still queued and stop (in a thread: the exporter's HTTP call blocks)."""
        provider, self._provider, self.tracer = self._provider, None, None
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)


class TracingMiddleware:
    """A server span per HTTP request. Pure ASGI, inside ``ObservabilityMiddleware`` (so the request
    id is known): streaming responses stay unbuffered and the span lasts to their last byte."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer, propagator = self.tracing.tracer, self.tracing.propagator
        if scope["type"] != "http" or tracer is None or propagator is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind

        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in PROPAGATED_HEADERS
        }
        parent = propagator.extract(carrier)
        method = scope["method"]
        server = tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes={"http.method": method}
        )
        context_token = context.attach(trace.set_span_in_context(server, parent))
        tracer_token = active_tracer.set(tracer)
        status: int | None = None

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        except Exception as exc:
            _mark_failed(server, type(exc).__name__)
            raise
        finally:
            active_tracer.reset(tracer_token)
            context.detach(context_token)
            route = route_template(scope)
            if route != "unmatched":  # a raw path may hold anything: the name stays the method
                server.update_name(f"{method} {route}")
            server.set_attribute("http.route", route)
            if status is not None:
                server.set_attribute("http.status_code", status)
                if status >= 500:
                    _mark_failed(server, str(status))
            rid = request_id.get()
            if rid:
                server.set_attribute("chatwell.request_id", rid)
            server.end()


class _Unrecorded:
    """What ``span`` yields when tracing is off: attributes set on it go nowhere."""

    __slots__ = ()

    def set(self, **attributes: Any) -> None:
        pass


class _Recorded:
    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def set(self, **attributes: Any) -> None:
        """Add attributes (``chatwell.<name>``); ``None`` values are left out."""
        self._span.set_attributes(_attributes(attributes))


SpanHandle = _Unrecorded | _Recorded
_OFF: AbstractContextManager[SpanHandle] = nullcontext(_Unrecorded())


def span(name: str, **attributes: Any) -> AbstractContextManager[SpanHandle]:
    """A child span of the current request's span, or nothing when the request is not traced.
    Attributes become ``chatwell.<name>``; pass ids and counts only, never user text or secrets."""
    tracer = active_tracer.get()
    if tracer is None:
        return _OFF
    return _recorded_span(tracer, name, attributes)


@contextmanager
def _recorded_span(tracer: Tracer, name: str, attributes: dict[str, Any]) -> Iterator[SpanHandle]:
    # Not made current: the chat stream is an async generator, and a span made current there would
    # leak into its consumer between yields and fail to detach when the stream ends in another task.
    child = tracer.start_span(name, attributes=_attributes(attributes))
    try:
        yield _Recorded(child)
    except Exception as exc:
        _mark_failed(child, type(exc).__name__)
        raise
    finally:
        child.end()


def _attributes(values: dict[str, Any]) -> dict[str, str | int | float | bool]:
    return {
        f"chatwell.{key}": value if isinstance(value, (str, int, float, bool)) else str(value)
        for key, value in values.items()
        if value is not None
    }


def _mark_failed(target: Span, description: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    target.set_status(Status(StatusCode.ERROR, description))
    target.set_attribute("error.type", description)
