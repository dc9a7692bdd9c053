"""Stop buttons: a door's client asks to stop an answer that another request is streaming.

Dify's ``POST /chat-messages/{task_id}/stop`` and Flowise's ``PUT /chatmessage/abort/...`` name
the running answer by an id the client holds. A streaming answer registers under a key that
includes everything the stopper must prove (bot, session namespace, end user, id); a stop with
any other key finds nothing. The registry is per process: a stop that reaches another API
process than the stream does nothing (the client's own disconnect still ends the turn).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable, Iterator


class TurnStops:
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Event] = {}

    @contextlib.contextmanager
    def running(self, key: Hashable) -> Iterator[asyncio.Event]:
        """Register a streaming answer; the event is set when someone stops it."""
        event = asyncio.Event()
        self._running[key] = event
        try:
            yield event
        finally:
            if self._running.get(key) is event:
                del self._running[key]

    def stop(self, key: Hashable) -> bool:
        event = self._running.get(key)
        if event is None:
            return False
        event.set()
        return True
