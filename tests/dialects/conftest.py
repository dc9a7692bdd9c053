"""A real uvicorn serving chatwell with one bot that knows its business hours, and its keys.

The seed documents' examples use the slug ``support-bot``, so the bot has exactly that slug.
Requests in the contract tests are the documents' own, with only the base URL and key changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

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


@pytest.fixture
def start_world(make_settings: Callable[..., Settings], live_server: Any) -> Callable[..., World]:
    def start(**settings: Any) -> World:
        app = build_app(make_settings(**settings), announce=lambda _: None)
        base = live_server.start(app)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as admin:
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
        return World(base, app, bot["id"], bot["slug"], bot_key, workspace_key)

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
