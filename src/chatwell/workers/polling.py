"""The loop shared by chatwell's in-process background workers (ingestion, webhook deliveries).

A worker claims one job at a time from the database (the claim is the lock), runs up to
``concurrency`` jobs at once, sleeps until woken or until the next poll, and stops gracefully:
the loop finishes the database call it is in before it exits (cancelling a driver call mid-way
can leave the driver's thread answering a closed event loop), and only then are jobs still
running cancelled — the database lease they hold runs out and another worker takes them over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("chatwell.workers")
STOP_GRACE_SECONDS = 5.0


class PollingWorker:
    name = "worker"

    def __init__(self, *, concurrency: int, poll_seconds: float) -> None:
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    # -- what a worker does

    async def claim(self) -> tuple[Any | None, float]:
        """The next job, or (None, seconds to wait before looking again)."""
        raise NotImplementedError

    async def work(self, job: Any) -> None:
        raise NotImplementedError

    async def nothing_pending(self) -> bool:
        raise NotImplementedError

    # -- the loop

    def wake(self) -> None:
        """New work was queued: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._runner = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop claiming (letting a claim in progress finish), then cancel jobs in flight."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), STOP_GRACE_SECONDS)
            except TimeoutError:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until nothing is pending or in flight (tests and the CLI use this)."""
        while True:
            self.wake()
            await asyncio.sleep(0.05)
            if not self._tasks and await self.nothing_pending():
                return

    async def _run(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            if self._stopping:
                self._slots.release()
                return
            self._wake.clear()
            try:
                job, wait = await self.claim()
            except Exception:
                log.exception("%s could not claim work", self.name)
                job, wait = None, self.poll_seconds
            if job is None:
                self._slots.release()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            task = asyncio.create_task(self._work(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, job: Any) -> None:
        try:
            await self.work(job)
        except Exception:
            log.exception("%s: job %s failed", self.name, job)
        finally:
            self._slots.release()
