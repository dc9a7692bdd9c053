"""SIGTERM during an answer: the server stops taking new connections but finishes the stream it
is sending (uvicorn's graceful shutdown, 30 s), and the turn is stored whole."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY
from tests.dialects.conftest import seed_bot
from tests.upstream import scripted_upstream


def test_sigterm_lets_open_streams_finish(live_server: Any, tmp_path: Path) -> None:
    upstream = live_server.start(
        scripted_upstream(
            "One two three four five six seven eight nine ten [1].", tokens_per_second=5
        )
    )
    chatwell = str(Path(sys.executable).parent / "chatwell")
    base = live_server.start_process(
        [
            chatwell,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        env={
            "CHATWELL_ADMIN_KEY": ADMIN_KEY,
            "CHATWELL_LLM_BASE_URL": upstream + "/v1",
            "CHATWELL_LLM_MODEL": "scripted",
        },
        timeout=120,
    )
    process = live_server.processes[base]
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as client:
        seed_bot(
            client,
            texts=(("Hours", "Our support team answers Monday to Friday, from nine to five."),),
        )
        events: list[tuple[str, float]] = []
        text: list[str] = []
        with client.stream(
            "POST", "/v1/bots/support-bot/chat", json={"message": "When is support available?"}
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and events and events[-1][0] == "delta":
                    text.append(json.loads(line[6:])["text"])
                if not line.startswith("event: "):
                    continue
                events.append((line[7:], time.monotonic()))
                if line == "event: delta" and sum(1 for name, _ in events if name == "delta") == 1:
                    process.send_signal(signal.SIGTERM)
                    stopped_at = time.monotonic()
        names = [name for name, _ in events]
    # Every word arrived, in pieces that kept coming after the signal (how the engine groups the
    # model's tokens into deltas is not this test's business).
    assert (
        names[-1] == "done"
        and "".join(text) == "One two three four five six seven eight nine ten [1]."
    )
    assert sum(1 for name, at in events if name == "delta" and at > stopped_at) >= 5
    assert events[-1][1] - stopped_at > 1.0  # the answer kept streaming for seconds after SIGTERM
    # then the server exits by itself (uvicorn re-raises the SIGTERM it handled, hence -15)
    assert process.wait(30) in (0, -signal.SIGTERM)
    with httpx.Client(timeout=5) as probe:
        try:
            probe.get(base + "/healthz")
            raise AssertionError("the server still accepts connections")
        except httpx.TransportError:
            pass
    # The turn was stored whole, with no error.
    import asyncio

    from sqlalchemy import select

    from chatwell.storage.database import Database
    from chatwell.storage.tables import Message

    async def stored() -> list[Message]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'd' / 'chatwell.db'}")
        try:
            async with db.read() as session:
                return list(
                    (await session.scalars(select(Message).order_by(Message.created_at))).all()
                )
        finally:
            await db.dispose()

    user, assistant = asyncio.run(stored())
    assert assistant.content.startswith("One two three") and "ten" in assistant.content
    assert assistant.error_code is None
