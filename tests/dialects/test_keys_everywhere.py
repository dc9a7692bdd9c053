"""One key, every door: a bot-scoped key works on each dialect that takes a key, and its daily
message quota is shared by all of them, each refusing in its own shape with Retry-After."""

from __future__ import annotations

from tests.dialects.conftest import World


def test_one_daily_quota_across_every_door(world: World) -> None:
    with world.admin() as admin:
        key = admin.post(
            "/v1/keys", json={"label": "quota", "bot_id": world.bot_id, "daily_message_limit": 5}
        ).json()["key"]
    calls = [
        (
            "/api/chat",
            {"message": "hours?", "bot_slug": "support-bot", "stream": False},
            lambda b: b["error"]["code"] == "RATE_LIMIT_EXCEEDED",
        ),
        (
            "/v1/bots/support-bot/chat",
            {"message": "hours?", "stream": False},
            lambda b: b["error"]["code"] == "rate_limited",
        ),
        (
            "/v1/chat/completions",
            {"model": "support-bot", "messages": [{"role": "user", "content": "hours?"}]},
            lambda b: b["error"]["type"] == "rate_limit_error",
        ),
        (
            "/api/v1/chat",
            {"message": "hours?"},
            lambda b: b["success"] is False and b["code"] == "rate_limited",
        ),
        (
            "/api/v1/chatbots/support-bot/chat",
            {"message": "hours?", "stream": False},
            lambda b: b["code"] == "RATE_LIMIT_EXCEEDED" and b["retryAfter"] > 0,
        ),
        (
            "/api/v1/chat",
            {"messages": [{"role": "user", "content": "hours?"}], "chatbotId": "support-bot"},
            lambda b: b["code"] == "rate_limited" and b["message"],
        ),
    ]
    with world.client(key) as client:
        for path, body, _ in calls[:5]:
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)
        for path, body, shape in calls:
            refused = client.post(path, json=body)
            assert refused.status_code == 429, (path, refused.text)
            assert int(refused.headers["Retry-After"]) > 0 and shape(refused.json()), (
                path,
                refused.text,
            )


def test_native_and_openai_doors_count_keyed_limits(start_world: object) -> None:
    world = start_world(api_rate_limits="2/minute")  # type: ignore[operator]
    with world.client(world.bot_key) as client:
        statuses = [
            client.post(
                "/v1/chat/completions",
                json={"model": "support-bot", "messages": [{"role": "user", "content": "hours?"}]},
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
    with world.client(world.workspace_key) as client:  # another key has its own budget
        response = client.post(
            "/v1/bots/support-bot/chat", json={"message": "hours?", "stream": False}
        )
        assert response.status_code == 200
