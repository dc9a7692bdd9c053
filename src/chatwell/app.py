"""The application factory. ``create_app(settings)`` builds a server; nothing happens at import.

Start-up (the lifespan) opens the database, applies migrations, makes sure the default workspace
and its owner key exist, and starts the in-process background workers; shutdown stops them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from chatwell import __version__
from chatwell.api import dashboard, front_door, shared_chat, system, widget
from chatwell.api.body_limit import BodyLimitMiddleware
from chatwell.api.chatbase import routes as chatbase
from chatwell.api.chatbotiq import leads as chatbotiq_leads
from chatwell.api.chatbotiq import routes as chatbotiq
from chatwell.api.chatbots_v1 import routes as chatbots_v1
from chatwell.api.chatiq import routes as chatiq
from chatwell.api.client_limits import ClientConcurrencyMiddleware
from chatwell.api.cors import CORSMiddleware
from chatwell.api.deps import principal_of_request
from chatwell.api.devapi import routes as devapi
from chatwell.api.dialect import error_renderer
from chatwell.api.dify import routes as dify
from chatwell.api.errors import ErrorFormats, install_error_handlers, native_error
from chatwell.api.flowise import routes as flowise
from chatwell.api.mcp import PATH as MCP_PATH
from chatwell.api.mcp import McpEndpoint
from chatwell.api.native import bots as native_bots
from chatwell.api.native import chat as native_chat
from chatwell.api.native import handoff as native_handoff
from chatwell.api.native import keys as native_keys
from chatwell.api.native import leads as native_leads
from chatwell.api.native import search as native_search
from chatwell.api.native import sources as native_sources
from chatwell.api.openai import responses as openai_responses
from chatwell.api.openai import routes as openai_routes
from chatwell.api.openai import wire as openai_wire
from chatwell.api.sse import StreamSlots
from chatwell.embedders.base import Embedder
from chatwell.ingestion.queue import ProcrastinateQueue
from chatwell.ingestion.worker import IngestionWorker
from chatwell.knowledge import build_chat_service, build_knowledge
from chatwell.limits.policies import ChatLimits
from chatwell.limits.service import RateLimiter
from chatwell.observability.logs import protect_server_logs
from chatwell.observability.metrics import Metrics
from chatwell.observability.middleware import ObservabilityMiddleware
from chatwell.observability.tracing import Tracing, TracingMiddleware
from chatwell.runtime import Runtime
from chatwell.services.conversation_bus import build_conversation_bus
from chatwell.services.handoff import MISSED_AFTER
from chatwell.services.notifications import EmailWorker, SmtpConfig
from chatwell.services.recaptcha import SiteVerifyRecaptcha
from chatwell.services.webhooks import WebhookWorker
from chatwell.settings import Settings
from chatwell.storage import migrate
from chatwell.storage.database import Database

log = logging.getLogger("chatwell")

Announce = Callable[[str], None]


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def create_app(
    settings: Settings | None = None,
    *,
    announce: Announce = _print,
    offline_model: Embedder | None = None,
) -> FastAPI:
    """A chatwell server for ``settings`` (default: from the environment).

    ``announce`` receives the one-time messages meant for the operator's console (the generated
    owner key); they never go to the log. ``offline_model``: an already loaded offline embedding
    model to share instead of loading one for this app (see ``build_embedder``).
    """
    settings = settings or Settings()
    protect_server_logs()  # uvicorn's access log names every URL, ?api_key= included

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from chatwell.services import bootstrap

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(
            settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        runtime.db = db
        worker: IngestionWorker | None = None
        queue: ProcrastinateQueue | None = None
        webhooks = WebhookWorker(db, allow_private=settings.webhook_allow_private)
        runtime.webhooks = webhooks
        emails = EmailWorker(
            db,
            SmtpConfig.from_settings(settings),
            missed_after=MISSED_AFTER,
            public_url=settings.public_url,
        )
        runtime.emails = emails
        limiter = RateLimiter(
            settings.redis_url, fail_open=settings.rate_limit_failure_mode == "open"
        )
        limiter.metrics = runtime.metrics
        runtime.limits = ChatLimits(settings, limiter)
        bus = build_conversation_bus(settings, db)
        runtime.bus = bus
        runtime.recaptcha = (
            SiteVerifyRecaptcha(
                settings.recaptcha_secret_key.get_secret_value(), settings.recaptcha_verify_url
            )
            if settings.recaptcha_secret_key
            else None
        )
        chat = None
        try:
            if tracing is not None:
                tracing.start()
            if settings.auto_migrate:
                await migrate.upgrade(db)
            knowledge = build_knowledge(db, settings, offline_model=offline_model)
            runtime.knowledge = knowledge
            chat = runtime.chat = build_chat_service(db, settings, knowledge)
            chat.metrics = runtime.metrics
            chat.bus = bus
            chat.limits = runtime.limits
            if settings.queue == "procrastinate":
                # Workers elsewhere (`chatwell worker`) ingest; this process only queues.
                queue = ProcrastinateQueue(settings.resolved_database_url, knowledge.ingestor)
                await queue.open()
                if settings.auto_migrate:
                    await queue.ensure_schema()
                runtime.ingestion = queue
            else:
                worker = IngestionWorker(
                    knowledge.ingestor, concurrency=settings.ingestion_concurrency
                )
                runtime.ingestion = worker
            await bootstrap.on_start(db, settings, announce=announce)
            if worker is not None:
                worker.start()
            webhooks.start()
            emails.start()
            async with mcp_door.serving():
                yield
        finally:
            if worker is not None:
                await worker.stop()
            if queue is not None:
                await queue.close()
            await webhooks.stop()
            await emails.stop()
            if chat is not None:
                await chat.drain()
                await chat.models.aclose()
            await limiter.aclose()
            await bus.aclose()
            await db.dispose()
            if tracing is not None:
                await tracing.shutdown()  # flushes the last spans
            runtime.metrics.close()

    app = FastAPI(
        title="chatwell",
        version=__version__,
        summary="AI chatbots grounded in your own content, speaking every hosted platform's API.",
        lifespan=lifespan,
        docs_url=None,  # front_door serves /docs with its assets from the package (works offline)
        redoc_url=None,
    )
    mcp_door = McpEndpoint(principal_of_request)
    if settings.mcp_enabled:
        app.router.add_route(
            MCP_PATH, mcp_door, methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
    metrics = Metrics()
    formats = ErrorFormats()
    tracing = (
        Tracing(settings.otel_endpoint, service_name=settings.otel_service_name)
        if settings.otel_endpoint
        else None
    )
    runtime = app.state.runtime = Runtime(
        settings,
        metrics,
        formats,
        StreamSlots(settings.public_event_streams_per_conversation),
        tracing,
    )
    install_error_handlers(app, formats)
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_request_bytes,
        upload_limit=settings.max_upload_bytes,
        formats=formats,
    )
    app.add_middleware(
        ClientConcurrencyMiddleware,
        limit=settings.max_concurrent_requests_per_client,
        formats=formats,
        metrics=metrics,
    )
    app.add_middleware(CORSMiddleware, settings=settings, formats=formats)
    if tracing is not None:  # inside ObservabilityMiddleware, which assigns the request id
        app.add_middleware(TracingMiddleware, tracing=tracing)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    for router in (
        system.router,
        native_bots.router,
        native_sources.router,
        native_search.router,
        native_keys.router,
        native_chat.router,
        native_handoff.router,
        openai_routes.router,
        openai_responses.router,
        chatiq.router,
        chatbotiq.router,
        chatbots_v1.router,
        shared_chat.router,
        devapi.router,
        chatbase.router,
        native_leads.router,
        chatbotiq_leads.router,
        widget.router,
        dashboard.router,
        front_door.router,
        dify.router,
        flowise.router,
    ):
        app.include_router(router)
    # /v1 is OpenAI's (an unknown route there answers in its shape), but for the native API's
    # resources under it, which keep the native shape (and ChatbotIQ's /v1/public, below).
    formats.register(
        "/v1", openai_wire.openai_error, openai_wire.ERROR_DOC, openai_wire.error_headers
    )
    native = (native_bots, native_sources, native_search, native_keys, native_chat)
    native_routes = [r for m in (*native, native_handoff, native_leads) for r in m.router.routes]
    for prefix in {"/".join(r.path.split("/")[:3]) for r in native_routes}:  # /v1/bots, …
        formats.register(prefix, native_error)
    dialects = (
        (chatiq.PREFIXES, chatiq.chatiq_error, chatiq.ERROR_DOC),
        (chatbotiq.PREFIXES, chatbotiq.chatbotiq_error, chatbotiq.ERROR_DOC),
        (chatbots_v1.PREFIXES, chatbots_v1.chatbots_v1_error, chatbots_v1.ERROR_DOC),
        (devapi.PREFIXES, devapi.devapi_error, devapi.ERROR_DOC),
        (chatbase.PREFIXES, chatbase.chatbase_error, chatbase.ERROR_DOC),
        (dify.PREFIXES, dify.dify_error, dify.ERROR_DOC),
        (flowise.PREFIXES, flowise.flowise_error, flowise.ERROR_DOC),
        ((shared_chat.PATH,), shared_chat.either_error, shared_chat.ERROR_DOC),
    )
    for prefixes, fmt, doc in dialects:
        for prefix in prefixes:
            formats.register(prefix, error_renderer(fmt), doc)
    app.openapi = _openapi_with_extra_schemas(app)  # type: ignore[method-assign]
    return app


def create_served_app() -> FastAPI:
    """The factory ``chatwell serve --workers N`` gives each worker process: settings from the
    environment, and the process's logging configured as the CLI does for one process."""
    from chatwell.observability.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


def _openapi_with_extra_schemas(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Add the source-body models, which the mixed JSON/multipart endpoint references by hand."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            extra = native_sources.SOURCE_IN.json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components.update(extra.get("$defs", {}))
            for model in (chatbase.ChatbaseChatIn, devapi.DevChatIn):
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
            app.state.runtime.error_formats.document(schema)  # each door's real error responses
            app.openapi_schema = schema
        return app.openapi_schema

    return build
