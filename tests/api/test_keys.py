"""API keys: shown once, stored hashed, scoped, origin-bound, revocable at once; the admin key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import event, select, update

from chatwell.services import keys
from chatwell.services.keys import hash_secret
from chatwell.storage.tables import ApiKey
from tests.conftest import ADMIN_KEY
from tests.helpers import bearer, build_app, make_bot, make_key


async def test_key_is_shown_once_and_stored_only_as_a_hash(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await make_key(client, label="Production")
    secret = created["key"]
    assert created["prefix"] == secret[:10] and created["scope"] == "workspace"
    listing = (await client.get("/v1/keys")).text
    assert secret not in listing and secret[10:] not in listing
    assert "Production" in listing
    async with app.state.runtime.db.read() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.label == "Production"))
    assert row is not None and row.secret_hash == hash_secret(secret)
    assert secret not in repr(row.__dict__)
    # The new key works as a workspace key and records when it was used.
    assert (await client.get("/v1/bots", headers=bearer(secret))).status_code == 200
    async with app.state.runtime.db.read() as session:
        used = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.label == "Production"))
    assert used is not None


async def test_a_burst_on_one_key_writes_last_used_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Requests arriving together all read the same stale ``last_used_at``: one write, not one
    per request (a thousand streams opened at once queued a thousand writes before streaming)."""
    created = await make_key(client, label="Burst")
    db = app.state.runtime.db
    async with db.write() as session:  # used long ago
        await session.execute(
            update(ApiKey)
            .where(ApiKey.label == "Burst")
            .values(last_used_at=keys.utcnow() - 2 * keys.LAST_USED_RESOLUTION)
        )
    writes: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            writes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        principals = await asyncio.gather(
            *(keys.authenticate(db, created["key"]) for _ in range(20))
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert {p.key_id for p in principals} == {principals[0].key_id} and len(principals) == 20
    assert len(writes) == 1
    async with db.read() as session:
        used = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.label == "Burst"))
    assert keys.utcnow() - used.replace(tzinfo=keys.utcnow().tzinfo) < keys.LAST_USED_RESOLUTION


async def test_revocation_takes_effect_on_the_next_request(client: httpx.AsyncClient) -> None:
    created = await make_key(client)
    headers = bearer(created["key"])
    assert (await client.get("/v1/bots", headers=headers)).status_code == 200
    assert (await client.delete(f"/v1/keys/{created['id']}")).status_code == 204
    after = await client.get("/v1/bots", headers=headers)
    assert after.status_code == 401 and after.json()["error"]["code"] == "invalid_api_key"
    assert (await client.delete(f"/v1/keys/{created['id']}")).status_code == 404
    assert (await client.delete("/v1/keys/not-a-uuid")).status_code == 404
    ids = [k["id"] for k in (await client.get("/v1/keys")).json()["data"]]
    assert created["id"] not in ids


async def test_allowed_origins_bind_a_key_to_its_sites(client: httpx.AsyncClient) -> None:
    key = (await make_key(client, allowed_origins=["https://shop.example.com", "*.example.org"]))[
        "key"
    ]
    ok = {"Origin": "https://shop.example.com", **bearer(key)}
    wildcard = {"Origin": "https://www.example.org", **bearer(key)}
    bad = {"Origin": "https://evil.example.net", **bearer(key)}
    assert (await client.get("/v1/bots", headers=ok)).status_code == 200
    assert (await client.get("/v1/bots", headers=wildcard)).status_code == 200
    refused = await client.get("/v1/bots", headers=bad)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    # Server-to-server calls send no Origin and are not browser-bound.
    assert (await client.get("/v1/bots", headers=bearer(key))).status_code == 200


async def test_key_creation_validates_input(client: httpx.AsyncClient) -> None:
    for body in (
        {},
        {"label": ""},
        {"label": "x", "daily_message_limit": 0},
        {"label": "x", "allowed_origins": ["not a url at all"]},
        {"label": "x", "scope": "god"},
    ):
        response = await client.post("/v1/keys", json=body)
        assert response.status_code == 400, body
    missing_bot = await client.post("/v1/keys", json={"label": "x", "bot_id": "no-such-bot"})
    assert missing_bot.status_code == 404 and missing_bot.json()["error"]["code"] == "bot_not_found"


async def test_bot_key_reaches_only_its_bot(client: httpx.AsyncClient) -> None:
    bot = await make_bot(client)
    created = await make_key(client, bot_id=bot["id"], daily_message_limit=25)
    assert created["bot_id"] == bot["id"] and created["scope"] == "bot"
    assert created["daily_message_limit"] == 25


async def test_admin_key_from_environment_is_stable_and_replaced_when_changed(
    make_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = build_app(make_settings(), announce=lambda _: None)
    async with first.router.lifespan_context(first):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first), base_url="http://t"
        ) as c:
            assert (await c.get("/v1/bots", headers=bearer(ADMIN_KEY))).status_code == 200
    rotated = "rotated-admin-key-abcdef"
    second = build_app(make_settings(admin_key=rotated), announce=lambda _: None)
    async with second.router.lifespan_context(second):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second), base_url="http://t"
        ) as c:
            assert (await c.get("/v1/bots", headers=bearer(rotated))).status_code == 200
            assert (await c.get("/v1/bots", headers=bearer(ADMIN_KEY))).status_code == 401


async def test_first_start_without_admin_key_prints_an_owner_key_once(make_settings) -> None:  # type: ignore[no-untyped-def]
    said: list[str] = []
    settings = make_settings(admin_key=None)
    for _ in range(2):
        app = build_app(settings, announce=said.append)
        async with app.router.lifespan_context(app):
            pass
    # The owner key is shown on the first start only; the dashboard's set-up token on every start
    # while no account exists.
    shown = [message for message in said if "owner key" in message]
    assert len(shown) == 1 and sum("set-up token" in message for message in said) == 2
    secret = next(line.strip() for line in shown[0].splitlines() if line.strip().startswith("cw_"))
    app = build_app(settings, announce=said.append)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            assert (await c.get("/v1/bots", headers=bearer(secret))).status_code == 200
