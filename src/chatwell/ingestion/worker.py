"""The in-process ingestion worker of the embedded default: claims pending sources off the
request path and runs the same task function an external queue would run."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from chatwell.ingestion.service import Ingestor

log = logging.getLogger("chatwell.ingestion")


class IngestionWorker:
    def __init__(self, ingestor: Ingestor, *, concurrency: int = 4, poll_seconds: float = 2.0):
        self.ingestor = ingestor
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._runner: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New work was queued: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="ingestion-worker")

    async def stop(self) -> None:
        """Stop claiming; cancel work in flight (its sources are resumed by the next start)."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until nothing is pending or in flight (tests and the CLI use this)."""
        while True:
            self.wake()
            await asyncio.sleep(0.05)
            if not self._tasks and await self._nothing_pending():
                return

    async def _nothing_pending(self) -> bool:
        from sqlalchemy import select

        from chatwell.domain.models import SourceStatus
        from chatwell.storage.tables import Source

        async with self.ingestor.db.read() as session:
            found = await session.scalar(select(Source.id).where(
                Source.status.in_([SourceStatus.PENDING, SourceStatus.PROCESSING])).limit(1))
        return found is None

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            self._wake.clear()
            try:
                source_id = await self.ingestor.claim_next()
            except Exception:
                log.exception("could not claim ingestion work")
                source_id = None
            if source_id is None:
                self._slots.release()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                continue
            task = asyncio.create_task(self._process(source_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process(self, source_id) -> None:  # type: ignore[no-untyped-def]
        try:
            await self.ingestor.process_source(source_id)
        finally:
            self._slots.release()
