"""The ``chatwell`` command: run the server and manage workspaces, bots, keys and sources.

Management commands talk to the database directly (the same services the HTTP API calls), so
they work before a server runs. Output is for people by default and JSON with ``--json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from chatwell.errors import ChatwellError
from chatwell.settings import Settings, settings_error_line

app = typer.Typer(
    help="chatwell: AI chatbots grounded in your own content.",
    no_args_is_help=True,
    add_completion=False,
)
workspaces_app = typer.Typer(help="Manage workspaces (tenants).", no_args_is_help=True)
bots_app = typer.Typer(help="Manage bots.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
sources_app = typer.Typer(help="Add knowledge to bots.", no_args_is_help=True)
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(bots_app, name="bots")
app.add_typer(keys_app, name="keys")
app.add_typer(sources_app, name="sources")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data folder (default ./chatwell-data or CHATWELL_DATA_DIR)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy async URL (overrides the data dir's SQLite file)."
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WorkspaceOpt = Annotated[
    str | None,
    typer.Option("--workspace", "-w", help="Workspace id (default: the default workspace)."),
]


def _settings(data_dir: Path | None, database_url: str | None, **extra: Any) -> Settings:
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError) as exc:  # one line naming the variable, no traceback
        err_console.print(settings_error_line(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _run(
    settings: Settings, work: Callable[[Any], Awaitable[T]], *, migrate_first: bool = True
) -> T:
    """Open the database (migrated), run ``work(db)``, close; domain errors exit with code 1."""
    from chatwell.storage import migrate
    from chatwell.storage.database import Database

    async def main() -> T:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        try:
            if migrate_first:
                await migrate.upgrade(db)
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ChatwellError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


def _emit(as_json: bool, payload: Any, table: Table | str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=str, indent=2))
    elif table is not None:
        console.print(table)


async def _workspace_id(db: Any, workspace: str | None) -> uuid.UUID:
    from chatwell.errors import NotFound
    from chatwell.services import workspaces

    if workspace:
        try:
            return uuid.UUID(workspace)
        except ValueError:
            raise NotFound("workspace not found", code="workspace_not_found") from None
    default, _ = await workspaces.ensure_default_workspace(db, admin_secret=None)
    return default.id


# ---------------------------------------------------------------------------------------- serve

GRACEFUL_SECONDS = 30  # on SIGTERM, open streams get this long to finish


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    workers: Annotated[int, typer.Option(help="Number of API processes.")] = 1,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create a public demo bot on first start.")
    ] = False,
) -> None:
    """Run the HTTP server (every CHATWELL_* setting applies; see docs/configuration.md)."""
    import uvicorn

    from chatwell.app import create_app

    settings = _settings(data_dir, database_url, demo=demo or None)
    from chatwell.observability.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    console.print(
        f"chatwell is starting on [bold]http://{host}:{port}[/bold] "
        f"(data: {settings.data_dir}, API docs: http://{host}:{port}/docs)"
    )
    if workers > 1:
        if settings.auto_migrate:
            # Once, here, before the workers start: N workers migrating and seeding one database
            # at once race (on SQLite one finds the file locked and the whole server stops).
            from chatwell.services import bootstrap

            async def prepare(db: Any) -> None:
                await bootstrap.on_start(db, settings, announce=console.print)

            _run(settings, prepare)
        # Worker processes rebuild the app from the environment.
        os.environ["CHATWELL_DATA_DIR"] = str(settings.data_dir)
        if settings.database_url:
            os.environ["CHATWELL_DATABASE_URL"] = settings.database_url
        if demo:
            os.environ["CHATWELL_DEMO"] = "1"
        with _shared_metrics_dir(workers=workers):
            uvicorn.run(
                "chatwell.app:create_served_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=settings.log_level,
                proxy_headers=True,
                log_config=None,
                timeout_graceful_shutdown=GRACEFUL_SECONDS,
            )
    else:
        with _shared_metrics_dir(workers=1):
            uvicorn.run(
                create_app(settings),
                host=host,
                port=port,
                log_level=settings.log_level,
                proxy_headers=True,
                log_config=None,
                timeout_graceful_shutdown=GRACEFUL_SECONDS,
            )


@contextmanager
def _shared_metrics_dir(*, workers: int) -> Iterator[None]:
    """One folder for the metric files of every worker, so ``/metrics`` adds them all up: the
    operator's PROMETHEUS_MULTIPROC_DIR (made if missing), else with several workers a fresh
    temporary folder removed at exit. One process without it keeps its metrics in memory."""
    from chatwell.observability.metrics import MULTIPROC_ENV

    given = os.environ.get(MULTIPROC_ENV)
    if given or workers == 1:
        if given:
            Path(given).mkdir(parents=True, exist_ok=True)
        yield
        return
    folder = tempfile.mkdtemp(prefix="chatwell-metrics-")
    os.environ[MULTIPROC_ENV] = folder  # before uvicorn starts the workers, which inherit it
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


@app.command()
def mcp(
    bot: Annotated[
        str, typer.Option("--bot", help="The bot (id or slug) whose tools this server offers.")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the MCP tools of one bot over stdio, for a desktop client on this machine (Claude
    Desktop, an IDE): list_bots, search_knowledge and ask, scoped to that bot. Over the network,
    use the server's streamable HTTP endpoint /mcp with a key instead."""
    from chatwell.api.mcp import Caller, build_server, local_principal
    from chatwell.knowledge import build_chat_service, build_knowledge
    from chatwell.services import bots as bot_service

    settings = _settings(data_dir, database_url)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING
    )  # stdout carries the protocol only

    async def work(db: Any) -> None:
        async with db.read() as session:
            found = await bot_service.find_bot(session, bot)
        if found is None:
            raise bot_service.bot_not_found()
        knowledge = build_knowledge(db, settings)
        chat = build_chat_service(db, settings, knowledge)
        caller = Caller(local_principal(found), db, chat, knowledge.retriever)
        try:
            await build_server(lambda _ctx: caller).run_stdio_async()
        finally:
            await chat.drain()
            await chat.models.aclose()

    _run(settings, work)


@app.command()
def worker(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: CHATWELL_INGESTION_CONCURRENCY).")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queue is empty.")] = False,
) -> None:
    """Run ingestion jobs from the procrastinate queue (CHATWELL_QUEUE=procrastinate, PostgreSQL).

    Start as many as you like, on any machine that reaches the database; each claims one source at
    a time under a lease, so no source is ingested twice and a dead worker's source is taken over.
    """
    from chatwell.ingestion.queue import ProcrastinateQueue
    from chatwell.knowledge import build_knowledge

    settings = _settings(data_dir, database_url)
    if settings.queue != "procrastinate":
        err_console.print(
            "[red]error[/red]: `chatwell worker` runs the procrastinate queue; "
            "set CHATWELL_QUEUE=procrastinate (and a PostgreSQL CHATWELL_DATABASE_URL)"
        )
        raise typer.Exit(2)

    async def work(db: Any) -> None:
        knowledge = build_knowledge(db, settings)
        queue = ProcrastinateQueue(settings.resolved_database_url, knowledge.ingestor)
        await queue.open()
        try:
            if settings.auto_migrate:
                await queue.ensure_schema()
            slots = concurrency or settings.ingestion_concurrency
            console.print(f"chatwell worker: {knowledge.ingestor.worker_id}, concurrency {slots}")
            if burst:
                await queue.burst(concurrency=slots)
            else:
                await queue.run_worker(concurrency=slots)
        finally:
            await queue.close()

    _run(settings, work, migrate_first=settings.auto_migrate)


@app.command("setup-token")
def setup_token(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the token that creating the first dashboard account (/dashboard/setup) needs."""
    from chatwell.services import accounts, server_keys

    settings = _settings(data_dir, database_url)

    async def work(db: Any) -> str | None:
        if not await accounts.needs_setup(db):
            return None
        return server_keys.setup_token(await server_keys.server_key(db))

    token = _run(settings, work)
    if token is None:
        err_console.print(
            "The dashboard already has an owner: sign in at /dashboard/login "
            "(`chatwell reset-password EMAIL` if the password is lost)."
        )
        raise typer.Exit(1)
    typer.echo(token)


@app.command("reset-password")
def reset_password(
    email: Annotated[str, typer.Argument(help="The dashboard account's email address.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the new password from the first "
            "line of standard input (scripts) instead of asking.",
        ),
    ] = False,
) -> None:
    """Set a new dashboard password for an account (forgotten password); every session of it ends."""
    import sys

    from chatwell.services import members

    settings = _settings(data_dir, database_url)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def work(db: Any) -> Any:
        return await members.reset_password(db, email=email, password=password)

    user = _run(settings, work)
    console.print(
        f"The password of {user.email} is changed; its sessions were signed out.", markup=False
    )


@app.command()
def migrate(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (up to the newest by default)."""
    from chatwell.storage import migrate as migrations

    settings = _settings(data_dir, database_url)

    async def work(db: Any) -> str | None:
        await migrations.upgrade(db, revision)
        if settings.queue == "procrastinate":
            from chatwell.ingestion.queue import ProcrastinateQueue

            queue = ProcrastinateQueue(settings.resolved_database_url)
            await queue.open()
            try:
                await queue.ensure_schema()
            finally:
                await queue.close()
        return await migrations.current_revision(db)

    current = _run(settings, work, migrate_first=False)
    console.print(f"database at revision {current}")


# -------------------------------------------------------------------------------------- backups


def _offline(work: Callable[[], T]) -> T:
    """Run a command that needs no event loop; domain errors exit with code 1."""
    try:
        return work()
    except ChatwellError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy the SQLite database to PATH, consistently, while the server runs (PostgreSQL: pg_dump)."""
    from chatwell.storage import backup as backups

    settings = _settings(data_dir, database_url)
    info = _offline(
        lambda: backups.backup_sqlite(settings.resolved_database_url, path, overwrite=force)
    )
    _emit(
        as_json,
        {"path": str(info.path), "bytes": info.bytes, "revision": info.revision},
        f"backed up to {info.path} ({info.bytes} bytes, migration {info.revision})",
    )


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="A backup written by `chatwell backup`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing database, even one a running "
            "server holds (restart that server afterwards).",
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore the SQLite database from PATH (checked first: a chatwell database at this migration)."""
    from chatwell.storage import backup as backups

    settings = _settings(data_dir, database_url)
    info = _offline(
        lambda: backups.restore_sqlite(settings.resolved_database_url, path, force=force)
    )
    _emit(
        as_json,
        {"path": str(info.path), "bytes": info.bytes, "revision": info.revision},
        f"restored {path} into {info.path} (migration {info.revision})",
    )


# ----------------------------------------------------------------------------------- workspaces


@workspaces_app.command("create")
def workspaces_create(
    name: str, data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: JsonFlag = False
) -> None:
    """Create a workspace and print its owner key (shown only now)."""
    from chatwell.services import workspaces

    ws, secret = _run(
        _settings(data_dir, database_url), lambda db: workspaces.create_workspace(db, name=name)
    )
    if as_json:
        _emit(True, {"id": str(ws.id), "name": ws.name, "owner_key": secret})
    else:
        console.print(f"workspace [bold]{ws.name}[/bold] created: {ws.id}")
        console.print(f"owner key (shown only now): [bold]{secret}[/bold]")


@workspaces_app.command("list")
def workspaces_list(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: JsonFlag = False
) -> None:
    """List workspaces."""
    from chatwell.services import workspaces

    rows = _run(_settings(data_dir, database_url), workspaces.list_workspaces)
    table = Table("id", "name", "default", "bots", "created")
    for r in rows:
        table.add_row(
            str(r.workspace.id),
            r.workspace.name,
            "yes" if r.workspace.is_default else "",
            str(r.bot_count),
            r.workspace.created_at.isoformat(timespec="seconds"),
        )
    _emit(
        as_json,
        [
            {
                "id": str(r.workspace.id),
                "name": r.workspace.name,
                "is_default": r.workspace.is_default,
                "bot_count": r.bot_count,
                "created_at": r.workspace.created_at,
            }
            for r in rows
        ],
        table,
    )


@workspaces_app.command("credit")
def workspaces_credit(
    balance: Annotated[str, typer.Argument(help="Credit in USD (e.g. 25.00), or 'unlimited'.")],
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a workspace's credit; at zero, chats end with `service_unavailable`."""
    from decimal import Decimal, InvalidOperation

    from chatwell.services import workspaces

    try:
        amount = None if balance == "unlimited" else Decimal(balance)
    except InvalidOperation:
        err_console.print("[red]error[/red]: balance must be a number or 'unlimited'")
        raise typer.Exit(2) from None

    async def work(db: Any) -> Any:
        return await workspaces.set_credit(
            db, workspace_id=await _workspace_id(db, workspace), balance=amount
        )

    ws = _run(_settings(data_dir, database_url), work)
    shown = "unlimited" if ws.credit_balance is None else str(ws.credit_balance)
    _emit(
        as_json, {"id": str(ws.id), "credit_balance": shown}, f"workspace {ws.name}: credit {shown}"
    )


# ----------------------------------------------------------------------------------------- bots


def _bot_json(bot: Any) -> dict[str, Any]:
    from chatwell.api.native.schemas import BotOut

    return BotOut.of(bot).model_dump(mode="json")


@bots_app.command("list")
def bots_list(
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """List the bots of a workspace."""
    from chatwell.services import bots
    from chatwell.services.principals import owner_principal

    async def work(db: Any) -> list[Any]:
        principal = owner_principal(await _workspace_id(db, workspace))
        found, cursor = [], None
        while True:
            page = await bots.list_bots(db, principal=principal, limit=100, cursor=cursor)
            found.extend(page.items)
            if not page.has_more:
                return found
            cursor = page.next_cursor

    rows = _run(_settings(data_dir, database_url), work)
    table = Table("id", "slug", "name", "public")
    for b in rows:
        table.add_row(str(b.id), b.slug, b.name, "yes" if b.public else "")
    _emit(as_json, [_bot_json(b) for b in rows], table)


@bots_app.command("create")
def bots_create(
    name: str,
    slug: Annotated[
        str | None, typer.Option(help="URL-safe unique slug (default: from the name).")
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="Anyone may chat with it (widget, 001).")
    ] = False,
    instructions: Annotated[str | None, typer.Option(help="System instructions.")] = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a bot."""
    from chatwell.domain.bots import BotCreate
    from chatwell.services import bots

    try:
        data = BotCreate(name=name, slug=slug, public=public, instructions=instructions)
    except ValueError as exc:
        err_console.print(f"[red]error[/red] (invalid_request): {exc}")
        raise typer.Exit(1) from None

    async def work(db: Any) -> Any:
        return await bots.create_bot(db, workspace_id=await _workspace_id(db, workspace), data=data)

    bot = _run(_settings(data_dir, database_url), work)
    if as_json:
        _emit(True, _bot_json(bot))
    else:
        console.print(f"bot [bold]{bot.name}[/bold] created: id {bot.id}, slug {bot.slug}")


@bots_app.command("delete")
def bots_delete(
    bot: str,
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete a bot (by id or slug) with its sources, conversations and keys."""
    from chatwell.services import bots
    from chatwell.services.principals import owner_principal

    async def work(db: Any) -> None:
        principal = owner_principal(await _workspace_id(db, workspace))
        await bots.delete_bot(db, principal=principal, ref=bot)

    _run(_settings(data_dir, database_url), work)
    _emit(as_json, {"deleted": bot}, f"bot {bot} deleted")


# ----------------------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    label: str,
    bot: Annotated[str | None, typer.Option(help="Limit the key to this bot (id or slug).")] = None,
    origin: Annotated[
        list[str] | None, typer.Option("--origin", help="Allowed origin (repeatable).")
    ] = None,
    daily_limit: Annotated[int | None, typer.Option(help="Messages per day.", min=1)] = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print its secret (shown only now)."""
    from chatwell.domain.bots import check_origin
    from chatwell.services import bots, keys
    from chatwell.services.principals import owner_principal

    try:
        origins = [check_origin(o) for o in origin or []]
    except ValueError as exc:
        err_console.print(f"[red]error[/red] (invalid_request): {exc}")
        raise typer.Exit(1) from None

    async def work(db: Any) -> Any:
        workspace_id = await _workspace_id(db, workspace)
        bot_id = None
        if bot is not None:
            bot_id = (await bots.get_bot(db, principal=owner_principal(workspace_id), ref=bot)).id
        return await keys.create_key(
            db,
            workspace_id=workspace_id,
            label=label,
            bot_id=bot_id,
            allowed_origins=origins,
            daily_message_limit=daily_limit,
            origin="cli",
        )

    key, secret = _run(_settings(data_dir, database_url), work)
    if as_json:
        _emit(
            True,
            {
                "id": str(key.id),
                "key": secret,
                "prefix": key.prefix,
                "label": key.label,
                "bot_id": str(key.bot_id) if key.bot_id else None,
            },
        )
    else:
        console.print(f"key [bold]{label}[/bold] created: id {key.id}")
        console.print(f"secret (shown only now): [bold]{secret}[/bold]")


@keys_app.command("list")
def keys_list(
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """List the active keys of a workspace (prefixes only)."""
    from chatwell.services import keys

    async def work(db: Any) -> list[Any]:
        workspace_id = await _workspace_id(db, workspace)
        found, cursor = [], None
        while True:
            page = await keys.list_keys(db, workspace_id=workspace_id, limit=100, cursor=cursor)
            found.extend(page.items)
            if not page.has_more:
                return found
            cursor = page.next_cursor

    rows = _run(_settings(data_dir, database_url), work)
    table = Table("id", "prefix", "label", "scope", "last used")
    for k in rows:
        table.add_row(
            str(k.id),
            k.prefix,
            k.label,
            f"bot {k.bot_id}" if k.bot_id else "workspace",
            k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never",
        )
    _emit(
        as_json,
        [
            {
                "id": str(k.id),
                "prefix": k.prefix,
                "label": k.label,
                "bot_id": str(k.bot_id) if k.bot_id else None,
                "is_owner": k.is_owner,
                "last_used_at": k.last_used_at,
                "created_at": k.created_at,
            }
            for k in rows
        ],
        table,
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: str,
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key; it stops working on the next request."""
    from chatwell.errors import NotFound
    from chatwell.services import keys

    async def work(db: Any) -> None:
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            raise NotFound("key not found", code="key_not_found") from None
        await keys.revoke_key(db, workspace_id=await _workspace_id(db, workspace), key_id=parsed)

    _run(_settings(data_dir, database_url), work)
    _emit(as_json, {"revoked": key_id}, f"key {key_id} revoked")


# -------------------------------------------------------------------------------------- sources


@sources_app.command("add")
def sources_add(
    bot: Annotated[str, typer.Argument(help="Bot id or slug.")],
    file: Annotated[
        Path | None,
        typer.Option(help="A file: pdf, docx, html, md, txt, csv.", exists=True, dir_okay=False),
    ] = None,
    url: Annotated[str | None, typer.Option(help="A web page.")] = None,
    crawl: Annotated[
        bool, typer.Option("--crawl", help="With --url: also the site's other pages.")
    ] = False,
    max_pages: Annotated[
        int, typer.Option(help="With --crawl: at most this many pages.", min=1, max=5000)
    ] = 50,
    text: Annotated[str | None, typer.Option(help="Raw text.")] = None,
    title: Annotated[str, typer.Option(help="Title for --text.")] = "",
    question: Annotated[
        str | None, typer.Option(help="A Q&A pair's question (with --answer).")
    ] = None,
    answer: Annotated[str | None, typer.Option(help="A Q&A pair's answer.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Ingest now and show progress (--no-wait leaves it to a server).")
    ] = True,
    workspace: WorkspaceOpt = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a source to a bot and ingest it, with a progress bar."""
    from chatwell.api.native.schemas import SourceOut
    from chatwell.domain.sources import QASourceIn, TextSourceIn, UrlSourceIn
    from chatwell.services import sources
    from chatwell.services.principals import owner_principal

    given = [x is not None for x in (file, url, text, question)]
    if sum(given) != 1 or (question is not None) != (answer is not None):
        err_console.print(
            "[red]error[/red]: give exactly one of --file, --url, --text, --question/--answer"
        )
        raise typer.Exit(2)
    settings = _settings(data_dir, database_url)
    if file is not None and file.stat().st_size > settings.max_upload_bytes:
        err_console.print(
            f"[red]error[/red] (payload_too_large): {file} is over {settings.max_upload_bytes} bytes"
        )
        raise typer.Exit(1)
    try:
        if url is not None:
            spec: Any = UrlSourceIn(type="url", url=url, crawl=crawl, max_pages=max_pages)
        elif text is not None:
            spec = TextSourceIn(type="text", title=title, text=text)
        elif question is not None:
            spec = QASourceIn(type="qa", question=question, answer=answer or "")
        else:
            spec = None
    except ValueError as exc:
        err_console.print(f"[red]error[/red] (invalid_request): {exc}")
        raise typer.Exit(1) from None

    async def work(db: Any) -> Any:
        principal = owner_principal(await _workspace_id(db, workspace))
        if file is not None:
            source = await sources.add_file_source(
                db,
                principal=principal,
                bot_ref=bot,
                filename=file.name,
                content=file.read_bytes(),
                declared_type=None,
            )
        elif isinstance(spec, UrlSourceIn):
            source = await sources.add_url_source(db, principal=principal, bot_ref=bot, data=spec)
        elif isinstance(spec, TextSourceIn):
            source = await sources.add_text_source(db, principal=principal, bot_ref=bot, data=spec)
        else:
            source = await sources.add_qa_source(db, principal=principal, bot_ref=bot, data=spec)
        if wait:
            source = await _ingest_with_progress(db, settings, source.id, quiet=as_json)
        return source

    source = _run(settings, work)
    if as_json:
        _emit(True, SourceOut.of(source).model_dump(mode="json"))
    elif source.status == "failed":
        err_console.print(f"[red]failed[/red] ({source.error_code}): {source.error}")
    else:
        console.print(
            f"source {source.id}: {source.status}, {source.chunk_count} chunks ({source.title})"
        )
    if source.status == "failed":
        raise typer.Exit(1)


async def _ingest_with_progress(
    db: Any, settings: Settings, source_id: uuid.UUID, *, quiet: bool
) -> Any:
    """Ingest ``source_id`` (and the pages a crawl finds) here, or follow a server doing it."""
    from rich.progress import Progress

    from chatwell.knowledge import build_knowledge
    from chatwell.services import sources

    ingestor = build_knowledge(db, settings).ingestor
    with Progress(console=err_console, disable=quiet, transient=True) as progress:
        task = progress.add_task("ingesting", total=1.0)
        while ids := await sources.unfinished(db, source_id):
            claimed = False
            for sid in ids:
                if await ingestor.claim_source(sid):
                    claimed = True
                    await ingestor.process_source(sid)
                    progress.update(task, description=f"ingested {sid}")
            if not claimed:  # another process (a running server) has it: follow its progress
                current = await sources.source_by_id(db, source_id)
                progress.update(task, completed=current.progress if current else 1.0)
                await asyncio.sleep(0.5)
        progress.update(task, completed=1.0)
    return await sources.source_by_id(db, source_id)


# ----------------------------------------------------------------------------------------- eval

eval_app = typer.Typer(help="Measure quality on public data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
def eval_retrieval(
    dataset_dir: Annotated[
        Path, typer.Argument(help="BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")
    ],
    split: Annotated[str, typer.Option(help="Which qrels file to score.")] = "test",
    as_json: JsonFlag = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep embeddings here between runs (default ~/.cache/chatwell)."),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(help="Override the fusion weight of the vector side.", min=0, max=1),
    ] = None,
) -> None:
    """Index a dataset with the server's ingestion code and score its queries (hybrid, BM25, dense)."""
    from chatwell.evaluation.retrieval import evaluate, load_beir

    if not (dataset_dir / "corpus.jsonl").is_file():
        err_console.print(f"[red]error[/red]: {dataset_dir} has no corpus.jsonl")
        raise typer.Exit(2)
    if not (dataset_dir / "qrels" / f"{split}.tsv").is_file():
        err_console.print(f"[red]error[/red]: {dataset_dir} has no qrels/{split}.tsv")
        raise typer.Exit(2)
    dataset = load_beir(dataset_dir, split)
    cache = cache_dir or Path.home() / ".cache" / "chatwell"
    result = asyncio.run(
        evaluate(
            dataset, cache_dir=cache, alpha=alpha, progress=None if as_json else err_console.print
        )
    )
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("run", "nDCG@10", "recall@10", "recall@100")
    for name, metrics in [("hybrid", result), *result["baselines"].items()]:
        table.add_row(
            name,
            f"{metrics['ndcg@10']:.4f}",
            f"{metrics['recall@10']:.4f}",
            f"{metrics['recall@100']:.4f}",
        )
    console.print(table)
    console.print(
        f"{result['queries']} queries, {result['docs']} docs, {result['chunks']} chunks; "
        f"indexed in {result['index_seconds']}s; query p50 {result['query_p50_ms']} ms"
    )


@eval_app.command("answers")
def eval_answers(
    dataset_dir: Annotated[
        Path,
        typer.Argument(
            help="A folder of ../shared/eval (TechQA, WixQA, E-Manual QA), "
            "a BEIR folder, or questions.jsonl + pages/ (a documentation site)."
        ),
    ],
    split: Annotated[
        str,
        typer.Option(
            help="all; calibration (every third question) or report (the others); "
            "a BEIR qrels name."
        ),
    ] = "all",
    limit: Annotated[
        int | None, typer.Option(help="Ask only the first N questions of each set.", min=1)
    ] = None,
    as_json: JsonFlag = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep embeddings here between runs (default ~/.cache/chatwell)."),
    ] = None,
    details: Annotated[
        Path | None,
        typer.Option(
            help="Write one JSON line per question here (answer, "
            "citations, the offline judgement's support)."
        ),
    ] = None,
) -> None:
    """Build a bot with the server's ingestion, ask every question through the chat engine (the
    offline answerer, or the model CHATWELL_LLM_* configures) and score the answers."""
    from chatwell.evaluation.answers import evaluate_answers
    from chatwell.evaluation.datasets import DatasetError, load_answer_sets

    try:
        sets = load_answer_sets(dataset_dir, split=split)
    except (DatasetError, OSError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    cache = cache_dir or Path.home() / ".cache" / "chatwell"
    records: list[dict[str, Any]] = []
    result = asyncio.run(
        evaluate_answers(
            sets,
            cache_dir=cache,
            limit=limit,
            details=records.append,
            progress=None if as_json else err_console.print,
        )
    )
    if details is not None:
        details.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("figure", "value")
    for name, value in result.items():
        if not isinstance(value, dict):
            table.add_row(name, "-" if value is None else str(value))
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
