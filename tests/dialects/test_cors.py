"""CORS on every door: preflights answered for the server's, the bots' and the keys' origins (any
origin in development), public widget endpoints checked against the bot's domains."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
def production(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    async def start(**overrides: Any) -> Any:
        return build_app(
            make_settings(environment="production", **overrides), announce=lambda _: None
        )

    return start


@pytest.fixture
async def prod_client(production: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = await production(cors_allowed_origins=["https://admin.example.com"])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            yield client


async def preflight(client: httpx.AsyncClient, path: str, origin: str) -> httpx.Response:
    return await client.options(path, headers={"Origin": origin, **PREFLIGHT})


async def test_production_preflights(prod_client: httpx.AsyncClient) -> None:
    client = prod_client
    # The server's own list.
    ok = await preflight(client, "/api/chat", "https://admin.example.com")
    assert (
        ok.status_code == 204
        and ok.headers["access-control-allow-origin"] == "https://admin.example.com"
    )
    assert "authorization" in ok.headers["access-control-allow-headers"]
    assert "POST" in ok.headers["access-control-allow-methods"] and ok.headers["vary"] == "Origin"
    # An origin nobody names: refused, in the dialect's error shape.
    refused = await preflight(client, "/api/chat", "https://evil.example")
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert refused.json()["error"]["code"] == "CORS_ORIGIN_NOT_ALLOWED"
    refused = await preflight(client, "/api/v1/chatbots/x/chat", "https://evil.example")
    assert (
        refused.json()["code"] == "CORS_ORIGIN_NOT_ALLOWED" and refused.json()["success"] is False
    )


async def test_keys_and_bots_open_their_origins(production: Callable[..., Any]) -> None:
    app = await production()
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            bot = (
                await client.post(
                    "/v1/bots",
                    json={
                        "name": "Shop",
                        "public": True,
                        "allowed_origins": ["https://*.shop.example"],
                    },
                )
            ).json()
            key = (
                await client.post(
                    "/v1/keys",
                    json={
                        "label": "app",
                        "bot_id": bot["id"],
                        "allowed_origins": ["https://app.example.org"],
                    },
                )
            ).json()
            for origin in ("https://app.example.org", "https://www.shop.example"):
                ok = await preflight(client, "/api/chat", origin)
                assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == origin
            assert (
                await preflight(client, "/api/chat", "https://shop.example.evil.com")
            ).status_code == 403
            # Public widget endpoints answer any preflight; the request itself is checked.
            assert (
                await preflight(client, "/v1/public/chat/stream", "https://elsewhere.example")
            ).status_code == 204
            body = {"bot_id": bot["id"], "message": "hi", "session_id": "s"}
            refused = await client.post(
                "/v1/public/chat/stream", json=body, headers={"Origin": "https://elsewhere.example"}
            )
            assert (
                refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
            )
            ok = await client.post(
                "/v1/public/chat/stream", json=body, headers={"Origin": "https://www.shop.example"}
            )
            assert (
                ok.status_code == 200
                and ok.headers["access-control-allow-origin"] == "https://www.shop.example"
            )
            assert "X-RateLimit-Remaining" in ok.headers["access-control-expose-headers"]
            # A keyed request from the key's origin may be read cross-site.
            chat = await client.post(
                "/api/chat",
                json={"message": "hi", "bot_slug": bot["slug"], "stream": False},
                headers={
                    "Origin": "https://app.example.org",
                    "Authorization": f"Bearer {key['key']}",
                },
            )
            assert (
                chat.status_code == 200
                and chat.headers["access-control-allow-origin"] == "https://app.example.org"
            )
            # The key refuses other origins, even ones the bot allows.
            other = await client.post(
                "/api/chat",
                json={"message": "hi", "bot_slug": bot["slug"], "stream": False},
                headers={
                    "Origin": "https://www.shop.example",
                    "Authorization": f"Bearer {key['key']}",
                },
            )
            assert (
                other.status_code == 403 and other.json()["error"]["code"] == "ORIGIN_NOT_ALLOWED"
            )


async def test_development_allows_every_origin(client: httpx.AsyncClient) -> None:
    ok = await preflight(client, "/v1/bots", "http://localhost:3000")
    assert (
        ok.status_code == 204
        and ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    )
    listed = await client.get("/v1/bots", headers={"Origin": "http://localhost:3000"})
    assert listed.headers["access-control-allow-origin"] == "http://localhost:3000"
    # Without an Origin nothing CORS-related is added.
    assert "access-control-allow-origin" not in (await client.get("/v1/bots")).headers
