"""Server-sent events framing shared by every streaming dialect.

``sse_response`` turns an async iterator of frames into a streaming response with the headers
proxies need (no buffering, no caching) and a keep-alive comment whenever the stream is quiet.
When the client disconnects, Starlette cancels the response task; the iterator is closed, and
with it the upstream model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

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


def sse_response(frames: AsyncIterator[str], *, media_type: str = "text/event-stream",
                 keep_alive: bool = True) -> StreamingResponse:
    body = with_keep_alive(frames) if keep_alive else frames
    return StreamingResponse(body, media_type=media_type, headers=dict(SSE_HEADERS))
