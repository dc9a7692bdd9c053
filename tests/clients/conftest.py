"""A real uvicorn serving chatwell for the published AI clients: one bot answering with the offline
answerer, and one answering through a scripted OpenAI-compatible model (``tests.upstream``) that
calls tools and writes JSON. SQLite only: these tests are about the wire, not the storage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import seed_bot
from tests.helpers import build_app
from tests.upstream import scripted_upstream

SHIPPING = (
    "Shipping to Norway: Parcels to Norway take four days. Express delivery to Norway takes one day. "
    "Returns from Norway are free within thirty days."
)


@dataclass
class Served:
    base: str
    app: Any
    bot: dict[str, Any]
    bot_key: str  # reaches support-bot only
    other_key: str  # reaches other-bot only
    database_url: str
    upstream: Any = None  # the scripted model's app (its ``state.bodies``), when there is one

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        )


@pytest.fixture
def serve(live_server: Any, tmp_path: Path) -> Callable[..., Served]:
    def start(
        *, model: bool = False, structured: dict[str, Any] | None = None, **settings: Any
    ) -> Served:
        upstream = None
        if model:
            upstream = scripted_upstream(
                "Parcels to Norway take four days [1].", structured=structured
            )
            settings["llm_base_url"] = live_server.start(upstream) + "/v1"
            settings["llm_model"] = "scripted"
        data_dir = tmp_path / ("model" if model else "offline")
        database_url = f"sqlite+aiosqlite:///{data_dir / 'chatwell.db'}"
        app = build_app(
            Settings(data_dir=data_dir, database_url=database_url, admin_key=ADMIN_KEY, **settings),
            announce=lambda _: None,
        )
        base = live_server.start(app)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as admin:
            bot = seed_bot(
                admin, name="Support Bot", slug="support-bot", texts=(("Shipping", SHIPPING),)
            )
            other = seed_bot(admin, name="Other Bot", slug="other-bot", texts=())
            bot_key = admin.post("/v1/keys", json={"label": "support", "bot_id": bot["id"]}).json()[
                "key"
            ]
            other_key = admin.post(
                "/v1/keys", json={"label": "other", "bot_id": other["id"]}
            ).json()["key"]
        return Served(base, app, bot, bot_key, other_key, database_url, upstream)

    return start


@pytest.fixture
def offline(serve: Callable[..., Served]) -> Served:
    return serve()


@pytest.fixture
def modelled(serve: Callable[..., Served]) -> Served:
    return serve(model=True)


@pytest.fixture
def admin_key() -> str:
    return ADMIN_KEY


def conversations(served: Served) -> list[dict[str, Any]]:
    with served.admin() as http:
        return http.get("/v1/conversations", params={"bot_id": served.bot["id"]}).json()["data"]


__all__ = ["Served", "conversations", "Iterator"]
