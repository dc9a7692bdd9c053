"""Metrics, request ids and JSON logs."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from chatwell.observability.logs import JsonFormatter, RequestIdFilter, request_id
from tests.helpers import make_bot


async def test_metrics_count_requests_by_route_ttft_tokens_and_queue(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    bot = await make_bot(client)
    await client.post(
        f"/v1/bots/{bot['id']}/sources",
        json={"type": "text", "title": "Hours", "text": "We open at nine."},
    )
    await app.state.runtime.ingestion.idle()
    reply = await client.post(
        f"/v1/bots/{bot['id']}/chat", json={"message": "When do you open?", "stream": False}
    )
    assert reply.status_code == 200
    for _ in range(2):
        await client.get(f"/v1/bots/{bot['id']}")
    body = (await client.get("/metrics")).text
    assert (
        'chatwell_http_requests_total{method="GET",route="/v1/bots/{bot_id}",status="200"} 2.0'
        in body
    )
    assert bot["id"] not in body  # route templates, never raw paths
    assert 'chatwell_chat_time_to_first_token_seconds_count{channel="native"} 1.0' in body
    assert 'chatwell_chat_turns_total{channel="native",outcome="answered"} 1.0' in body
    assert (
        'chatwell_chat_tokens_total{channel="native",kind="completion",model="chatwell-offline"}'
        in body
    )
    assert 'chatwell_ingestion_sources{status="ready"} 1.0' in body
    assert 'chatwell_ingestion_sources{status="pending"} 0.0' in body


async def test_rate_limit_rejections_are_counted(make_settings, announcements) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import build_app

    app = build_app(make_settings(api_rate_limits="1/minute"), announce=announcements.append)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers={"Authorization": "Bearer test-admin-key-0123456789"},
        ) as client:
            bot = await make_bot(client)
            statuses = [
                (
                    await client.post(
                        f"/v1/bots/{bot['id']}/chat", json={"message": "hi", "stream": False}
                    )
                ).status_code
                for _ in range(2)
            ]
            assert statuses == [200, 429]
            assert (
                'chatwell_rate_limit_rejections_total{scope="key"} 1.0'
                in (await client.get("/metrics")).text
            )


async def test_request_ids_are_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "proxy-abc.123"})
    assert given.headers["x-request-id"] == "proxy-abc.123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert (
        made.headers["x-request-id"] != "bad id with spaces\n"
        and len(made.headers["x-request-id"]) == 32
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_json_log_lines_carry_the_request_id(backend: str) -> None:
    record = logging.makeLogRecord(
        {
            "name": "chatwell.test",
            "levelname": "INFO",
            "levelno": 20,
            "msg": "hello %s",
            "args": ("world",),
            "bot_id": "b1",
        }
    )
    token = request_id.set("rid-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["message"] == "hello world"
        and line["request_id"] == "rid-1"
        and line["bot_id"] == "b1"
    )
    assert line["level"] == "info" and line["time"].endswith("Z")
