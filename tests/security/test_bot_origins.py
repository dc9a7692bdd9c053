"""A bot's allowed origins hold on every keyed door (issue 19, item 16).

The native and OpenAI doors ignored the bot's ``allowed_origins`` for keyed requests while four
other doors checked them. Every keyed door now goes through one check
(``api.dialect.check_key_for_bot``): a browser request (one with an ``Origin``) about a bot that
names domains comes from one of them, unless the key names its own origins (checked when it was
authenticated); requests without an Origin (servers) are not browser calls and pass.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.security.tenants import client_for

SHOP, EVIL, PARTNER = "https://shop.example", "https://evil.example", "https://partner.example"
DOORS = [
    ("native chat", "/v1/bots/fenced/chat", {"message": "hi", "stream": False}),
    ("native search", "/v1/bots/fenced/search", {"query": "hi"}),
    (
        "openai",
        "/v1/chat/completions",
        {"model": "fenced", "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("chatiq", "/api/chat", {"message": "hi", "bot_slug": "fenced", "stream": False}),
    ("devapi", "/api/v1/chat", {"message": "hi", "bot_id": "fenced"}),
    (
        "chatbase",
        "/api/v1/chat",
        {"messages": [{"role": "user", "content": "hi"}], "chatbotId": "fenced"},
    ),
    ("chatbots_v1", "/api/v1/chatbots/fenced/chat", {"message": "hi", "stream": False}),
]


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(environment="production")  # development lets any origin read any answer


@pytest.fixture
async def keys(app: FastAPI) -> dict[str, str]:
    async with client_for(app, ADMIN_KEY) as owner:
        bot = await owner.post(
            "/v1/bots", json={"name": "Fenced", "slug": "fenced", "allowed_origins": [SHOP]}
        )
        assert bot.status_code == 201, bot.text
        made = {}
        for name, body in (
            ("bot", {"bot_id": "fenced"}),
            ("workspace", {}),
            ("partner", {"bot_id": "fenced", "allowed_origins": [PARTNER]}),
        ):
            made[name] = (await owner.post("/v1/keys", json={"label": name, **body})).json()["key"]
    return {"owner": ADMIN_KEY, **made}


async def call(
    app: FastAPI, key: str, path: str, body: dict[str, Any], origin: str | None
) -> httpx.Response:
    async with client_for(app, key) as client:
        return await client.post(path, json=body, headers={"Origin": origin} if origin else {})


@pytest.mark.parametrize("door,path,body", DOORS, ids=[d[0] for d in DOORS])
async def test_every_keyed_door_checks_the_bots_origins(
    app: FastAPI, keys: dict[str, str], door: str, path: str, body: dict[str, Any]
) -> None:
    for kind in ("owner", "workspace", "bot"):
        refused = await call(app, keys[kind], path, body, EVIL)
        assert refused.status_code == 403, (door, kind, refused.text)
        assert "origin_not_allowed" in refused.text.lower(), (door, kind, refused.text)
        assert "access-control-allow-origin" not in refused.headers
        allowed = await call(app, keys[kind], path, body, SHOP)
        assert allowed.status_code == 200, (door, kind, allowed.text)
        assert allowed.headers["access-control-allow-origin"] == SHOP
        assert (
            await call(app, keys[kind], path, body, None)
        ).status_code == 200  # a server, not a browser
    # A key bound to its own origins decides for itself: its origin passes, the bot's is not its.
    assert (await call(app, keys["partner"], path, body, PARTNER)).status_code == 200
    assert (await call(app, keys["partner"], path, body, SHOP)).status_code == 403
