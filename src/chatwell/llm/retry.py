"""Retry the opening of a model stream: only before the first token, with exponential backoff.

Once a token has reached the visitor a retry would repeat it, so after that point a failure
goes to the chat service, which ends the stream with an ``error`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def open_with_retries(
    open_stream: Callable[[], Awaitable[T]],
    *,
    retryable: Callable[[Exception], bool],
    max_retries: int,
    backoff: float,
) -> T:
    """``await open_stream()``, again after a retryable failure, up to ``max_retries`` times."""
    attempt = 0
    while True:
        try:
            return await open_stream()
        except Exception as exc:
            if attempt >= max_retries or not retryable(exc):
                raise
            attempt += 1
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
