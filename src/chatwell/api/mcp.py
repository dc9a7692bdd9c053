"""The Model Context Protocol door: chatwell's bots as tools for MCP clients (desktop assistants,
agent frameworks), on the official ``mcp`` SDK.

- Streamable HTTP at ``/mcp`` (stateless: every POST is whole; progress notifications arrive on
  its event stream), ``Authorization: Bearer <key>`` with the same keys and scopes as every door:
  a bot key sees its own bot only. ``chatwell mcp --bot SLUG`` serves the same tools over stdio
  for a desktop client on the machine that holds the data (scoped to that bot).
- Tools: ``list_bots``; ``search_knowledge(bot, query, k)`` → passages with titles, URLs and
  scores; ``ask(bot, question, conversation_id?)`` → the answer with its citations, with
  progress notifications while it is written. ``ask`` counts against the key's limits and the
  workspace's credit like any chat request. Failures are tool errors (``isError``) whose text
  ends with chatwell's stable code and message (``bot_not_found: bot not found``).

Like every door it only encodes: retrieval, the chat engine and the limits do the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from chatwell import __version__
from chatwell.api.deps import runtime_of
from chatwell.api.dialect import caller_of, check_key_for_bot
from chatwell.chat.service import ChatService
from chatwell.chat.turns import Caller as TurnCaller
from chatwell.chat.turns import open_turn
from chatwell.domain import events as ev
from chatwell.domain.auth import Principal
from chatwell.domain.models import Permission
from chatwell.errors import ChatwellError, InvalidRequest
from chatwell.retrieval.service import Retriever
from chatwell.services import bots, keys
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot

PATH = "/mcp"
DOOR = "mcp"  # the conversations' channel and session namespace
MAX_QUERY_CHARS = 2_000
PRINCIPAL_KEY = "chatwell.principal"
INSTRUCTIONS = (
    "chatwell's chatbots, each grounded in its own sources. list_bots names them; search_knowledge "
    "returns a bot's passages for a query; ask returns the bot's cited answer to a question."
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls a tool, and the services that answer it."""

    principal: Principal
    db: Database
    chat: ChatService
    retriever: Retriever
    request: Request | None = None  # the HTTP request (its Origin is checked like every door's)

    def admit(self, bot: Bot) -> None:
        """The key holds ``chat`` and, over HTTP, a browser's origin is one the key or the bot
        allows: the same check as every keyed door (``check_key_for_bot``)."""
        if self.request is None:
            keys.require(self.principal, Permission.CHAT)
        else:
            check_key_for_bot(self.request, bot, self.principal)

    def turn_caller(self) -> TurnCaller:
        """The caller of a chat turn (``open_turn``): over HTTP with the origin check."""
        if self.request is None:
            return TurnCaller(self.principal)
        return caller_of(self.request, self.principal)


Resolve = Callable[[Context], Caller]


def caller_of_request(ctx: Context) -> Caller:
    """The caller of a streamable HTTP request: the key authenticated by ``McpEndpoint``."""
    request = ctx.request_context.request
    if not isinstance(request, Request) or PRINCIPAL_KEY not in request.scope:
        raise ToolError("invalid_api_key: this MCP server needs a chatwell key")
    runtime = runtime_of(request)
    return Caller(
        request.scope[PRINCIPAL_KEY],
        runtime.db,
        runtime.chat,
        runtime.knowledge.retriever,
        request,
    )


def _failed(error: ChatwellError) -> ToolError:
    return ToolError(f"{error.code}: {error.message}")


def build_server(resolve: Resolve) -> MCPServer:
    server = MCPServer(
        name="chatwell", title="chatwell", version=__version__, instructions=INSTRUCTIONS
    )

    @server.tool(
        description="The bots this key can reach: id, slug (use either as `bot`) and name."
    )
    async def list_bots(ctx: Context) -> dict[str, Any]:
        caller = resolve(ctx)
        found = await bots.all_bots(caller.db, principal=caller.principal)
        return {"bots": [{"id": str(b.id), "slug": b.slug, "name": b.name} for b in found]}

    @server.tool(
        description="Search a bot's knowledge: the passages of its sources that best match `query`, "
        "with their titles, URLs and relevance scores."
    )
    async def search_knowledge(bot: str, query: str, ctx: Context, k: int = 5) -> dict[str, Any]:
        caller = resolve(ctx)
        if not query.strip() or len(query) > MAX_QUERY_CHARS:
            raise _failed(InvalidRequest(f"query must be 1 to {MAX_QUERY_CHARS} characters"))
        try:
            found = await bots.get_bot(caller.db, principal=caller.principal, ref=bot)
            caller.admit(found)
        except ChatwellError as exc:
            raise _failed(exc) from None
        result = await caller.retriever.search(bot_id=found.id, query=query, k=max(1, min(k, 50)))
        return {
            "relevant": result.relevant,
            "passages": [
                {
                    "title": p.title,
                    "url": p.url,
                    "score": round(p.score, 4),
                    "text": p.text,
                    "page": p.page,
                    "source_id": str(p.source_id),
                }
                for p in result.passages
            ],
        }

    @server.tool(
        description="Ask a bot a question: its answer, grounded in its sources, with citations. Pass the "
        "returned conversation_id to ask a follow-up in the same conversation."
    )
    async def ask(
        bot: str, question: str, ctx: Context, conversation_id: str | None = None
    ) -> dict[str, Any]:
        caller = resolve(ctx)
        try:
            opened = await open_turn(
                caller.chat,
                caller.turn_caller(),
                door=DOOR,
                bot=bot,
                question=question,
                conversation_id=conversation_id,
                require_credit=True,
            )
        except ChatwellError as exc:
            raise _failed(exc) from None
        steps = 0

        async def progress(event: ev.ChatEvent) -> None:
            nonlocal steps
            match event:
                case ev.Status(stage=stage):
                    steps += 1
                    await ctx.report_progress(steps, message=stage)
                case ev.Delta():
                    steps += 1
                    await ctx.report_progress(steps, message="generating")

        answer = await opened.turn.collect(on_event=progress)
        if answer.error is not None:
            raise ToolError(f"{answer.error.code}: {answer.error.message}")
        return {
            "answer": answer.text,
            "conversation_id": str(answer.conversation_id) if answer.conversation_id else None,
            "citations": [
                {
                    "index": c.index,
                    "title": c.title,
                    "url": c.url,
                    "page": c.page,
                    "score": round(c.score, 4),
                }
                for c in answer.citations
            ],
        }

    return server


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: authenticates the key (chatwell's 401/403 otherwise), then
    hands the request to the SDK's stateless session manager, which ``serving`` keeps running."""

    def __init__(self, authenticate: Callable[[Request], Any]) -> None:
        self.authenticate = authenticate
        self.manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Run the session manager for as long as the app serves. It holds an anyio task group,
        which must end in the task that began it: it gets a task of its own (a lifespan may be
        started and stopped from different tasks, as test fixtures do)."""
        # A session manager runs once: a new server for each start of the app.
        server = build_server(caller_of_request)
        # No DNS-rebinding guard: every request carries a key, and the server is not only on loopback.
        server.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager
        running, stop = asyncio.Event(), asyncio.Event()

        async def run() -> None:
            async with manager.run():
                running.set()
                await stop.wait()

        task = asyncio.ensure_future(run())
        started = asyncio.ensure_future(running.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not running.is_set():
            started.cancel()
            await task  # raises what stopped it
        self.manager = manager
        try:
            yield
        finally:
            self.manager = None
            stop.set()
            await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        principal = await self.authenticate(Request(scope, receive))
        if self.manager is None:
            raise ChatwellError("the MCP server is not running", code="service_unavailable")
        scope[PRINCIPAL_KEY] = principal
        await self.manager.handle_request(scope, receive, send)


def local_principal(bot: Any) -> Principal:
    """Over stdio, the local user acts with the scope of one bot (they hold its data already)."""
    return Principal(
        key_id=uuid.UUID(int=0),
        workspace_id=bot.workspace_id,
        bot_id=bot.id,
        is_owner=False,
        label="chatwell mcp (stdio)",
        prefix="",
        scopes=frozenset({Permission.CHAT.value}),
    )
