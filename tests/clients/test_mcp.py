"""The MCP server driven by the official ``mcp`` client: streamable HTTP at /mcp with chatwell's
keys and scopes, every tool called, progress while ``ask`` answers; and ``chatwell mcp`` over stdio."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.clients.conftest import Served, conversations
from tests.conftest import ADMIN_KEY

QUESTION = "How long do parcels to Norway take?"


async def session_calls(
    served: Served,
    key: str,
    calls: list[tuple[str, dict[str, Any]]],
    progress: list[tuple[float, str | None]] | None = None,
    origin: str | None = None,
) -> tuple[list[str], list[Any]]:
    """Initialize a session with ``key`` (from a browser's ``origin`` when given), list the tools
    and call each of ``calls``."""

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if progress is not None:
            progress.append((value, message))

    headers = {"Authorization": f"Bearer {key}", **({"Origin": origin} if origin else {})}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(f"{served.base}/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [t.name for t in (await session.list_tools()).tools]
                results = [
                    await session.call_tool(name, arguments, progress_callback=on_progress)
                    for name, arguments in calls
                ]
    return tools, results


async def test_every_tool_over_streamable_http(offline: Served) -> None:
    progress: list[tuple[float, str | None]] = []
    tools, (listed, found, answered, followed) = await session_calls(
        offline,
        ADMIN_KEY,
        [
            ("list_bots", {}),
            ("search_knowledge", {"bot": "support-bot", "query": "parcels to Norway", "k": 3}),
            ("ask", {"bot": offline.bot["id"], "question": QUESTION}),
            ("ask", {"bot": "support-bot", "question": "Is there express delivery to Norway?"}),
        ],
        progress,
    )
    assert sorted(tools) == ["ask", "list_bots", "search_knowledge"]
    assert {b["slug"] for b in listed.structured_content["bots"]} == {"support-bot", "other-bot"}
    passages = found.structured_content["passages"]
    assert (
        passages[0]["title"] == "Shipping"
        and 0 < passages[0]["score"] <= 1
        and "url" in passages[0]
    )
    assert found.structured_content["relevant"] is True
    answer = answered.structured_content
    assert not answered.is_error and "four days" in answer["answer"]
    assert answer["citations"][0]["title"] == "Shipping"
    first = progress[
        : next(i for i in range(1, len(progress)) if progress[i][0] <= progress[i - 1][0])
    ]
    assert [m for _, m in first][:2] == ["retrieving", "generating"] and len(
        first
    ) > 3  # then one per piece
    assert followed.structured_content["conversation_id"] != answer["conversation_id"]
    # A follow-up in the same conversation: the conversation id goes back in.
    _, (again,) = await session_calls(
        offline,
        ADMIN_KEY,
        [
            (
                "ask",
                {
                    "bot": "support-bot",
                    "question": "And express?",
                    "conversation_id": answer["conversation_id"],
                },
            )
        ],
    )
    assert again.structured_content["conversation_id"] == answer["conversation_id"]
    assert len(conversations(offline)) == 2


async def test_a_bot_key_sees_its_bot_only(offline: Served) -> None:
    _, (listed, refused, searched) = await session_calls(
        offline,
        offline.other_key,
        [
            ("list_bots", {}),
            ("ask", {"bot": "support-bot", "question": QUESTION}),
            ("search_knowledge", {"bot": "support-bot", "query": "Norway"}),
        ],
    )
    assert [b["slug"] for b in listed.structured_content["bots"]] == ["other-bot"]
    assert refused.is_error and refused.content[0].text.endswith("bot_not_found: bot not found")
    assert searched.is_error and searched.content[0].text.endswith("bot_not_found: bot not found")
    assert conversations(offline) == []


async def test_a_browser_origin_the_bot_does_not_allow_is_refused(offline: Served) -> None:
    with offline.admin() as http:
        assert (
            http.patch(
                f"/v1/bots/{offline.bot['id']}", json={"allowed_origins": ["https://shop.example"]}
            ).status_code
            == 200
        )
    calls = [
        ("ask", {"bot": "support-bot", "question": QUESTION}),
        ("search_knowledge", {"bot": "support-bot", "query": "Norway"}),
    ]
    _, refused = await session_calls(offline, offline.bot_key, calls, origin="https://evil.example")
    assert all(
        r.is_error
        and r.content[0].text.endswith("this origin is not one of the bot's allowed domains")
        for r in refused
    ), [r.content[0].text for r in refused]
    _, allowed = await session_calls(offline, offline.bot_key, calls, origin="https://shop.example")
    assert not any(r.is_error for r in allowed)
    assert len(conversations(offline)) == 1


def test_mcp_needs_a_valid_key(offline: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        reply = httpx.post(f"{offline.base}/mcp", json=body, headers=headers, timeout=30)
        assert reply.status_code == 401 and reply.json()["error"]["code"] in (
            "invalid_api_key",
            "missing_api_key",
        )


def test_mcp_can_be_turned_off(serve: Any) -> None:
    served = serve(mcp_enabled=False)
    reply = httpx.post(
        f"{served.base}/mcp", json={}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    assert reply.status_code == 404
    with httpx.Client(base_url=served.base, timeout=30) as http:
        http.patch(
            f"/v1/bots/{served.bot['id']}",
            json={"public": True},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert http.get(f"/v1/public/bots/{served.bot['id']}/config").json()["mcp_url"] is None


async def test_chatwell_mcp_over_stdio(offline: Served) -> None:
    data_dir = offline.app.state.runtime.settings.data_dir
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chatwell.cli", "mcp", "--bot", "support-bot", "--data-dir", str(data_dir)],
        env={**os.environ, "CHATWELL_DATABASE_URL": offline.database_url},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.call_tool("list_bots", {})
            answered = await session.call_tool("ask", {"bot": "support-bot", "question": QUESTION})
            other = await session.call_tool("search_knowledge", {"bot": "other-bot", "query": "x"})
    assert [b["slug"] for b in listed.structured_content["bots"]] == ["support-bot"]
    assert "four days" in answered.structured_content["answer"]
    assert other.is_error
