"""Server-sent events framing shared by every streaming dialect.

``sse_response`` turns an async iterator of frames into a streaming response with the headers
proxies need (no buffering, no caching) and a keep-alive comment whenever the stream is quiet.
When the client disconnects, Starlette cancels the response task; the iterator is closed, and
with it the upstream model call. ``on_close`` releases what a stream holds (a subscription, a
``StreamSlots`` slot) however the response ends, even one that never started streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from chatwell.errors import RateLimited

KEEP_ALIVE_SECONDS = 15.0
KEEP_ALIVE_FRAME = ": keep-alive\n\n"
PUMP_QUEUE = 32  # frames a stream may hold ahead of a slow client
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(data: Any, *, event: str | None = None) -> str:
    """One SSE frame; multi-line data is split over several ``data:`` lines."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


async def with_keep_alive(frames: AsyncIterator[str], interval: float = KEEP_ALIVE_SECONDS) -> AsyncIterator[str]:
    """``frames``, with a keep-alive comment whenever none came for ``interval`` seconds.

    One task runs the frames into a small queue for the stream's whole life and the quiet time is
    checked once per ``interval``, so a frame costs a queue hand-off (not a task and a timer per
    frame: with a thousand open streams of 20 tokens a second that overhead was the event loop's
    main work). The queue is bounded: a slow client holds the answer back, it does not pile up here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=PUMP_QUEUE)
    last = loop.time()

    async def pump() -> None:
        nonlocal last
        try:
            async for item in frames:
                await queue.put(("frame", item))
                last = loop.time()
        except asyncio.CancelledError as exc:  # the reader is going away (or went): tell it if it listens
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(("error", exc))
            raise
        except Exception as exc:  # handed to the reader, which raises it in the response
            await queue.put(("error", exc))
            return
        await queue.put(("end", None))

    async def tick() -> None:
        nonlocal last
        while True:
            await asyncio.sleep(max(0.0, last + interval - loop.time()))
            if loop.time() - last >= interval and queue.empty():
                last = loop.time()
                await queue.put(("frame", KEEP_ALIVE_FRAME))

    producer = asyncio.ensure_future(pump())
    ticker = asyncio.ensure_future(tick())
    try:
        while True:
            kind, value = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                if isinstance(value, asyncio.CancelledError):
                    return
                raise value
            yield value
    finally:
        ticker.cancel()
        if not producer.done():
            producer.cancel()
        for task in (producer, ticker):
            with contextlib.suppress(BaseException):
                await task
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the pump's loop
                await aclose()


class _ClosingStreamingResponse(StreamingResponse):
    def __init__(self, body: AsyncIterator[str], on_close: Callable[[], Awaitable[Any]], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.on_close()


def sse_response(frames: AsyncIterator[str], *, media_type: str = "text/event-stream",
                 keep_alive: bool = True, on_close: Callable[[], Awaitable[Any]] | None = None) -> StreamingResponse:
    body = with_keep_alive(frames) if keep_alive else frames
    if on_close is not None:
        return _ClosingStreamingResponse(body, on_close, media_type=media_type, headers=dict(SSE_HEADERS))
    return StreamingResponse(body, media_type=media_type, headers=dict(SSE_HEADERS))


class StreamSlots:
    """At most ``limit`` open streams per key (e.g. a conversation) in this process: long-lived
    streams are cheap to open and costly to hold, so one visitor can't keep hundreds open."""

    RETRY_AFTER_SECONDS = 30

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def open_count(self, key: str) -> int:
        return self._open[key]

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """A slot for one stream, until the block (or the exit stack holding it) ends; a full key
        is a 429 ``too_many_streams``."""
        if self._open[key] >= self.limit:
            raise RateLimited(f"at most {self.limit} open event streams per conversation; close one first",
                              retry_after=self.RETRY_AFTER_SECONDS, limit=self.limit, code="too_many_streams")
        self._open[key] += 1
        try:
            yield
        finally:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]
