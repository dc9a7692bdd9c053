"""Agent replies pushed to the visitor on the public event stream of a conversation, on one real
server (the in-process bus, SQLite): the reply arrives within seconds (not at the 15 s re-read),
handoff changes arrive as ``status`` frames, only the owning session may listen, a conversation
holds at most N streams, a stream ends after its lifetime, and a bus that can't be reached fails
neither the agent's reply nor the visitor's polling. Across processes: tests/e2e/test_handoff_push.py.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatwell.services.conversation_bus import RedisConversationBus
from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app
from tests.services import free_port

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite"]
)  # engines: tests/e2e/test_handoff_push.py
GENEROUS = "1000/minute"
PUSHED_WITHIN_SECONDS = 3.0  # far below the stream's 15 s re-read: only a push is this fast


class Frames:
    """An open event stream, read frame by frame (comments, i.e. keep-alives, skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> tuple[str, Any]:
        event, data = "message", []
        for line in self._lines:
            if not line:
                if data:
                    return event, json.loads("\n".join(data))
                event = "message"
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        raise EOFError("the stream ended")

    def rest(self) -> list[tuple[str, Any]]:
        found = []
        with contextlib.suppress(EOFError):
            while True:
                found.append(self.next())
        return found


@contextlib.contextmanager
def listen(
    base: str,
    conversation_id: str,
    session_id: str,
    after: str | None = None,
    read_timeout: float = 10.0,
) -> Iterator[Frames]:
    """The visitor's event stream, as the widget opens it (no key)."""
    params = {"session_id": session_id, **({"after": after} if after else {})}
    with httpx.Client(base_url=base, timeout=httpx.Timeout(10.0, read=read_timeout)) as client:
        with client.stream(
            "GET",
            f"/v1/public/conversations/{conversation_id}/events",
            params=params,
            headers={"Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            yield Frames(response)


@dataclass
class Handoff:
    """A public bot that hands off on request, an agent online (``agent``: the agent's client, on
    its own server), and a visitor's conversation handed to a person (``pending_human``) on
    ``base``; ``last_id`` is its last message."""

    base: str
    bot_id: str
    agent: httpx.Client
    conversation_id: str
    session_id: str
    last_id: str

    def reply(self, text: str) -> dict[str, Any]:
        response = self.agent.post(
            f"/v1/conversations/{self.conversation_id}/messages", json={"content": text}
        )
        assert response.status_code == 201, response.text
        return response.json()


def start_handoff(
    visitor_base: str,
    agent_base: str,
    cleanup: contextlib.ExitStack,
    *,
    session_id: str = "visitor-1",
) -> Handoff:
    """Seed and act as the agent through ``agent_base``, talk as the visitor through
    ``visitor_base`` (two processes, or one)."""
    with httpx.Client(
        base_url=agent_base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as admin:
        bot = admin.post(
            "/v1/bots",
            json={
                "name": "Shop",
                "public": True,
                "handoff": {"enabled": True, "trigger": "button"},
            },
        )
        assert bot.status_code == 201, bot.text
        key = admin.post("/v1/keys", json={"label": "Dana"}).json()["key"]
    agent = cleanup.enter_context(
        httpx.Client(base_url=agent_base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    )
    assert (
        agent.post("/v1/agents/presence", json={"online": True}).json()["handoff_available"] is True
    )
    bot_id = bot.json()["id"]
    with httpx.Client(base_url=visitor_base, timeout=30) as visitor:
        chat = visitor.post(
            "/v1/public/chat/stream",
            json={"bot_id": bot_id, "message": "Where is my parcel?", "session_id": session_id},
        )
        assert chat.status_code == 200, chat.text
        done = [
            json.loads(line[6:]) for line in chat.text.splitlines() if line.startswith("data: ")
        ][-1]
        cid = done["conversation_id"]
        taken = visitor.post(
            f"/v1/public/conversations/{cid}/handoff", json={"session_id": session_id}
        ).json()
        assert taken["conversation_status"] == "pending_human", taken
        last = visitor.get(
            f"/v1/public/conversations/{cid}/messages", params={"session_id": session_id}
        ).json()
    return Handoff(visitor_base, bot_id, agent, cid, session_id, last["messages"][-1]["id"])


def assert_reply_is_pushed(chat: Handoff, frames: Frames) -> None:
    """The stream opened with the status; the agent's reply and the resolution arrive as frames,
    the reply in the history endpoint's shape, within seconds."""
    assert frames.next() == ("status", {"conversation_status": "pending_human"})
    started = time.monotonic()
    sent = chat.reply("Hi, Dana here. How can I help?")
    event, message = frames.next()
    elapsed = time.monotonic() - started
    assert event == "message" and elapsed < PUSHED_WITHIN_SECONDS, (event, elapsed)
    with httpx.Client(base_url=chat.base, timeout=30) as visitor:
        polled = visitor.get(
            f"/v1/public/conversations/{chat.conversation_id}/messages",
            params={"session_id": chat.session_id, "after": chat.last_id},
        ).json()
    assert [message] == polled["messages"]  # exactly what polling shows
    assert message["id"] == sent["id"] and message["role"] == "agent"
    assert frames.next() == ("status", {"conversation_status": "human"})
    resolved = chat.agent.post(f"/v1/conversations/{chat.conversation_id}/resolve")
    assert resolved.status_code == 200
    assert frames.next() == ("status", {"conversation_status": "resolved"})


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def serve(make_settings: Callable[..., Settings], live_server: Any) -> Callable[..., str]:
    def start(**settings: Any) -> str:
        values = {"history_rate_limits": GENEROUS, **settings}
        return live_server.start(build_app(make_settings(**values), announce=lambda _: None))

    return start


def test_an_agent_reply_is_pushed_on_one_process(
    serve: Callable[..., str], cleanup: contextlib.ExitStack
) -> None:
    base = serve()
    chat = start_handoff(base, base, cleanup)
    with listen(base, chat.conversation_id, chat.session_id, after=chat.last_id) as frames:
        assert_reply_is_pushed(chat, frames)


def test_the_stream_starts_with_the_history_after_the_cursor(
    serve: Callable[..., str], cleanup: contextlib.ExitStack
) -> None:
    base = serve()
    chat = start_handoff(base, base, cleanup)
    first = chat.reply("First")
    with listen(base, chat.conversation_id, chat.session_id, after=chat.last_id) as frames:
        event, message = frames.next()
        assert event == "message" and message == {
            "id": first["id"],
            "role": "agent",
            "content": "First",
            "citations": None,
            "feedback": None,
            "image_preview": None,
            "created_at": first["created_at"],
        }
        assert frames.next() == ("status", {"conversation_status": "human"})
    with listen(
        base, chat.conversation_id, chat.session_id
    ) as frames:  # no cursor: all of it, as polling
        roles = [frames.next() for _ in range(4)]
    assert [(event, body.get("role")) for event, body in roles] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "agent"),
        ("status", None),
    ]


def test_only_the_owning_session_may_listen(
    serve: Callable[..., str], cleanup: contextlib.ExitStack
) -> None:
    base = serve()
    chat = start_handoff(base, base, cleanup)
    with httpx.Client(base_url=base, timeout=10) as visitor:
        for cid, session in (
            (chat.conversation_id, "intruder"),
            (str(uuid.uuid4()), chat.session_id),
            ("not-a-uuid", chat.session_id),
        ):
            refused = visitor.get(
                f"/v1/public/conversations/{cid}/events", params={"session_id": session}
            )
            assert refused.status_code == 404, refused.text
            assert refused.headers["content-type"] == "application/json"  # nothing streamed
            assert refused.json() == {
                "error": "conversation_not_found",
                "message": "conversation not found",
                "detail": "conversation not found",
            }
        # A browser on a domain the bot does not allow is refused before anything streams.
        assert (
            visitor.patch(
                f"/v1/bots/{chat.bot_id}",
                json={"allowed_origins": ["https://shop.example"]},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ).status_code
            == 200
        )
        foreign = visitor.get(
            f"/v1/public/conversations/{chat.conversation_id}/events",
            params={"session_id": chat.session_id},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403 and foreign.json()["error"] == "origin_not_allowed"


def test_a_conversation_holds_at_most_n_streams(
    serve: Callable[..., str], cleanup: contextlib.ExitStack
) -> None:
    base = serve(public_event_streams_per_conversation=2)
    chat = start_handoff(base, base, cleanup)
    url = f"/v1/public/conversations/{chat.conversation_id}/events"
    with contextlib.ExitStack() as open_streams, httpx.Client(base_url=base, timeout=10) as visitor:
        streams = [
            open_streams.enter_context(
                listen(base, chat.conversation_id, chat.session_id, after=chat.last_id)
            )
            for _ in range(2)
        ]
        for frames in streams:
            assert frames.next()[0] == "status"  # open and streaming
        third = visitor.get(url, params={"session_id": chat.session_id})
        assert third.status_code == 429, third.text
        assert third.json()["error"] == "too_many_streams" and set(third.json()) >= {
            "message",
            "detail",
        }
        assert third.headers["retry-after"] == "30"
        # Both open streams still get the reply.
        sent = chat.reply("To both of you")
        for frames in streams:
            event, message = frames.next()
            assert (event, message["id"]) == ("message", sent["id"])
        open_streams.close()
        # Closing frees the slots (the server notices the disconnect at once).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with visitor.stream("GET", url, params={"session_id": chat.session_id}) as again:
                if again.status_code == 200:
                    break
            time.sleep(0.1)
        assert again.status_code == 200


def test_a_stream_ends_after_its_lifetime(
    serve: Callable[..., str], cleanup: contextlib.ExitStack
) -> None:
    base = serve(public_event_stream_seconds=1)
    chat = start_handoff(base, base, cleanup)
    started = time.monotonic()
    with listen(base, chat.conversation_id, chat.session_id, after=chat.last_id) as frames:
        assert frames.rest() == [("status", {"conversation_status": "pending_human"})]
    assert 0.9 < time.monotonic() - started < 5


@pytest.mark.slow
def test_a_quiet_stream_sends_keep_alives(
    serve: Callable[..., str], cleanup: contextlib.ExitStack
) -> None:
    """Proxies drop idle connections: a comment every 15 s keeps the stream open."""
    base = serve(public_event_stream_seconds=17)
    chat = start_handoff(base, base, cleanup)
    with listen(
        base, chat.conversation_id, chat.session_id, after=chat.last_id, read_timeout=20
    ) as frames:
        lines = list(frames.response.iter_lines())
    assert lines[:2] == ["event: status", 'data: {"conversation_status":"pending_human"}']
    assert lines.count(": keep-alive") == 1


async def test_an_unreachable_bus_fails_neither_the_reply_nor_polling(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, app: Any
) -> None:
    """A Redis that does not answer (nothing listens on its port): the agent's reply is stored and
    answered 201, the visitor's stream is a 503 (the widget then polls) and polling shows the reply."""
    bot = (
        await client.post(
            "/v1/bots",
            json={
                "name": "Shop",
                "public": True,
                "handoff": {"enabled": True, "trigger": "button"},
            },
        )
    ).json()
    agent = {
        "Authorization": f"Bearer {(await client.post('/v1/keys', json={'label': 'Dana'})).json()['key']}"
    }
    await client.post("/v1/agents/presence", json={"online": True}, headers=agent)
    chat = await anon_client.post(
        "/v1/public/chat/stream",
        json={"bot_id": bot["id"], "message": "hello", "session_id": "visitor-1"},
    )
    cid = [json.loads(line[6:]) for line in chat.text.splitlines() if line.startswith("data: ")][
        -1
    ]["conversation_id"]
    dead = RedisConversationBus(f"redis://127.0.0.1:{free_port()}/0")
    app.state.runtime.bus = dead
    try:
        started = time.monotonic()
        reply = await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "Still here"}, headers=agent
        )
        assert reply.status_code == 201, reply.text
        assert time.monotonic() - started < 10
        stream = await anon_client.get(
            f"/v1/public/conversations/{cid}/events", params={"session_id": "visitor-1"}
        )
        assert stream.status_code == 503 and stream.json()["error"] == "live_updates_unavailable"
        assert (
            app.state.runtime.event_streams.open_count(cid) == 0
        )  # the refused stream holds no slot
        polled = await anon_client.get(
            f"/v1/public/conversations/{cid}/messages", params={"session_id": "visitor-1"}
        )
        assert polled.json()["messages"][-1]["content"] == "Still here"
        # The service itself: publishing to a dead bus returns, bounded in time.
        started = time.monotonic()
        await dead.publish(cid, {"type": "status", "status": "human"})
        assert time.monotonic() - started < 5
    finally:
        await dead.aclose()
