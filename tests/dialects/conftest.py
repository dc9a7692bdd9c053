"""A real uvicorn serving chatwell with one bot that knows its business hours, and its keys.

The seed documents' examples use the slug ``support-bot``, so the bot has exactly that slug.
Requests in the contract tests are the documents' own, with only the base URL and key changed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app
from tests.services import WORKER, LiveServers, copy_database

HOURS = (
    "Business hours: Our business hours are Monday through Friday, 9 AM to 5 PM EST. "
    "On weekends the office is closed and questions wait for Monday."
)
GETTING_STARTED = (
    "Getting started: To get started, you need to create an account and add your first "
    "document in the dashboard."
)


@dataclass
class World:
    base: str
    app: Any
    bot_id: str
    bot_slug: str
    bot_key: str  # scoped to support-bot: chat, conversations:read and :write
    workspace_key: str
    admin_key: str = ADMIN_KEY

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)


def wait_ready(client: httpx.Client, bot: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sources = client.get(f"/v1/bots/{bot}/sources").json()["data"]
        if sources and all(s["status"] in ("ready", "failed") for s in sources):
            assert all(s["status"] == "ready" for s in sources), sources
            return
        time.sleep(0.05)
    raise AssertionError("sources did not finish ingesting")


def seed_bot(
    client: httpx.Client,
    *,
    name: str = "Support Bot",
    slug: str = "support-bot",
    texts: tuple[tuple[str, str], ...] = (
        ("Business hours", HOURS),
        ("Getting Started", GETTING_STARTED),
    ),
    **fields: Any,
) -> dict[str, Any]:
    bot = client.post("/v1/bots", json={"name": name, "slug": slug, **fields})
    assert bot.status_code == 201, bot.text
    for title, text in texts:
        added = client.post(
            f"/v1/bots/{slug}/sources", json={"type": "text", "title": title, "text": text}
        )
        assert added.status_code == 202, added.text
    if texts:
        wait_ready(client, slug)
    return bot.json()


@dataclass(frozen=True)
class _Seed:
    """A world's database and data directory once its bot, sources and keys are in, kept to be
    copied: ingesting the seed documents through a server took most of a world's set-up."""

    database_url: str
    data_dir: Path
    bot: dict[str, Any]
    bot_key: str
    workspace_key: str


_seeds: dict[str, _Seed] = {}  # per backend, in this process (one xdist worker)


def _seed_world(admin: httpx.Client) -> tuple[dict[str, Any], str, str]:
    bot = seed_bot(admin, public=True)
    # The documented flows read transcripts (the developer API's sessions report) and delete
    # them (Dify's conversations): granted explicitly, a bot key chats only by default.
    bot_key = admin.post(
        "/v1/keys",
        json={
            "label": "support-bot key",
            "bot_id": bot["id"],
            "scopes": ["chat", "conversations:read", "conversations:write"],
        },
    ).json()["key"]
    workspace_key = admin.post("/v1/keys", json={"label": "workspace key"}).json()["key"]
    return bot, bot_key, workspace_key


def _make_seed(
    backend: str,
    database_url: str,
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> _Seed:
    """Seed a copy of this test's fresh database through a server of its own, stopped before
    the copy is kept."""
    where = tmp_path_factory.mktemp(f"world-seed-{backend}")
    if backend == "postgres":
        url = request.getfixturevalue("postgres_server").url(f"world_seed_{WORKER}".lower())
    else:
        url = f"sqlite+aiosqlite:///{where / 'chatwell.db'}"
    copy_database(database_url, url, request)
    app = build_app(
        make_settings(database_url=url, data_dir=where / "data"), announce=lambda _: None
    )
    with LiveServers(where / "logs") as servers, admin_client(servers.start(app)) as admin:
        bot, bot_key, workspace_key = _seed_world(admin)
    return _Seed(url, where / "data", bot, bot_key, workspace_key)


def admin_client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


@pytest.fixture
def start_world(
    make_settings: Callable[..., Settings],
    live_server: Any,
    backend: str,
    database_url: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., World]:
    """``start_world(**settings)``: a server on this test's own database holding the support bot,
    its two documents and the two keys. With the default settings the database is a copy of one
    seeded once per backend and worker; a world with settings of its own (a database, limits,
    timeouts, a model) is seeded through its own server, the state its test was written for
    (the SQLite lock tests take the write lock on a server that has served the seeding)."""

    def start(**settings: Any) -> World:
        config = make_settings(**settings)
        if settings:  # seeded through its own server, as its settings say
            app = build_app(config, announce=lambda _: None)
            base = live_server.start(app)
            with admin_client(base) as admin:
                bot, bot_key, workspace_key = _seed_world(admin)
            return World(base, app, bot["id"], bot["slug"], bot_key, workspace_key)
        if backend not in _seeds:
            _seeds[backend] = _make_seed(
                backend, database_url, make_settings, request, tmp_path_factory
            )
        seed = _seeds[backend]
        copy_database(seed.database_url, database_url, request)
        shutil.copytree(seed.data_dir, config.data_dir, dirs_exist_ok=True)
        app = build_app(config, announce=lambda _: None)
        base = live_server.start(app)
        return World(base, app, seed.bot["id"], seed.bot["slug"], seed.bot_key, seed.workspace_key)

    return start


@pytest.fixture
def world(start_world: Callable[..., World]) -> Iterator[World]:
    yield start_world()


def empty_wallet(database_url: str) -> None:
    """Set the default workspace's credit to zero, through the service, from outside the server."""
    import asyncio

    from chatwell.services import workspaces
    from chatwell.storage.database import Database

    async def run() -> None:
        db = Database(database_url)
        try:
            default = await workspaces.get_default_workspace(db)
            assert default is not None
            await workspaces.set_credit(db, workspace_id=default.id, balance=0)
        finally:
            await db.dispose()

    asyncio.run(run())
