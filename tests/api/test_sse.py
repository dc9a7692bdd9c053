"""The SSE keep-alive pump: frames in order, a comment in every quiet interval, errors raised to
the response, and a client that leaves stops the answer (its generator's ``finally`` runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatwell.api.sse import KEEP_ALIVE_FRAME, with_keep_alive


async def test_frames_pass_in_order_with_keep_alives_in_the_quiet_gaps() -> None:
    async def frames() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.25)  # quiet for five intervals
        yield "b"
        yield "c"

    out = [item async for item in with_keep_alive(frames(), interval=0.05)]
    assert out[0] == "a" and out[-2:] == ["b", "c"]
    assert 3 <= out.count(KEEP_ALIVE_FRAME) <= 5 and len(out) == 3 + out.count(KEEP_ALIVE_FRAME)


async def test_no_keep_alive_while_frames_keep_coming() -> None:
    async def frames() -> AsyncIterator[str]:
        for i in range(20):
            await asyncio.sleep(0.01)
            yield str(i)

    out = [item async for item in with_keep_alive(frames(), interval=0.2)]
    assert out == [str(i) for i in range(20)]


async def test_an_error_in_the_frames_reaches_the_reader() -> None:
    async def frames() -> AsyncIterator[str]:
        yield "a"
        raise ValueError("upstream broke")

    seen: list[str] = []
    with pytest.raises(ValueError, match="upstream broke"):
        async for item in with_keep_alive(frames(), interval=1.0):
            seen.append(item)
    assert seen == ["a"]


async def test_a_reader_that_leaves_stops_the_frames() -> None:
    closed = asyncio.Event()

    async def frames() -> AsyncIterator[str]:
        try:
            for i in range(1000):
                await asyncio.sleep(0.001)
                yield str(i)
        finally:
            closed.set()

    stream = with_keep_alive(frames(), interval=1.0)
    assert await anext(stream) == "0"
    await stream.aclose()  # what Starlette does when the client disconnects
    await asyncio.wait_for(closed.wait(), 1.0)


async def test_a_slow_reader_holds_the_frames_back() -> None:
    produced = 0

    async def frames() -> AsyncIterator[str]:
        nonlocal produced
        for i in range(1000):
            produced += 1
            yield str(i)

    stream = with_keep_alive(frames(), interval=1.0)
    await anext(stream)
    await asyncio.sleep(0.05)
    assert produced < 100  # bounded by the pump's queue, not the whole answer
    await stream.aclose()
