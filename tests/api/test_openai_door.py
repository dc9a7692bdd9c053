"""The OpenAI-compatible door, driven by the official ``openai`` SDK with strict response
validation against a real uvicorn (streaming needs a real server), and cancellation on disconnect."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.fakes import FixedRegistry, ScriptedModel
from tests.helpers import build_app
from tests.services import free_port

TEXT = "Parcels to Norway take four days. Express delivery to Norway takes one day."


@pytest.fixture
def served(live_server, tmp_path: Path) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    app = build_app(Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY), announce=lambda _: None)
    base = live_server.start(app)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        bot = http.post("/v1/bots", json={"name": "Shipping"}).json()
        http.post(
            f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Norway", "text": TEXT}
        )
        deadline = time.monotonic() + 60
        while http.get(f"/v1/bots/{bot['id']}/sources").json()["data"][0]["status"] != "ready":
            assert time.monotonic() < deadline, "ingestion did not finish"
            time.sleep(0.1)
        yield {"app": app, "base": base, "bot": bot, "http": http}


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base}/v1", api_key=ADMIN_KEY, _strict_response_validation=True, max_retries=0
    )


def test_models_and_completions_with_the_official_sdk(served: dict[str, Any]) -> None:
    client = sdk(served["base"])
    assert [m.id for m in client.models.list().data] == ["shipping"]
    reply = client.chat.completions.create(
        model="shipping",
        messages=[
            {"role": "system", "content": "ignored by design: the bot has its own instructions"},
            {"role": "user", "content": "How long do parcels to Norway take?"},
        ],
    )
    assert (
        "four days" in reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    )
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    extra = reply.model_extra or {}
    assert extra["citations"][0]["title"] == "Norway"
    stream = client.chat.completions.create(
        model=served["bot"]["id"],
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Is there express delivery to Norway?"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "one day" in text
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="no-such-bot", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served['base']}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="shipping", messages=[{"role": "assistant", "content": "hi"}]
        )


async def test_client_disconnect_cancels_the_upstream_generation(served: dict[str, Any]) -> None:
    slow = ScriptedModel(deltas=tuple(f"word{i} " for i in range(200)), delay=0.05)
    served["app"].state.runtime.chat.models = FixedRegistry(slow)
    async with httpx.AsyncClient(
        base_url=served["base"], headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:
        async with client.stream(
            "POST",
            f"/v1/bots/{served['bot']['id']}/chat",
            json={"message": "How long do parcels to Norway take?"},
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: delta"):
                    break  # leave after the first token
        left = time.monotonic()
        while slow.closed == 0 and time.monotonic() < left + 10:
            await asyncio.sleep(0.05)
    # The model stream was closed soon after the client left, long before its 200 words (10 s).
    assert slow.closed == 1 and time.monotonic() - left < 5
    conversations = served["http"].get("/v1/conversations").json()["data"]
    detail = served["http"].get(f"/v1/conversations/{conversations[0]['id']}").json()
    assert detail["messages"][-1]["error"]["code"] == "cancelled"


async def test_shutdown_waits_for_the_turn_of_a_client_that_left(tmp_path: Path) -> None:
    """A client that leaves mid-answer has its turn saved in the background; a shutdown right then
    waits for that save before it closes the database (it used to close it under the save)."""
    app = build_app(Settings(data_dir=tmp_path / "d", admin_key=ADMIN_KEY), announce=lambda _: None)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    )
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ) as client:
        bot = (await client.post("/v1/bots", json={"name": "Shipping"})).json()
        await client.post(
            f"/v1/bots/{bot['id']}/sources", json={"type": "text", "title": "Norway", "text": TEXT}
        )
        deadline = time.monotonic() + 60
        while (await client.get(f"/v1/bots/{bot['id']}/sources")).json()["data"][0][
            "status"
        ] != "ready":
            assert time.monotonic() < deadline, "ingestion did not finish"
            await asyncio.sleep(0.1)
        app.state.runtime.chat.models = FixedRegistry(
            ScriptedModel(deltas=tuple(f"word{i} " for i in range(200)), delay=0.05)
        )
        async with client.stream(
            "POST",
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "How long do parcels to Norway take?"},
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: delta"):
                    break
    # The database is locked by another process's writer while the server notices the client left
    # and starts saving the turn; the lock goes a second after the shutdown began.
    locker = sqlite3.connect(tmp_path / "d" / "chatwell.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    deadline = time.monotonic() + 10
    while not app.state.runtime.chat._saving:  # noqa: SLF001 - the save in the background
        assert time.monotonic() < deadline, "the turn of the client that left was not being saved"
        await asyncio.sleep(0.01)
    server.should_exit = True
    asyncio.get_running_loop().call_later(1.0, locker.execute, "COMMIT")
    await asyncio.wait_for(serving, 30)
    locker.close()
    with sqlite3.connect(tmp_path / "d" / "chatwell.db") as check:
        saved = check.execute("SELECT error_code FROM messages WHERE role = 'assistant'").fetchall()
    assert saved == [("cancelled",)]  # saved before the server's shutdown ended
