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
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(data: Any, *, event: str | None = None) -> str:
    """One SSE frame; multi-line data is split over several ``data:`` lines."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


async def with_keep_alive(frames: AsyncIterator[str], interval: float = KEEP_ALIVE_SECONDS) -> AsyncIterator[str]:
    iterator = frames.__aiter__()
    pending: asyncio.Task[str] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield ": keep-alive\n\n"
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
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
