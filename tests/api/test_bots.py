"""Native bot API: CRUD, slugs, validation, pagination, scopes and tenant isolation."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from chatwell.storage.tables import Bot
from tests.helpers import bearer, count_rows, make_bot, make_key


async def test_create_bot_derives_slug_and_fills_defaults(client: httpx.AsyncClient) -> None:
    bot = await make_bot(
        client,
        name="Support Bot!",
        public=True,
        allowed_origins=["https://Shop.example.com/"],
        rate_limits={"per_minute": 5},
        model="gpt-4o-mini",
        suggested_questions=["  What are your hours? "],
    )
    assert bot["slug"] == "support-bot"
    assert uuid.UUID(bot["id"]).version == 7
    assert bot["public"] is True
    assert bot["allowed_origins"] == ["https://shop.example.com"]
    assert bot["rate_limits"]["per_minute"] == 5
    assert bot["model"]["model"] == "gpt-4o-mini"
    assert bot["suggested_questions"] == ["What are your hours?"]
    assert bot["answer"]["not_found_message"]


async def test_derived_slugs_stay_unique_and_explicit_duplicates_conflict(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    first = await make_bot(client, name="Help")
    second = await make_bot(client, name="Help")
    assert (first["slug"], second["slug"]) == ("help", "help-2")
    response = await client.post("/v1/bots", json={"name": "Other", "slug": "help"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slug_taken"
    assert await count_rows(app, Bot) == 2


async def test_get_by_id_and_slug_patch_merges_settings_and_delete(
    client: httpx.AsyncClient,
) -> None:
    bot = await make_bot(client, rate_limits={"per_minute": 5})
    by_slug = await client.get(f"/v1/bots/{bot['slug']}")
    assert by_slug.status_code == 200 and by_slug.json()["id"] == bot["id"]
    patched = await client.patch(
        f"/v1/bots/{bot['id']}",
        json={"rate_limits": {"per_hour": 50}, "name": "Renamed", "public": True},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["rate_limits"]["per_minute"] == 5 and body["rate_limits"]["per_hour"] == 50
    assert (body["name"], body["public"], body["slug"]) == ("Renamed", True, bot["slug"])
    assert (await client.delete(f"/v1/bots/{bot['id']}")).status_code == 204
    missing = await client.get(f"/v1/bots/{bot['id']}")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "bot_not_found", "message": "bot not found"}}


async def test_patch_to_a_taken_slug_conflicts_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    a = await make_bot(client, name="A")
    await make_bot(client, name="B")
    response = await client.patch(f"/v1/bots/{a['id']}", json={"slug": "b", "name": "Changed"})
    assert response.status_code == 409
    assert (await client.get(f"/v1/bots/{a['id']}")).json()["name"] == "A"


async def test_pagination_walks_every_bot_once(client: httpx.AsyncClient) -> None:
    made = {(await make_bot(client, name=f"Bot {i}"))["id"] for i in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/bots", params=params)).json()
        seen.extend(b["id"] for b in page["data"])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(seen) == 5 and set(seen) == made
    bad = await client.get("/v1/bots", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    too_many = await client.get("/v1/bots", params={"limit": 1000})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "invalid_request"


async def test_bad_input_is_a_400_with_a_stable_code_and_writes_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    cases = [
        (b"{not json", "malformed_json"),
        (b'{"name": 42}', "invalid_request"),
        (b'{"name": ""}', "invalid_request"),
        (b'{"name": "x", "unknown_field": 1}', "invalid_request"),
        (b'{"name": "x", "slug": "Bad Slug!"}', "invalid_request"),
        (b'{"name": "x", "rate_limits": {"per_minute": -1}}', "invalid_request"),
        (b'{"name": "x", "allowed_origins": ["javascript:alert(1)"]}', "invalid_request"),
        (b"[]", "invalid_request"),
        (b'"\\ud800"', "invalid_request"),
    ]
    for body, code in cases:
        response = await client.post(
            "/v1/bots", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == code, body
    assert await count_rows(app, Bot) == 0


async def test_oversized_body_is_refused_before_anything_is_written(
    client: httpx.AsyncClient, app: FastAPI, settings
) -> None:  # type: ignore[no-untyped-def]
    huge = b'{"name": "x", "instructions": "' + b"a" * (settings.max_request_bytes + 10) + b'"}'
    response = await client.post(
        "/v1/bots", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(settings.max_request_bytes // 65536 + 2):
            yield b" " * 65536

    chunked = await client.post(
        "/v1/bots", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert await count_rows(app, Bot) == 0


async def test_keys_are_required_and_checked(anon_client: httpx.AsyncClient) -> None:
    missing = await anon_client.get("/v1/bots")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = await anon_client.get("/v1/bots", headers=bearer("cw_wrong"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    basic = await anon_client.get("/v1/bots", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401
    long = await anon_client.get("/v1/bots", headers=bearer("x" * 5000))
    assert long.status_code == 401


async def test_bot_scoped_key_sees_its_bot_only_and_cannot_manage(
    client: httpx.AsyncClient,
) -> None:
    mine = await make_bot(client, name="Mine")
    other = await make_bot(client, name="Other")
    key = (await make_key(client, bot_id=mine["slug"]))["key"]
    headers = bearer(key)
    listed = (await client.get("/v1/bots", headers=headers)).json()["data"]
    assert [b["id"] for b in listed] == [mine["id"]]
    assert (await client.get(f"/v1/bots/{mine['id']}", headers=headers)).status_code == 200
    assert (await client.get(f"/v1/bots/{other['id']}", headers=headers)).status_code == 404
    for method, path, body in [
        ("POST", "/v1/bots", {"name": "x"}),
        ("PATCH", f"/v1/bots/{mine['id']}", {"name": "x"}),
        ("DELETE", f"/v1/bots/{mine['id']}", None),
        ("POST", "/v1/keys", {"label": "x"}),
        ("GET", "/v1/keys", None),
    ]:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "insufficient_scope"


async def test_workspaces_are_isolated(client: httpx.AsyncClient, app: FastAPI) -> None:
    from chatwell.services import workspaces

    mine = await make_bot(client, name="Mine")
    _, other_key = await workspaces.create_workspace(app.state.runtime.db, name="Other tenant")
    other = bearer(other_key)
    theirs = (await client.post("/v1/bots", json={"name": "Theirs"}, headers=other)).json()
    assert [b["id"] for b in (await client.get("/v1/bots", headers=other)).json()["data"]] == [
        theirs["id"]
    ]
    random_id = str(uuid.uuid4())
    for ref in (mine["id"], mine["slug"]):
        foreign = await client.get(f"/v1/bots/{ref}", headers=other)
        missing = await client.get(f"/v1/bots/{random_id}", headers=other)
        # Same status and body for a foreign id and a missing one: no existence oracle.
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
        assert (
            await client.patch(f"/v1/bots/{ref}", json={"name": "pwned"}, headers=other)
        ).status_code == 404
        assert (await client.delete(f"/v1/bots/{ref}", headers=other)).status_code == 404
        assert (
            await client.post("/v1/keys", json={"label": "x", "bot_id": ref}, headers=other)
        ).status_code == 404
    assert (await client.get(f"/v1/bots/{mine['id']}")).json()["name"] == "Mine"
