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
KEEP_ALIVE_BYTES = KEEP_ALIVE_FRAME.encode()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(data: Any, *, event: str | None = None) -> str:
    """One SSE frame; multi-line data is split over several ``data:`` lines."""
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    )
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


class SSEResponse(StreamingResponse):
    """Sends each frame as it comes, and a keep-alive comment whenever none was sent for
    ``interval`` seconds.

    The frames are iterated in the response's own task and each is one ``send``: no hand-off
    between tasks per frame (a pump task and a queue cost ~10% of a relayed token's CPU with a
    thousand open streams). A timer task per stream wakes once per quiet interval; a lock keeps
    its keep-alive from interleaving with a frame being sent to a slow client. A slow client holds
    the answer back: the next frame is not made until the last one was sent. However the response
    ends (done, an error raised by the frames, the client gone), the frames are closed, so the
    answer's ``finally`` runs now and not when the generator is collected; then ``on_close``.
    """

    def __init__(
        self,
        frames: AsyncIterator[str],
        *,
        interval: float | None = KEEP_ALIVE_SECONDS,
        media_type: str = "text/event-stream",
        on_close: Callable[[], Awaitable[Any]] | None = None,
        keep_alive_frame: bytes = KEEP_ALIVE_BYTES,
    ) -> None:
        super().__init__(frames, media_type=media_type, headers=dict(SSE_HEADERS))
        self.interval = interval
        self.on_close = on_close
        self.keep_alive_frame = keep_alive_frame

    async def stream_response(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        last = loop.time()

        async def body(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def beat(interval: float) -> None:
            nonlocal last
            while True:
                await asyncio.sleep(max(0.0, last + interval - loop.time()))
                if loop.time() - last >= interval:
                    last = loop.time()
                    await body(self.keep_alive_frame)

        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        ticker = asyncio.ensure_future(beat(self.interval)) if self.interval else None
        try:
            async for chunk in self.body_iterator:
                await body(chunk.encode() if isinstance(chunk, str) else chunk)
                last = loop.time()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(
                    BaseException
                ):  # cancelled, or its send failed as ours will
                    await ticker
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):  # already closed (it ended, or raised)
                    await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.on_close is not None:
                await self.on_close()


def sse_response(
    frames: AsyncIterator[str],
    *,
    media_type: str = "text/event-stream",
    keep_alive: bool = True,
    on_close: Callable[[], Awaitable[Any]] | None = None,
    keep_alive_frame: str = KEEP_ALIVE_FRAME,
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
) -> StreamingResponse:
    """``keep_alive_frame``: what a quiet stream sends (a comment by default; a dialect may
    have its own, e.g. Dify's ``event: ping``)."""
    return SSEResponse(
        frames,
        interval=keep_alive_seconds if keep_alive else None,
        media_type=media_type,
        on_close=on_close,
        keep_alive_frame=keep_alive_frame.encode(),
    )


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
            raise RateLimited(
                f"at most {self.limit} open event streams per conversation; close one first",
                retry_after=self.RETRY_AFTER_SECONDS,
                limit=self.limit,
                code="too_many_streams",
            )
        self._open[key] += 1
        try:
            yield
        finally:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]
