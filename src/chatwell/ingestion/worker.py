"""The in-process ingestion worker of the embedded default: claims pending sources off the
request path and runs the same task function an external queue would run (``ingestion.queue``)."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from chatwell.domain.models import SourceStatus
from chatwell.ingestion.service import Ingestor
from chatwell.storage.tables import Source
from chatwell.workers.polling import PollingWorker


class IngestionWorker(PollingWorker):
    name = "ingestion-worker"
    resync_check_seconds = 60.0  # how often scheduled re-syncs (daily, weekly) are looked for

    def __init__(self, ingestor: Ingestor, *, concurrency: int = 4, poll_seconds: float = 2.0):
        super().__init__(concurrency=concurrency, poll_seconds=poll_seconds)
        self.ingestor = ingestor
        self.next_resync_check = 0.0  # monotonic time; 0: at the first claim

    async def claim(self) -> tuple[uuid.UUID | None, float]:
        if time.monotonic() >= self.next_resync_check:
            self.next_resync_check = time.monotonic() + self.resync_check_seconds
            await self.ingestor.queue_due_resyncs()
        return await self.ingestor.claim_next(), self.poll_seconds

    async def work(self, source_id: uuid.UUID) -> None:
        await self.ingestor.process_source(source_id)

    async def nothing_pending(self) -> bool:
        async with self.ingestor.db.read() as session:
            found = await session.scalar(
                select(Source.id)
                .where(Source.status.in_([SourceStatus.PENDING, SourceStatus.PROCESSING]))
                .limit(1)
            )
        return found is None


async def ingest_pending(ingestor: Ingestor, *, concurrency: int) -> None:
    """Ingest every pending source now and return when none is left (evaluation, one-off jobs)."""
    worker = IngestionWorker(ingestor, concurrency=concurrency)
    worker.start()
    try:
        await worker.idle()
    finally:
        await worker.stop()
