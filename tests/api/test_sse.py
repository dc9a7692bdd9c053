"""The SSE response: frames in order, a comment in every quiet interval, errors raised to the
server, a client that leaves stops the answer (its generator's ``finally`` runs), a slow client
holds the answer back, and ``on_close`` runs however the response ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from chatwell.api.sse import KEEP_ALIVE_FRAME, SSEResponse

KEEP_ALIVE = KEEP_ALIVE_FRAME.encode()


async def serve(
    response: SSEResponse, *, spec: str = "2.4", slow: float = 0.0, leave_after: int | None = None
) -> list[bytes]:
    """Runs ``response`` as the server would; returns the body chunks sent. ``leave_after``: the
    client disconnects once that many chunks were sent (``spec`` 2.3: Starlette listens for it)."""
    sent: list[bytes] = []
    gone = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            sent.append(message["body"])
            if leave_after is not None and len(sent) >= leave_after:
                gone.set()
        if slow:
            await asyncio.sleep(slow)

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    await response({"type": "http", "asgi": {"spec_version": spec}}, receive, send)
    return sent


async def test_frames_pass_in_order_with_keep_alives_in_the_quiet_gaps() -> None:
    async def frames() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.25)  # quiet for five intervals
        yield "b"
        yield "c"

    out = await serve(SSEResponse(frames(), interval=0.05))
    assert out[0] == b"a" and out[-2:] == [b"b", b"c"]
    assert 3 <= out.count(KEEP_ALIVE) <= 5 and len(out) == 3 + out.count(KEEP_ALIVE)


async def test_no_keep_alive_while_frames_keep_coming() -> None:
    async def frames() -> AsyncIterator[str]:
        for i in range(20):
            await asyncio.sleep(0.01)
            yield str(i)

    assert await serve(SSEResponse(frames(), interval=0.2)) == [str(i).encode() for i in range(20)]


async def test_no_keep_alive_when_turned_off() -> None:
    async def frames() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.2)
        yield "b"

    assert await serve(SSEResponse(frames(), interval=None)) == [b"a", b"b"]


async def test_an_error_in_the_frames_reaches_the_server_and_on_close_runs() -> None:
    closed: list[bool] = []

    async def frames() -> AsyncIterator[str]:
        yield "a"
        raise ValueError("upstream broke")

    async def on_close() -> None:
        closed.append(True)

    with pytest.raises(ValueError, match="upstream broke"):
        await serve(SSEResponse(frames(), interval=1.0, on_close=on_close))
    assert closed == [True]


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_a_client_that_leaves_stops_the_frames(spec: str) -> None:
    closed = asyncio.Event()
    produced = 0

    async def frames() -> AsyncIterator[str]:
        nonlocal produced
        try:
            for i in range(1000):
                await asyncio.sleep(0.001)
                produced += 1
                yield str(i)
        finally:
            closed.set()

    if spec == "2.4":  # the server's send fails once the client is gone
        calls = 0

        async def failing(message: dict[str, Any]) -> None:
            nonlocal calls
            calls += 1
            if calls > 3:
                raise OSError("connection reset")

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

        with pytest.raises(ClientDisconnect):
            await SSEResponse(frames(), interval=1.0)(
                {"type": "http", "asgi": {"spec_version": spec}}, receive, failing
            )
    else:
        await asyncio.wait_for(
            serve(SSEResponse(frames(), interval=1.0), spec=spec, leave_after=3), 5
        )
    # Closed at once by the response, not whenever the generator is collected.
    assert closed.is_set() and produced < 10


async def test_a_slow_client_holds_the_frames_back() -> None:
    produced = 0

    async def frames() -> AsyncIterator[str]:
        nonlocal produced
        for i in range(1000):
            produced += 1
            yield str(i)

    task = asyncio.ensure_future(serve(SSEResponse(frames(), interval=1.0), slow=0.01))
    await asyncio.sleep(0.1)
    assert produced < 20  # one frame ahead of what was sent, not the whole answer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
