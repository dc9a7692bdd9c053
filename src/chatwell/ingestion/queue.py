"""Ingestion on procrastinate: an existing PostgreSQL job queue for multi-machine deployments.

With ``CHATWELL_QUEUE=procrastinate`` (PostgreSQL only) the API processes run no ingestion
themselves; ``chatwell worker`` processes, on any machine reaching the database, run the same task
function as the embedded default's in-process worker (:func:`ingest_one`: claim the source with
its lease, then the pipeline).

Jobs: ``chatwell.ingest_source(source_id)`` ingests one source; ``chatwell.sweep_sources()``
defers an ingest job for every source waiting (``pending``, or ``processing`` under an expired
lease — a worker that died). A new source only has to wake the queue (the API defers a sweep),
the sweep runs every minute as a procrastinate periodic task as well, and one ``queueing_lock``
per source keeps a source from being queued twice. Crawled pages are picked up by the sweep the
crawl's root defers when it finishes. Nothing is lost when every worker is down: sources stay
``pending`` in the database until one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import make_url

from chatwell.domain.models import SourceStatus
from chatwell.ingestion.service import Ingestor
from chatwell.storage.tables import Source, utcnow

log = logging.getLogger("chatwell.ingestion")
QUEUE = "chatwell-ingestion"
SWEEP_LIMIT = 1000


async def ingest_one(ingestor: Ingestor, source_id: uuid.UUID) -> bool:
    """The ingestion task function, whatever runs it: claim the source (nobody else holds a live
    lease on it), then process it to ``ready`` or ``failed``. False when there was nothing to do."""
    if not await ingestor.claim_source(source_id):
        return False
    await ingestor.process_source(source_id)
    return True


async def waiting_sources(ingestor: Ingestor, limit: int = SWEEP_LIMIT) -> list[uuid.UUID]:
    stale = utcnow() - ingestor.config.lease
    async with ingestor.db.read() as session:
        return list(
            await session.scalars(
                select(Source.id)
                .where(
                    or_(
                        Source.status == SourceStatus.PENDING,
                        (Source.status == SourceStatus.PROCESSING) & (Source.locked_at < stale),
                    )
                )
                .order_by(Source.id)
                .limit(limit)
            )
        )


def libpq_url(database_url: str) -> str:
    """``postgresql+asyncpg://...`` → the ``postgresql://...`` conninfo psycopg takes."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise ValueError("CHATWELL_QUEUE=procrastinate needs a PostgreSQL CHATWELL_DATABASE_URL")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ProcrastinateQueue:
    """The procrastinate app with chatwell's two tasks bound to an ingestor (None in API processes,
    which only defer)."""

    def __init__(self, database_url: str, ingestor: Ingestor | None = None) -> None:
        import procrastinate

        self.ingestor = ingestor
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=libpq_url(database_url), min_size=1, max_size=4
            )
        )
        self._pending: set[asyncio.Task[None]] = set()

        @self.app.task(
            name="chatwell.ingest_source",
            queue=QUEUE,
            retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=2),
        )
        async def ingest_source(source_id: str) -> None:
            ingestor = self._require_ingestor()
            processed = await ingest_one(ingestor, uuid.UUID(source_id))
            if processed:
                # A crawl root leaves its pages pending: queue them now rather than at the next sweep.
                async with ingestor.db.read() as session:
                    children = await session.scalar(
                        select(Source.id)
                        .where(
                            Source.parent_id == uuid.UUID(source_id),
                            Source.status == SourceStatus.PENDING,
                        )
                        .limit(1)
                    )
                if children is not None:
                    await self.request_sweep()

        @self.app.periodic(cron="* * * * *", periodic_id="chatwell-sweep")
        @self.app.task(name="chatwell.sweep_sources_periodic", queue=QUEUE)
        async def sweep_periodic(timestamp: int) -> None:
            await self._sweep()

        @self.app.task(name="chatwell.sweep_sources", queue=QUEUE, queueing_lock="chatwell-sweep")
        async def sweep_sources() -> None:
            await self._sweep()

        self.ingest_source = ingest_source
        self.sweep_sources = sweep_sources

    def _require_ingestor(self) -> Ingestor:
        if self.ingestor is None:
            raise RuntimeError(
                "this process only defers jobs; run `chatwell worker` to process them"
            )
        return self.ingestor

    async def _sweep(self) -> int:
        import procrastinate.exceptions

        queued = 0
        await self._require_ingestor().queue_due_resyncs()
        for source_id in await waiting_sources(self._require_ingestor()):
            with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
                await self.ingest_source.configure(queueing_lock=f"source-{source_id}").defer_async(
                    source_id=str(source_id)
                )
                queued += 1
        return queued

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task
        await self.app.close_async()

    async def ensure_schema(self) -> None:
        """Create procrastinate's tables once (it has no migrations of its own to re-run)."""
        rows = await self.app.connector.execute_query_all_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if not rows[0]["present"]:
            await self.app.schema_manager.apply_schema_async()

    # -- the API process's side: the same interface as the in-process worker

    def wake(self) -> None:
        """New work: defer a sweep (at most one waits at a time), without blocking the request."""
        task = asyncio.create_task(self.request_sweep())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def request_sweep(self) -> None:
        import procrastinate.exceptions

        try:
            await self.sweep_sources.defer_async()
        except procrastinate.exceptions.AlreadyEnqueued:
            pass
        except Exception:  # the periodic sweep will pick the source up
            log.exception("could not queue an ingestion sweep")

    async def idle(self, poll_seconds: float = 0.1) -> None:
        """Wait until no source is pending or processing (tests and scripts)."""
        ingestor = self._require_ingestor()
        while True:
            async with ingestor.db.read() as session:
                busy = await session.scalar(
                    select(Source.id)
                    .where(Source.status.in_([SourceStatus.PENDING, SourceStatus.PROCESSING]))
                    .limit(1)
                )
            if busy is None:
                return
            await asyncio.sleep(poll_seconds)

    async def burst(self, *, concurrency: int) -> None:
        """Work until nothing is waiting, then return (``chatwell worker --burst``, scripts, tests).

        The sweep runs here, not as a job: a burst worker stops as soon as one of its slots finds
        the queue empty, which could be while another slot is still deferring the jobs a sweep job
        makes."""
        ingestor = self._require_ingestor()
        while True:
            await self._sweep()
            await self.run_worker(concurrency=concurrency, wait=False)
            if not await waiting_sources(ingestor, limit=1):
                return

    async def run_worker(self, *, concurrency: int, wait: bool = True, **options: Any) -> None:
        await self.app.run_worker_async(
            queues=[QUEUE],
            concurrency=concurrency,
            wait=wait,
            install_signal_handlers=wait,
            **options,
        )
